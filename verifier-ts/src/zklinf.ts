/** Verifier of the L∞-bound proofs `chainml/zk-linf/v1` (docs/protocol/zk-norm.md §11):
 * every coordinate of the vector a norm-proof commitment holds is within ±b. */
import { concat } from "./bytes.js";
import { InvalidNormProof, MalformedNormProof } from "./errors.js";
import { encodeScalar, inv, mod, msm, ORDER, Point, POINT_BYTES, SCALAR_BYTES } from "./g1.js";
import { commitmentPoint, encodeContext, gens, ip, Ipa, ipaChallenges, ipaShape, ipaTerms, NormContext, powers, Reader } from "./zknorm.js";
import { ZkTranscript } from "./zktranscript.js";
import { randomBytes } from "node:crypto";

export const DST = "chainml/zk-linf/v1";
export const VERSION = 1;
const MAX_LENGTH = 1 << 23;
const IPA_STOP = 64;
const COORD_LIMIT = 2 ** 31;

/** The statement |x_i| ≤ b for x ∈ Z^n (§11.1) and the sizes derived from it. */
export class LinfParams {
  readonly bits: number;
  readonly weights: bigint[];
  readonly k: number;
  readonly stop: number;
  readonly padded: number;

  constructor(
    readonly dim: number,
    readonly bound: number,
  ) {
    if (!Number.isInteger(dim) || dim < 1) throw new RangeError("dim must be a positive integer");
    if (!Number.isInteger(bound) || bound < 1 || bound >= COORD_LIMIT) throw new RangeError("bound must be an integer in [1, 2^31)");
    this.bits = (2 * bound).toString(2).length;
    if (dim * (this.bits + 1) > MAX_LENGTH) throw new RangeError("dim·(bits + 1) must be at most 2^23");
    const K = this.bits;
    this.weights = [...Array.from({ length: K - 1 }, (_, t) => 1n << BigInt(t)), BigInt(2 * bound + 1) - (1n << BigInt(K - 1))];
    const m = dim * (K + 1);
    this.k = Math.max(0, Math.floor(m / IPA_STOP).toString(2).length - 1);
    this.stop = Math.ceil(m / 2 ** this.k);
    this.padded = this.stop * 2 ** this.k;
  }

  encode(): Uint8Array {
    const out = new Uint8Array(8);
    const dv = new DataView(out.buffer);
    dv.setUint32(0, this.dim);
    dv.setUint32(4, this.bound);
    return out;
  }

  /** §11.4: 1 + 48·(5 + 2k) + 32·(3 + 2·stop). */
  proofSize(): number {
    return 1 + POINT_BYTES * (5 + 2 * this.k) + SCALAR_BYTES * (3 + 2 * this.stop);
  }
}

function weight(): bigint {
  let v = 0n;
  for (const b of randomBytes(64)) v = (v << 8n) | BigInt(b);
  return (v % (ORDER - 1n)) + 1n;
}

/** Verify an L∞-bound proof for `commitment` (a norm-proof commitment, §3) under `params`
 * and `ctx` (§11.3). Returns nothing; throws MalformedNormProof (another length or
 * version, an element that does not decode) or InvalidNormProof. */
