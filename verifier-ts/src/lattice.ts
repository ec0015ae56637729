/** Lattice commitments (docs/protocol/secagg.md §7). Products of 31-bit residues are
 * taken with a 16-bit split so every intermediate stays below 2^53. */
import { ascii, concat, dec, u8 } from "./bytes.js";
import { mask, sha } from "./primitives.js";

export const PRIMES = [2147483137, 2147478017] as const;
export const GENERATORS = [10, 3] as const;
export const D = 256;
export const K = 8;
export const H = 10;
export const ETA = 2;
export const COMMITMENT_BYTES = 2 * K * D * 4;

export function mulmod(a: number, b: number, p: number): number {
  const bh = Math.floor(b / 65536);
  const bl = b % 65536;
  return (((a * bh) % p) * 65536 + a * bl) % p;
}

export function powmod(b: number, e: number, p: number): number {
  let r = 1;
  b %= p;
  while (e > 0) {
    if (e & 1) r = mulmod(r, b, p);
    b = mulmod(b, b, p);
    e = Math.floor(e / 2);
  }
  return r;
}

function brv8(i: number): number {
  let r = 0;
  for (let b = 0; b < 8; b++) r |= ((i >> b) & 1) << (7 - b);
  return r;
}

const zetaCache = new Map<number, Float64Array>();
function zetas(ix: number): Float64Array {
  let z = zetaCache.get(ix);
  if (!z) {
    const p = PRIMES[ix];
    const psi = powmod(GENERATORS[ix], (p - 1) / 512, p);
    z = new Float64Array(256);
    for (let k = 0; k < 256; k++) z[k] = powmod(psi, brv8(k), p);
    zetaCache.set(ix, z);
  }
  return z;
}

/** ψ for prime `ix` (for tests that check the NTT against the evaluation formula). */
export function psi(ix: number): number {
  return powmod(GENERATORS[ix], (PRIMES[ix] - 1) / 512, PRIMES[ix]);
}

/** NTT of one ring element (coefficients in [0, p)): â[i] = a(ψ^(2·brv₈(i)+1)). */
export function ntt(a: ArrayLike<number>, ix: number): Float64Array {
  const p = PRIMES[ix];
  const z = zetas(ix);
  const r = Float64Array.from(a);
  let k = 0;
  for (let len = 128; len > 0; len >>= 1) {
    for (let start = 0; start < 256; start += 2 * len) {
      const zeta = z[++k];
      for (let j = start; j < start + len; j++) {
        const t = mulmod(zeta, r[j + len], p);
        r[j + len] = (r[j] - t + p) % p;
        r[j] = (r[j] + t) % p;
      }
    }
  }
  return r;
}

/** The evaluation formula of §7, O(256²): the definition the fast NTT must match. */
export function nttByFormula(a: ArrayLike<number>, ix: number): Float64Array {
  const p = PRIMES[ix];
  const ps = psi(ix);
  const out = new Float64Array(256);
  for (let i = 0; i < 256; i++) {
    const x = powmod(ps, 2 * brv8(i) + 1, p);
    let acc = 0;
    let xp = 1;
    for (let j = 0; j < 256; j++) {
      acc = (acc + mulmod(a[j], xp, p)) % p;
      xp = mulmod(xp, x, p);
    }
    out[i] = acc;
  }
  return out;
}

/** uniform_mod(key, name, p, count) by rejection from ChaCha20 words. */
export function uniformMod(key: Uint8Array, name: string, p: number, count: number): Uint32Array {
  const out = new Uint32Array(count);
  let n = 0;
  let b = 0;
  while (n < count) {
    const want = count - n;
    const words = mask(key, `chainml/lattice/v2|${name}|${dec(b)}`, want + Math.floor(want / 64) + 16);
    for (const w of words) {
      const v = w & 0x7fffffff;
      if (v < p && n < count) out[n++] = v;
    }
    b += 1;
  }
  return out;
}

export interface CommitmentKey {
  L: number;
  /** per prime: A as (K, L, 256) and B' as (K, H, 256), C order */
  A: Uint32Array[];
  B: Uint32Array[];
}

