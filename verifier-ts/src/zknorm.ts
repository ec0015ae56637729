/** Verifier of the norm-bound proofs `chainml/zk-norm/v3` (docs/protocol/zk-norm.md §2–§7):
 * one proof, a batch of proofs in one MSM, and the aggregate check. */
import { randomBytes } from "node:crypto";
import { addressBytes, concat } from "./bytes.js";
import { AggregateMismatch, InvalidNormProof, MalformedNormProof } from "./errors.js";
import { decodePoint, decodeScalar, generators, inv, mod, msm, ORDER, Point, POINT_BYTES, SCALAR_BYTES } from "./g1.js";
import { ZkTranscript } from "./zktranscript.js";

export const GEN_DST = "chainml/zk-norm/v1"; // the generators did not change in v2 or v3
export const DST = "chainml/zk-norm/v3";
export const VERSION = 3;
export const ROWS = 128;
export const MASK_BITS = 64;
export const RANGE_BITS = 64;
const RANGE_ROUNDS = 6; // log2(RANGE_BITS)
const IPA_STOP = 128;
export const MAX_DIM = 1 << 20;
const MAX_BOUND_SQ = (1n << 62n) - 1n;
const Z_BYTES = 16;
export const LIMBS = 16;

/** What a proof is bound to (§3, §5). */
export interface NormContext {
  chainId: bigint | number;
  jobs: string;
  jobId: bigint | number;
  round: bigint | number;
  attempt: bigint | number;
  trainer: string;
}