export function verifyLinf(ctx: NormContext, params: LinfParams, commitment: Uint8Array, proof: Uint8Array): void {
  const C = commitmentPoint(commitment);
  if (!(proof instanceof Uint8Array) || proof.length !== params.proofSize()) {
    throw new MalformedNormProof(`a v${VERSION} L∞ proof of dimension ${params.dim} and bound ${params.bound} is ${params.proofSize()} bytes, got ${proof.length}`);
  }
  const rd = new Reader(proof);
  if (rd.take(1)[0] !== VERSION) throw new MalformedNormProof("unknown proof version");
  const [V, A, S, T1, T2] = [rd.point(), rd.point(), rd.point(), rd.point(), rd.point()];
  const [tau, mu, tHat] = [rd.scalar(), rd.scalar(), rd.scalar()];
  const pipa: Ipa = rd.ipa(params.k, params.stop);

  const n = params.dim;
  const K = params.bits;
  const N = params.padded;
  const end = n + n * K;
  const G = gens(Math.max(N, ipaShape(n).stop * 2 ** ipaShape(n).k));
  const t = new ZkTranscript(DST);
  t.absorb("context", encodeContext(ctx));
  t.absorb("statement", params.encode());
  t.absorb("C", commitment);
  t.absorb("V", V.bytes);
  t.absorb("A", A.bytes);
  t.absorb("S", S.bytes);
  const phi = t.challenge("phi");
  const y = t.challenge("y");
  const z = t.challenge("z");
  const c = t.challenge("c");
  t.absorb("T1", T1.bytes);
  t.absorb("T2", T2.bytes);
  const xx = t.challenge("x");
  t.absorb("open", concat(encodeScalar(tau), encodeScalar(mu), encodeScalar(tHat)));
  const wq = t.challenge("w");
  const xs = ipaChallenges(t, pipa);

  // §11.2 step 2: the public vectors, length N (X = [0, n), B = [n, end), padding after)
  const ys = powers(y, end);
  const qs = powers(c, n, c);
  let qSum = 0n;
  for (const q of qs) qSum += q;
  qSum = mod(qSum);
  const u = (i: number): bigint => (i < end ? ys[i] : 0n);
  const m = (i: number): bigint => (i < n ? ys[i] : i < end ? 1n : 0n);
  const w = (i: number): bigint => {
    if (i < n) return ORDER - qs[i];
    if (i >= end) return 0n;
    const j = i - n;
    return (qs[Math.floor(j / K)] * params.weights[j % K]) % ORDER;
  };
  const yInv = inv(y);
  const vInvB = powers(yInv, n * K, modPow(yInv, n)); // y^-j for j in B
  const vInv = (i: number): bigint => (i >= n && i < end ? vInvB[i - n] : 1n);
  let sumB = 0n;
  for (let i = n; i < end; i++) sumB += ys[i];
  sumB = mod(sumB);
  const phiInv = inv(phi);
  const z2 = (z * z) % ORDER;
  let mU = 0n;
  for (let i = 0; i < n; i++) mU += ys[i] * ys[i];
  mU = mod(mU + sumB);
  let mW = 0n;
  const twoB = BigInt(2 * params.bound);
  for (let i = 0; i < n; i++) mW += qs[i] * (twoB - ys[i] * phiInv);
  mW = mod(mW);
  const delta = mod(z * sumB + z2 * (BigInt(params.bound) * qSum - mU) - z2 * z * mW);

  const { s, sInv, x2, xm2 } = ipaTerms(xs, N);
  const a = pipa.a;
  const b = pipa.b;
  const [b1, b2] = [weight(), weight()];
  const coefG: bigint[] = new Array(N);
  const coefH: bigint[] = new Array(N);
  for (let i = 0; i < N; i++) {
    const k = i % params.stop;
    coefG[i] = mod(b1 * (a[k] * s[i] + z * m(i)));
    const wi = i < n ? (w(i) * phiInv) % ORDER : w(i);
    coefH[i] = mod(b1 * vInv(i) * ((b[k] * sInv[i] - z * u(i) - z2 * wi) % ORDER));
  }
  // 1. Σ a·s·G + Σ b·s⁻¹·v⁻¹·H + <a,b>·Q' = φ·C + A + x·S − z·<m, G>
  //    + <v⁻¹∘(z·u + z²·w'), H> − μ·H0 + t̂·Q' + Σ x²L + x⁻²R
  const extra: [Point, bigint][] = [
    [G.q, b1 * wq * (ip(a, b) - tHat)],
    [C, -b1 * phi],
    [A.point, -b1],
    [S.point, -b1 * xx],
    [G.h0, b1 * mu + b2 * tau],
    // 2. t̂·U + τ·H0 = φ²·V + δ·U + x·T1 + x²·T2
    [G.u, b2 * (tHat - delta)],
    [V.point, -b2 * phi * phi],
    [T1.point, -b2 * xx],
    [T2.point, -b2 * xx * xx],
  ];
  pipa.left.forEach((L, j) => extra.push([L.point, -b1 * x2[j]]));
  pipa.right.forEach((R, j) => extra.push([R.point, -b1 * xm2[j]]));
  const pts = [...G.g.slice(0, N), ...G.h.slice(0, N), ...extra.map(([pt]) => pt)];
  const scs = [...coefG, ...coefH, ...extra.map(([, v]) => mod(v))];
  if (!msm(pts, scs).equals(Point.ZERO)) throw new InvalidNormProof("the L∞-bound proof does not verify", "zk-norm/11.3 verify");
}

function modPow(base: bigint, e: number): bigint {
  let r = 1n;
  let b = mod(base);
  let k = BigInt(e);
  while (k > 0n) {
    if (k & 1n) r = (r * b) % ORDER;
    b = (b * b) % ORDER;
    k >>= 1n;
  }
  return r;
}