export function matrixKey(seed: Uint8Array, ix: number): Uint8Array {
  return sha(concat(ascii("chainml/lattice/v2"), seed, u8(ix)));
}

export function commitmentKey(seed: Uint8Array, length: number): CommitmentKey {
  const L = Math.ceil(length / D);
  const A: Uint32Array[] = [];
  const B: Uint32Array[] = [];
  for (let ix = 0; ix < 2; ix++) {
    const key = matrixKey(seed, ix);
    A.push(uniformMod(key, "A", PRIMES[ix], K * L * D));
    B.push(uniformMod(key, "B", PRIMES[ix], K * H * D));
  }
  return { L, A, B };
}

const reduce = (v: number, p: number): number => ((v % p) + p) % p;

/** Commit(u; r) as the (2, K, 256) array of residues. `u` has at most L·256 signed values,
 * `r` (K+H)·256 signed values. */
export function commit(ck: CommitmentKey, u: ArrayLike<number>, r: ArrayLike<number>): Uint32Array {
  if (r.length !== (K + H) * D) throw new RangeError("randomness must be (K+H)·256 values");
  if (u.length > ck.L * D) throw new RangeError("vector longer than the key");
  const out = new Uint32Array(2 * K * D);
  for (let ix = 0; ix < 2; ix++) {
    const p = PRIMES[ix];
    const uh: Float64Array[] = [];
    for (let b = 0; b < ck.L; b++) {
      const el = new Float64Array(D);
      for (let c = 0; c < D; c++) {
        const pos = b * D + c;
        el[c] = pos < u.length ? reduce(u[pos], p) : 0;
      }
      uh.push(ntt(el, ix));
    }
    const rh: Float64Array[] = [];
    for (let e = 0; e < K + H; e++) {
      const el = new Float64Array(D);
      for (let c = 0; c < D; c++) el[c] = reduce(r[e * D + c], p);
      rh.push(ntt(el, ix));
    }
    const A = ck.A[ix];
    const B = ck.B[ix];
    for (let k = 0; k < K; k++) {
      const acc = Float64Array.from(rh[k]);
      for (let b = 0; b < ck.L; b++) {
        const base = (k * ck.L + b) * D;
        const ub = uh[b];
        for (let s = 0; s < D; s++) acc[s] = (acc[s] + mulmod(A[base + s], ub[s], p)) % p;
      }
      for (let h = 0; h < H; h++) {
        const base = (k * H + h) * D;
        const rb = rh[K + h];
        for (let s = 0; s < D; s++) acc[s] = (acc[s] + mulmod(B[base + s], rb[s], p)) % p;
      }
      out.set(acc, (ix * K + k) * D);
    }
  }
  return out;
}

/** Parse a 16,384-byte commitment; refuses another length or a value ≥ its prime. */
export function parseCommitment(b: Uint8Array): Uint32Array {
  if (b.length !== COMMITMENT_BYTES) throw new RangeError(`a commitment is ${COMMITMENT_BYTES} bytes, not ${b.length}`);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out = new Uint32Array(2 * K * D);
  for (let i = 0; i < out.length; i++) {
    const v = dv.getUint32(4 * i, true);
    if (v >= PRIMES[Math.floor(i / (K * D))]) throw new RangeError("a commitment value is not below its prime");
    out[i] = v;
  }
  return out;
}

export function serializeCommitment(c: Uint32Array): Uint8Array {
  const out = new Uint8Array(c.length * 4);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < c.length; i++) dv.setUint32(4 * i, c[i], true);
  return out;
}

/** Entry-wise sum of commitments modulo each prime. */
export function addCommitments(cs: Uint32Array[]): Uint32Array {
  const out = new Uint32Array(2 * K * D);
  for (const c of cs) {
    for (let i = 0; i < out.length; i++) {
      const p = PRIMES[Math.floor(i / (K * D))];
      out[i] = (out[i] + c[i]) % p;
    }
  }
  return out;
}