function be(v: bigint | number, size: number): Uint8Array {
  let x = BigInt(v);
  if (x < 0n || x >= 1n << BigInt(8 * size)) throw new RangeError(`a context field does not fit in ${size} bytes`);
  const out = new Uint8Array(size);
  for (let i = size - 1; i >= 0; i--) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

/** §3: u256(chain_id) ‖ jobs(20) ‖ u256(job_id) ‖ u64(round) ‖ u32(attempt) ‖ trainer(20). */
export function encodeContext(c: NormContext): Uint8Array {
  return concat(be(c.chainId, 32), addressBytes(c.jobs), be(c.jobId, 32), be(c.round, 8), be(c.attempt, 4), addressBytes(c.trainer));
}

export function isqrt(n: bigint): bigint {
  if (n < 0n) throw new RangeError("isqrt of a negative number");
  if (n < 2n) return n;
  let x = BigInt(Math.floor(Math.sqrt(Number(n)))) + 1n;
  for (;;) {
    const y = (x + n / x) >> 1n;
    if (y >= x) break;
    x = y;
  }
  while (x * x > n) x -= 1n;
  while ((x + 1n) * (x + 1n) <= n) x += 1n;
  return x;
}

/** (k, stop): stop·2^k ≥ dim + 128, stop in [128, 256) (§2). */
export function ipaShape(dim: number): { k: number; stop: number } {
  const m = dim + ROWS;
  const k = Math.max(0, Math.floor(m / IPA_STOP).toString(2).length - 1);
  return { k, stop: Math.ceil(m / 2 ** k) };
}

/** The statement ‖x‖² ≤ boundSq for x ∈ Z^dim, and every size derived from it (§2). */
export class NormParams {
  readonly dim: number;
  readonly boundSq: bigint;
  readonly vmax: bigint;
  readonly width: bigint;
  readonly k: number;
  readonly stop: number;
  readonly padded: number;

  constructor(dim: number, boundSq: bigint) {
    if (!Number.isInteger(dim) || dim < 1 || dim > MAX_DIM) throw new RangeError(`dim must be in [1, ${MAX_DIM}]`);
    if (boundSq < 0n || boundSq > MAX_BOUND_SQ) throw new RangeError("bound_sq must be in [0, 2^62)");
    this.dim = dim;
    this.boundSq = boundSq;
    this.vmax = isqrt(BigInt(dim) * boundSq) + 1n;
    this.width = this.vmax << BigInt(MASK_BITS);
    if (!(BigInt(dim) * this.width * this.width < ORDER / 2n && this.width < 1n << BigInt(8 * Z_BYTES))) {
      throw new RangeError("dim and bound_sq too large for the smallness argument");
    }
    ({ k: this.k, stop: this.stop } = ipaShape(dim));
    this.padded = this.stop * 2 ** this.k;
  }

  encode(): Uint8Array {
    return concat(be(this.dim, 4), be(this.boundSq, 8));
  }

  /** §6: 1 + 48·(21 + 2k) + 32·(8 + 2·stop) + 2048 bytes. */
  proofSize(): number {
    return 1 + POINT_BYTES * (21 + 2 * this.k) + SCALAR_BYTES * (8 + 2 * this.stop) + ROWS * Z_BYTES;
  }
}

/** §2: (⌈clip·2^f⌉ + ⌊√n⌋ + 1)² for a SecAgg+ round with clip `clip` and f fraction bits. */
export function boundSqFor(clip: number, fracBits: number, dim: number): bigint {
  if (!(clip > 0) || !Number.isFinite(clip) || fracBits < 0) throw new RangeError("clip must be positive and finite");
  const b = BigInt(Math.ceil(clip * 2 ** fracBits)) + isqrt(BigInt(dim)) + 1n;
  return b * b;
}

export interface Gens {
  g: Point[];
  h: Point[];
  h0: Point;
  u: Point;
  q: Point;
  rg: Point[];
  rh: Point[];
}

/** The generators of §3 for vectors of length `padded`. */
export function gens(padded: number): Gens {
  return {
    g: generators(GEN_DST, "G", padded),
    h: generators(GEN_DST, "H", padded),
    h0: generators(GEN_DST, "H0", 1)[0],
    u: generators(GEN_DST, "U", 1)[0],
    q: generators(GEN_DST, "Q", 1)[0],
    rg: generators(GEN_DST, "RG", RANGE_BITS),
    rh: generators(GEN_DST, "RH", RANGE_BITS),
  };
}

// -- decoding (§6) ---------------------------------------------------------------------------

export interface Element {
  point: Point;
  bytes: Uint8Array;
}

export interface Ipa {
  left: Element[];
  right: Element[];
  a: bigint[];
  b: bigint[];
}

export class Reader {
  pos = 0;
  constructor(readonly data: Uint8Array) {}

  take(size: number): Uint8Array {
    if (this.pos + size > this.data.length) throw new MalformedNormProof("the proof is truncated");
    const out = this.data.subarray(this.pos, this.pos + size);
    this.pos += size;
    return out;
  }

  point(): Element {
    const bytes = this.take(POINT_BYTES);
    try {
      return { point: decodePoint(bytes), bytes };
    } catch (e) {
      throw new MalformedNormProof((e as Error).message);
    }
  }

  scalar(): bigint {
    try {
      return decodeScalar(this.take(SCALAR_BYTES));
    } catch (e) {
      throw new MalformedNormProof((e as Error).message);
    }
  }

  ipa(rounds: number, stop: number): Ipa {
    const left = Array.from({ length: rounds }, () => this.point());
    const right = Array.from({ length: rounds }, () => this.point());
    const a = Array.from({ length: stop }, () => this.scalar());
    const b = Array.from({ length: stop }, () => this.scalar());
    return { left, right, a, b };
  }
}

interface RangeProof {
  A: Element;
  S: Element;
  T1: Element;
  T2: Element;
  tau: bigint;
  mu: bigint;
  tHat: bigint;
  ipa: Ipa;
}

interface Proof {
  V: Element;
  M: Element;
  S: Element;
  z: bigint[];
  zBytes: Uint8Array;
  T1: Element;
  T2: Element;
  tau: bigint;
  mu: bigint;
  tHat: bigint;
  ipa: Ipa;
  range: RangeProof;
}

export function commitmentPoint(commitment: Uint8Array): Point {
  try {
    return decodePoint(commitment);
  } catch (e) {
    throw new MalformedNormProof(`the commitment: ${(e as Error).message}`);
  }
}

function decodeProof(data: Uint8Array, params: NormParams): Proof {
  if (!(data instanceof Uint8Array)) throw new MalformedNormProof("a proof is bytes");
  if (data.length !== params.proofSize()) {
    throw new MalformedNormProof(`a v${VERSION} proof of dimension ${params.dim} is ${params.proofSize()} bytes, got ${data.length}`);
  }
  const rd = new Reader(data);
  if (rd.take(1)[0] !== VERSION) throw new MalformedNormProof("unknown proof version");
  const V = rd.point();
  const M = rd.point();
  const S = rd.point();
  const zBytes = rd.take(ROWS * Z_BYTES);
  const z: bigint[] = [];
  for (let j = 0; j < ROWS; j++) {
    let v = 0n;
    for (const b of zBytes.subarray(j * Z_BYTES, (j + 1) * Z_BYTES)) v = (v << 8n) | BigInt(b);
    z.push(v);
  }
  const T1 = rd.point();
  const T2 = rd.point();
  const tau = rd.scalar();
  const mu = rd.scalar();
  const tHat = rd.scalar();
  const ipa = rd.ipa(params.k, params.stop);
  const range: RangeProof = {
    A: rd.point(),
    S: rd.point(),
    T1: rd.point(),
    T2: rd.point(),
    tau: rd.scalar(),
    mu: rd.scalar(),
    tHat: rd.scalar(),
    ipa: { left: [], right: [], a: [], b: [] },
  };
  range.ipa = rd.ipa(RANGE_ROUNDS, 1);
  return { V, M, S, z, zBytes, T1, T2, tau, mu, tHat, ipa, range };
}

// -- shared computations ---------------------------------------------------------------------

export function powers(base: bigint, count: number, start = 1n): bigint[] {
  const out: bigint[] = new Array(count);
  let v = mod(start);
  for (let i = 0; i < count; i++) {
    out[i] = v;
    v = (v * base) % ORDER;
  }
  return out;
}

export function ip(a: bigint[], b: bigint[]): bigint {
  let s = 0n;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return mod(s);
}

/** The inner-product argument's round challenges, replayed (§4.4). */
export function ipaChallenges(t: ZkTranscript, p: Ipa): bigint[] {
  const xs: bigint[] = [];
  for (let j = 0; j < p.left.length; j++) {
    t.absorb("ipa/L", p.left[j].bytes);
    t.absorb("ipa/R", p.right[j].bytes);
    xs.push(t.challenge("ipa/x"));
  }
  return xs;
}

/** §4.4: s_i = Π_j x_j^{±1} over n = stop·2^k generators (+1 where bit j of i div stop,
 * counted from the top, is 1), its inverses, and the x_j², x_j⁻². */
export function ipaTerms(xs: bigint[], n: number): { s: bigint[]; sInv: bigint[]; x2: bigint[]; xm2: bigint[] } {
  const rounds = xs.length;
  const blocks = 2 ** rounds;
  if (n % blocks !== 0 || n === 0) throw new RangeError("n must be a nonzero multiple of 2^rounds");
  const stop = n / blocks;
  const xi = xs.map(inv);
  let s = [1n];
  let sInv = [1n];
  for (let j = 0; j < rounds; j++) {
    const x = xs[j];
    const y = xi[j];
    s = s.flatMap((v) => [(v * y) % ORDER, (v * x) % ORDER]);
    sInv = sInv.flatMap((v) => [(v * x) % ORDER, (v * y) % ORDER]);
  }
  const rep = (v: bigint[]): bigint[] => {
    const out: bigint[] = new Array(n);
    for (let q = 0; q < blocks; q++) for (let r = 0; r < stop; r++) out[q * stop + r] = v[q];
    return out;
  };
  return { s: rep(s), sInv: rep(sInv), x2: xs.map((x) => (x * x) % ORDER), xm2: xi.map((x) => (x * x) % ORDER) };
}

function start(ctx: NormContext, params: NormParams, commitment: Uint8Array): ZkTranscript {
  const t = new ZkTranscript(DST);
  t.absorb("context", encodeContext(ctx));
  t.absorb("statement", params.encode());
  t.absorb("C", commitment);
  return t;
}

/** §4.2 step 1: 128 rows of ⌈n/8⌉ bytes; bit i of row j is bit i mod 8 of byte j·⌈n/8⌉ + ⌊i/8⌋. */
function rows(t: ZkTranscript, dim: number): Uint8Array {
  const stride = Math.ceil(dim / 8);
  return t.stream("rows", ROWS * stride);
}

/** w_i = Σ_j c_j·R_{j,i} (i < n), w_{n+j} = c_j / e, 0 beyond (§4.2 step 3). */
function weights(raw: Uint8Array, dim: number, cs: bigint[], e: bigint, padded: number): bigint[] {
  const stride = Math.ceil(dim / 8);
  const w: bigint[] = new Array(padded).fill(0n);
  for (let j = 0; j < ROWS; j++) {
    const cj = cs[j];
    const row = raw.subarray(j * stride, (j + 1) * stride);
    for (let i = 0; i < dim; i++) if ((row[i >> 3] >> (i & 7)) & 1) w[i] += cj;
  }
  for (let i = 0; i < dim; i++) w[i] %= ORDER;
  const eInv = inv(e);
  for (let j = 0; j < ROWS; j++) w[dim + j] = (cs[j] * eInv) % ORDER;
  return w;
}

function weight(): bigint {
  let v = 0n;
  for (const b of randomBytes(64)) v = (v << 8n) | BigInt(b);
  return (v % (ORDER - 1n)) + 1n;
}

export interface Terms {
  coefG: bigint[];
  coefH: bigint[];
  extra: [Point, bigint][];
}

/** One proof's four equations (§4.3) as MSM terms, each weighted by a fresh random scalar:
 * the proof verifies iff (but for probability 1/r) the MSM is the identity. Throws
 * MalformedNormProof, or InvalidNormProof for a projection out of range. */
export function normTerms(ctx: NormContext, params: NormParams, commitment: Uint8Array, proof: Uint8Array): Terms {
  const C = commitmentPoint(commitment);
  const p = decodeProof(proof, params);
  const n = params.dim;
  const N = params.padded;
  const G = gens(N);
  const t = start(ctx, params, commitment);
  t.absorb("V", p.V.bytes);
  t.absorb("M", p.M.bytes);
  t.absorb("S", p.S.bytes);
  const e = t.challenge("e");
  const raw = rows(t, n);
  const lo = params.vmax;
  const hi = params.width - params.vmax;
  for (const zv of p.z) if (zv < lo || zv >= hi) throw new InvalidNormProof("a projection is out of range");
  t.absorb("z", p.zBytes);
  const c = t.challenge("c");
  const yc = t.challenge("y");
  const zc = t.challenge("z");
  t.absorb("T1", p.T1.bytes);
  t.absorb("T2", p.T2.bytes);
  const xx = t.challenge("x");
  t.absorb("open", concat(...[p.tau, p.mu, p.tHat].map(scalarBytes)));
  const wq = t.challenge("w");
  const xs = ipaChallenges(t, p.ipa);
  const cs = powers(c, ROWS, c);
  const w = weights(raw, n, cs, e, N);
  const u = powers(yc, N);
  const zeta = ip(cs, p.z);
  const z2 = (zc * zc) % ORDER;
  let sumU2 = 0n;
  for (let i = 0; i < n; i++) sumU2 += u[i] * u[i];
  const delta = mod(-z2 * mod(sumU2) - ((z2 * zc) % ORDER) * ip(u, w));
  const { s, sInv, x2, xm2 } = ipaTerms(xs, N);
  const a = p.ipa.a;
  const b = p.ipa.b;
  const ab = ip(a, b);

  // the range proof's transcript (§4.5)
  const r = p.range;
  t.absorb("range/A", r.A.bytes);
  t.absorb("range/S", r.S.bytes);
  const ry = t.challenge("range/y");
  const rz = t.challenge("range/z");
  t.absorb("range/T1", r.T1.bytes);
  t.absorb("range/T2", r.T2.bytes);
  const rx = t.challenge("range/x");
  t.absorb("range/open", concat(...[r.tau, r.mu, r.tHat].map(scalarBytes)));
  const rwq = t.challenge("range/w");
  const rxs = ipaChallenges(t, r.ipa);
  const nb = RANGE_BITS;
  const ryn = powers(ry, nb);
  const ryInvN = powers(inv(ry), nb);
  const rt = ipaTerms(rxs, nb);
  const rz2 = (rz * rz) % ORDER;
  const rdelta = mod((rz - rz2) * ryn.reduce((x, y) => x + y, 0n) - rz2 * rz * ((1n << BigInt(nb)) - 1n));

  const [b1, b2, b4, b5] = [weight(), weight(), weight(), weight()];
  const coefG: bigint[] = new Array(N);
  const coefH: bigint[] = new Array(N);
  const stop = params.stop;
  for (let i = 0; i < N; i++) {
    const k = i % stop;
    const zu = zc * u[i];
    coefG[i] = mod(b1 * (a[k] * s[i] + zu));
    coefH[i] = mod(b1 * (b[k] * sInv[i] - (i < n ? zu : 0n) - z2 * w[i]));
  }
  // 1. the main argument: <a·s, G> + <b·s⁻¹, H> + ab·Q' = P + t̂·Q' + Σ x²L + x⁻²R,
  //    P = C + e·M + x·S − z·<u, G> + <z·(u∘d) + z²·w, H> − μ·H0
  const extra: [Point, bigint][] = [
    [G.q, b1 * wq * (ab - p.tHat)],
    [C, -b1],
    [p.M.point, -b1 * e],
    [p.S.point, -b1 * xx],
    [G.h0, b1 * p.mu + b2 * p.tau],
    // 2. t̂·U + τ·H0 = V + (z²·ζ + δ)·U + x·T1 + x²·T2
    [G.u, b2 * (p.tHat - z2 * zeta - delta)],
    [p.V.point, -b2],
    [p.T1.point, -b2 * xx],
    [p.T2.point, -b2 * xx * xx],
  ];
  p.ipa.left.forEach((L, j) => extra.push([L.point, -b1 * x2[j]]));
  p.ipa.right.forEach((R, j) => extra.push([R.point, -b1 * xm2[j]]));
  // 3. the range proof's t̂: t̂·U + τ·H0 = z²·(B²·U − V) + δ·U + x·T1 + x²·T2
  extra.push(
    [G.u, b4 * (r.tHat - rz2 * params.boundSq - rdelta)],
    [G.h0, b4 * r.tau],
    [p.V.point, b4 * rz2],
    [r.T1.point, -b4 * rx],
    [r.T2.point, -b4 * rx * rx],
  );
  // 4. the range proof's argument, on H'_i = y⁻ⁱ·RH_i
  const ra = r.ipa.a[0];
  const rb = r.ipa.b[0];
  for (let i = 0; i < nb; i++) {
    extra.push([G.rg[i], b5 * (ra * rt.s[i] + rz)]);
    extra.push([G.rh[i], b5 * (rb * rt.sInv[i] * ryInvN[i] - rz - rz2 * (1n << BigInt(i)) * ryInvN[i])]);
  }
  extra.push([G.q, b5 * rwq * (ra * rb - r.tHat)], [r.A.point, -b5], [r.S.point, -b5 * rx], [G.h0, b5 * r.mu]);
  r.ipa.left.forEach((L, j) => extra.push([L.point, -b5 * rt.x2[j]]));
  r.ipa.right.forEach((R, j) => extra.push([R.point, -b5 * rt.xm2[j]]));
  return { coefG, coefH, extra: extra.map(([pt, v]) => [pt, mod(v)]) };
}

function scalarBytes(v: bigint): Uint8Array {
  const out = new Uint8Array(SCALAR_BYTES);
  let x = v;
  for (let i = SCALAR_BYTES - 1; i >= 0; i--) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

function isIdentity(g: Gens, N: number, coefG: bigint[], coefH: bigint[], extra: [Point, bigint][]): boolean {
  const pts = [...g.g.slice(0, N), ...g.h.slice(0, N), ...extra.map(([pt]) => pt)];
  const scs = [...coefG, ...coefH, ...extra.map(([, v]) => v)];
  return msm(pts, scs).equals(Point.ZERO);
}

/** Verify one norm-bound proof for `commitment` under `params` and `ctx` (§4.3). Returns
 * nothing; throws MalformedNormProof or InvalidNormProof. */
export function verifyNorm(ctx: NormContext, params: NormParams, commitment: Uint8Array, proof: Uint8Array): void {
  const { coefG, coefH, extra } = normTerms(ctx, params, commitment, proof);
  if (!isIdentity(gens(params.padded), params.padded, coefG, coefH, extra)) {
    throw new InvalidNormProof("the norm-bound proof does not verify");
  }
}

/** The positions of `items` (context, commitment, proof, statement) whose proofs do not
 * verify, malformed ones included; empty if all do. The statements may differ in their
 * bound, not in their dimension (they share the generators). All are checked in one MSM,
 * each proof with its own random weights; only if that fails is each checked alone, to
 * name the failing ones (§4.3). */
export function invalidNormProofs(items: [NormContext, Uint8Array, Uint8Array, NormParams][]): number[] {
  if (items.length === 0) return [];
  const N = items[0][3].padded;
  if (items.some((it) => it[3].dim !== items[0][3].dim)) throw new RangeError("a batch's statements share one dimension");
  const totalG: bigint[] = new Array(N).fill(0n);
  const totalH: bigint[] = new Array(N).fill(0n);
  const extra: [Point, bigint][] = [];
  const bad: number[] = [];
  items.forEach(([ctx, commitment, proof, params], k) => {
    let terms: Terms;
    try {
      terms = normTerms(ctx, params, commitment, proof);
    } catch (e) {
      if (e instanceof InvalidNormProof) return void bad.push(k);
      throw e;
    }
    for (let i = 0; i < N; i++) {
      totalG[i] = (totalG[i] + terms.coefG[i]) % ORDER;
      totalH[i] = (totalH[i] + terms.coefH[i]) % ORDER;
    }
    extra.push(...terms.extra);
  });
  if (bad.length === items.length || isIdentity(gens(N), N, totalG, totalH, extra)) return bad;
  items.forEach(([ctx, commitment, proof, params], k) => {
    if (bad.includes(k)) return;
    try {
      verifyNorm(ctx, params, commitment, proof);
    } catch (e) {
      if (e instanceof InvalidNormProof) bad.push(k);
      else throw e;
    }
  });
  return bad.sort((x, y) => x - y);
}

/** §7: R = Σ_l (W_l mod 2^32)·2^{16l} mod r from the 16 summed words. */
export function blindingFromLimbSums(words: ArrayLike<number>): bigint {
  if (words.length !== LIMBS) throw new RangeError(`${LIMBS} words expected`);
  let r = 0n;
  for (let l = 0; l < LIMBS; l++) r += BigInt(words[l] >>> 0) << BigInt(16 * l);
  return r % ORDER;
}

/** §7: Σ C_i = <X, G> + <X, H> + R·H0. Throws AggregateMismatch (MalformedNormProof for a
 * commitment that is not a point). */
export function verifyAggregate(commitments: Uint8Array[], total: bigint[], blindingSum: bigint): void {
  if (commitments.length === 0) throw new AggregateMismatch("no commitments");
  const n = total.length;
  const g = gens(ipaShape(n).stop * 2 ** ipaShape(n).k);
  const points = commitments.map(commitmentPoint);
  let lhs = Point.ZERO;
  for (const pt of points) lhs = lhs.add(pt);
  const rhs = msm([...g.g.slice(0, n), ...g.h.slice(0, n), g.h0], [...total, ...total, blindingSum]);
  if (!lhs.equals(rhs)) throw new AggregateMismatch("the sum does not open the summed commitments");
}
