/** The verifier's MSM (src/msm.ts) against noble's `pippenger` on random and adversarial
 * inputs: repeated points (the affine doubling), opposite points (the identity), the
 * identity, zero and extreme scalars, sizes around the window changes. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { pippenger } from "@noble/curves/abstract/curve.js";
import { generators, ORDER, Point } from "../src/g1.js";
import { msmFast } from "../src/msm.js";

const rand = (): bigint => {
  let v = 0n;
  for (const b of randomBytes(40)) v = (v << 8n) | BigInt(b);
  return v % ORDER;
};
const base = generators("chainml/verifier-ts/msm-test", "P", 40);
const reference = (pts: any[], scs: bigint[]) => pippenger(Point as any, pts, scs);

test("random points and scalars, sizes 1 to 600: the same point as noble's pippenger", () => {
  for (const n of [1, 2, 3, 31, 32, 33, 100, 257, 600]) {
    const pts = Array.from({ length: n }, (_, i) => base[i % base.length].multiply(BigInt(i + 1)));
    const scs = Array.from({ length: n }, rand);
    assert.ok(msmFast(pts, scs).equals(reference(pts, scs)), `n = ${n}`);
  }
});

test("repeated points, opposite points, the identity, zero and extreme scalars", () => {
  const p = base[0];
  const q = base[1];
  const cases: [any[], bigint[]][] = [
    [Array(200).fill(p), Array(200).fill(5n)], // one bucket, every addition a doubling
    [[...Array(100).fill(p), ...Array(100).fill(p.negate())], Array(200).fill(7n)], // cancel to the identity
    [[p, p.negate(), q, q], [3n, 3n, 1n, ORDER - 1n]],
    [[p, Point.ZERO, q, p], [0n, 9n, ORDER - 1n, 1n]],
    [Array(300).fill(p), Array.from({ length: 300 }, (_, i) => BigInt(i))], // every bucket
    [Array.from({ length: 300 }, (_, i) => (i % 2 ? p : p.negate())), Array.from({ length: 300 }, () => 1n << 254n)],
    [Array.from({ length: 128 }, (_, i) => base[i % 3]), Array.from({ length: 128 }, (_, i) => (i % 5 === 0 ? 0n : ORDER - BigInt(i)))],
  ];
  for (const [pts, scs] of cases) {
    assert.ok(msmFast(pts, scs).equals(reference(pts, scs)));
  }
  assert.ok(msmFast([p, p.negate()], [1n, 1n]).equals(Point.ZERO));
  assert.ok(msmFast([], []).equals(Point.ZERO));
  assert.throws(() => msmFast([p], [1n, 2n]), RangeError);
  assert.throws(() => msmFast([p], [-1n]), RangeError);
});
