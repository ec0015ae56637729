/** The group G1 of BLS12-381 for the norm-bound proofs (docs/protocol/zk-norm.md §3), over
 * `@noble/curves` (audited): canonical point and scalar decoding, the generators, and a
 * multi-scalar multiplication. */
import { bls12_381 } from "@noble/curves/bls12-381.js";
import { pippenger } from "@noble/curves/abstract/curve.js";
import { concat, equal } from "./bytes.js";
import { msmFast } from "./msm.js";

const G1 = bls12_381.G1;
export const Point = G1.Point;
export type Point = InstanceType<typeof G1.Point>;

/** r, the order of G1. */
export const ORDER = 0x73eda753299d7d483339d80809a1d80553bda402fffe5bfeffffffff00000001n;
export const POINT_BYTES = 48;
export const SCALAR_BYTES = 32;

export const mod = (v: bigint): bigint => {
  const m = v % ORDER;
  return m < 0n ? m + ORDER : m;
};

export function inv(v: bigint): bigint {
  // extended Euclid: v is nonzero modulo r
  let a = mod(v);
  if (a === 0n) throw new RangeError("no inverse of zero");
  let b = ORDER;
  let x0 = 1n;
  let x1 = 0n;
  while (b !== 0n) {
    const q = a / b;
    [a, b] = [b, a - q * b];
    [x0, x1] = [x1, x0 - q * x1];
  }
  return mod(x0);
}

/** A 48-byte compressed point (ZCash serialisation), refused unless it is the canonical
 * encoding of a point on the curve in the prime-order subgroup. Throws RangeError. */
export function decodePoint(data: Uint8Array): Point {
  if (data.length !== POINT_BYTES) throw new RangeError(`a point is ${POINT_BYTES} bytes`);
  let p: Point;
  try {
    p = Point.fromBytes(data); // on the curve and torsion-free (assertValidity)
  } catch (e) {
    throw new RangeError(`not a G1 point: ${(e as Error).message}`);
  }
  if (!equal(p.toBytes(true), data)) throw new RangeError("not the canonical encoding of a G1 point");
  return p;
}

export function encodePoint(p: Point): Uint8Array {
  return p.toBytes(true);
}

/** 32 bytes big-endian, below r. Throws RangeError. */
export function decodeScalar(data: Uint8Array): bigint {
  if (data.length !== SCALAR_BYTES) throw new RangeError(`a scalar is ${SCALAR_BYTES} bytes`);
  let v = 0n;
  for (const b of data) v = (v << 8n) | BigInt(b);
  if (v >= ORDER) throw new RangeError("scalar not reduced modulo the group order");
  return v;
}

export function encodeScalar(v: bigint): Uint8Array {
  const out = new Uint8Array(SCALAR_BYTES);
  let x = mod(v);
  for (let i = SCALAR_BYTES - 1; i >= 0; i--) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

const cache = new Map<string, Point[]>();

/** Generator i of a family: RFC 9380 hash_to_curve (BLS12381G1_XMD:SHA-256_SSWU_RO_) of the
 * message `dst` under the domain tag `label ‖ u32be(i)` (zk-norm.md §3; its text had them
 * the other way round until this verifier found it: verifier-notes.md, item 12). Cached
 * per family. */
export function generators(dst: string, label: string, count: number): Point[] {
  const key = `${dst}\u0000${label}`;
  let have = cache.get(key);
  if (!have) cache.set(key, (have = []));
  const msg = new TextEncoder().encode(dst);
  const tag = new TextEncoder().encode(label);
  for (let i = have.length; i < count; i++) {
    const u32 = Uint8Array.of((i >>> 24) & 0xff, (i >>> 16) & 0xff, (i >>> 8) & 0xff, i & 0xff);
    have.push(G1.hashToCurve(msg, { DST: concat(tag, u32) }) as unknown as Point);
  }
  return have.slice(0, count);
}

/** Σ scalars[i]·points[i]; scalars are reduced modulo r, zero terms dropped. Large MSMs
 * (the verifier's: thousands of points) by `msmFast` (src/msm.ts, 2× noble's `pippenger`
 * at 10^4 points), small ones by noble's `pippenger`. */
export function msm(points: Point[], scalars: bigint[]): Point {
  if (points.length !== scalars.length) throw new RangeError("msm: as many scalars as points");
  const ps: Point[] = [];
  const ss: bigint[] = [];
  for (let i = 0; i < points.length; i++) {
    const s = mod(scalars[i]);
    if (s !== 0n) {
      ps.push(points[i]);
      ss.push(s);
    }
  }
  if (ps.length === 0) return Point.ZERO;
  return ps.length >= 256 ? msmFast(ps, ss) : pippenger(Point, ps, ss);
}
