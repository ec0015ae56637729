/** A faster multi-scalar multiplication on G1 for the verifier's large MSMs: Pippenger's
 * bucket method with signed digits, each bucket's points summed in affine coordinates by
 * pairwise rounds that share one field inversion (Montgomery's trick), the buckets then
 * combined with `@noble/curves`' own (complete, projective) addition. The field arithmetic
 * is BigInt modulo the base field's prime; every exceptional case of the affine addition
 * (equal points: doubling; opposite points: the identity) is handled. Checked against
 * noble's `pippenger` on random and adversarial inputs (test/msm.test.ts). */
import { bls12_381 } from "@noble/curves/bls12-381.js";

const Point = bls12_381.G1.Point;
type Point = InstanceType<typeof Point>;
const Fp = bls12_381.fields.Fp;
const P = Fp.ORDER;

interface Affine {
  x: bigint;
  y: bigint;
}

const affineCache = new WeakMap<object, Affine | null>();

/** The points in affine form (null for the identity): one field inversion for all the
 * points not seen before (Montgomery's trick), cached for reused points (the generators). */
function toAffine(points: Point[]): (Affine | null)[] {
  const fresh: Point[] = [];
  for (const pt of points) if (!affineCache.has(pt)) fresh.push(pt);
  const nonzero = fresh.filter((pt) => {
    if (pt.is0()) {
      affineCache.set(pt, null);
      return false;
    }
    return true;
  });
  if (nonzero.length) {
    const zInv = invertAll(nonzero.map((pt) => pt.Z));
    nonzero.forEach((pt, i) => affineCache.set(pt, { x: (pt.X * zInv[i]) % P, y: (pt.Y * zInv[i]) % P }));
  }
  return points.map((pt) => affineCache.get(pt)!);
}

const sub = (a: bigint, b: bigint): bigint => {
  const d = a - b;
  return d < 0n ? d + P : d;
};

/** Invert every (nonzero) element of `xs` with one field inversion. */
function invertAll(xs: bigint[]): bigint[] {
  const n = xs.length;
  const prefix: bigint[] = new Array(n);
  let acc = 1n;
  for (let i = 0; i < n; i++) {
    prefix[i] = acc;
    acc = (acc * xs[i]) % P;
  }
  let inv = Fp.inv(acc);
  const out: bigint[] = new Array(n);
  for (let i = n - 1; i >= 0; i--) {
    out[i] = (inv * prefix[i]) % P;
    inv = (inv * xs[i]) % P;
  }
  return out;
}

/** Sum each list of affine points (in place: each list ends with at most one point; an empty
 * list is the identity), by rounds of pairwise additions sharing one inversion. */
function sumBuckets(lists: Affine[][]): void {
  for (;;) {
    const pairs: [Affine, Affine, number][] = []; // a, b, bucket
    const dens: bigint[] = [];
    const kinds: number[] = []; // 0: chord, 1: tangent
    const next: Affine[][] = lists.map(() => []);
    let more = false;
    lists.forEach((list, k) => {
      if (list.length < 2) {
        next[k] = list;
        return;
      }
      more = true;
      for (let i = 0; i + 1 < list.length; i += 2) {
        const a = list[i];
        const b = list[i + 1];
        if (a.x === b.x) {
          if (a.y !== b.y || a.y === 0n) continue; // a = −b: the identity, nothing to keep
          pairs.push([a, b, k]);
          dens.push((2n * a.y) % P);
          kinds.push(1);
        } else {
          pairs.push([a, b, k]);
          dens.push(sub(b.x, a.x));
          kinds.push(0);
        }
      }
      if (list.length % 2) next[k].push(list[list.length - 1]);
    });
    if (!more) return;
    const invs = invertAll(dens);
    pairs.forEach(([a, b, k], j) => {
      const lambda = kinds[j] === 0 ? (sub(b.y, a.y) * invs[j]) % P : (3n * ((a.x * a.x) % P) * invs[j]) % P;
      const x3 = sub(sub((lambda * lambda) % P, a.x), b.x);
      const y3 = sub((lambda * sub(a.x, x3)) % P, a.y);
      next[k].push({ x: x3, y: y3 });
    });
    lists.forEach((_, k) => (lists[k] = next[k]));
  }
}

/** Σ scalars[i]·points[i], scalars in [0, r) (r < 2^255). */
export function msmFast(points: Point[], scalars: bigint[]): Point {
  if (points.length !== scalars.length) throw new RangeError("msm: as many scalars as points");
  const aff = toAffine(points);
  const idx: number[] = [];
  for (let i = 0; i < points.length; i++) if (scalars[i] !== 0n && aff[i] !== null) idx.push(i);
  const n = idx.length;
  if (n === 0) return Point.ZERO;
  const c = n < 32 ? 3 : Math.max(4, Math.floor(Math.log2(n)) - 3); // 10 bits at 10^4 points (measured best)
  const half = 1 << (c - 1);
  const mask = BigInt((1 << c) - 1);
  const windows = Math.ceil(256 / c) + 1;
  // signed digits in [−2^(c−1), 2^(c−1)): scalar = Σ_w d_w·2^(c·w)
  const digits: Int32Array[] = Array.from({ length: windows }, () => new Int32Array(n));
  idx.forEach((i, j) => {
    let s = scalars[i];
    if (s < 0n) throw new RangeError("msm: negative scalar");
    let carry = 0;
    for (let w = 0; w < windows; w++) {
      let d = Number(s & mask) + carry;
      s >>= BigInt(c);
      carry = 0;
      if (d >= half) {
        d -= 1 << c;
        carry = 1;
      }
      digits[w][j] = d;
    }
    if (carry || s !== 0n) throw new RangeError("msm: scalar too large");
  });
  let total = Point.ZERO;
  for (let w = windows - 1; w >= 0; w--) {
    for (let t = 0; t < c; t++) total = total.double();
    const lists: Affine[][] = Array.from({ length: half + 1 }, () => []);
    const dw = digits[w];
    for (let j = 0; j < n; j++) {
      const d = dw[j];
      if (d === 0) continue;
      const a = aff[idx[j]]!;
      if (d > 0) lists[d].push(a);
      else lists[-d].push({ x: a.x, y: a.y === 0n ? 0n : P - a.y });
    }
    sumBuckets(lists);
    // Σ_k k·B_k = Σ_k (B_k + … + B_max), by a running sum from the top
    let running = Point.ZERO;
    let acc = Point.ZERO;
    for (let k = half; k >= 1; k--) {
      const b = lists[k][0];
      if (b) running = running.add(Point.fromAffine({ x: b.x, y: b.y }));
      acc = acc.add(running);
    }
    total = total.add(acc);
  }
  return total;
}
