/** The L∞ proof vectors of docs/protocol/vectors/zk-norm-linf-v1.json (zk-norm.md §11),
 * checked by this verifier: valid proofs verify, every tampered or cheating one is refused
 * with the typed error the file names. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { hex, unhex } from "../src/bytes.js";
import { InvalidNormProof, MalformedNormProof } from "../src/errors.js";
import { encodePoint, msm } from "../src/g1.js";
import { LinfParams, verifyLinf } from "../src/zklinf.js";
import { gens, ipaShape } from "../src/zknorm.js";
import { contextOf, vectors } from "./helpers.js";

const V = vectors("zk-norm-linf-v1.json");

test("the file is version 1 of chainml/zk-linf, on the norm proofs' generators", () => {
  assert.equal(V.version, 1);
  assert.equal(V.transcript_dst, "chainml/zk-linf/v1");
});

test("the valid proofs' commitments are norm-proof commitments of their vectors (§11: the same C)", () => {
  for (const p of V.proofs.filter((q: any) => q.expect === "valid")) {
    const n = p.x.length;
    const g = gens(ipaShape(n).stop * 2 ** ipaShape(n).k);
    const xs = p.x.map((v: number) => BigInt(v));
    const C = msm([...g.g.slice(0, n), ...g.h.slice(0, n), g.h0], [...xs, ...xs, BigInt(p.blinding)]);
    assert.equal(hex(encodePoint(C)), p.commitment, p.name);
  }
});

for (const p of V.proofs) {
  test(`L∞ vector "${p.name}": ${p.expect}`, () => {
    const run = () => verifyLinf(contextOf(p.context), new LinfParams(p.dim, p.bound), unhex(p.commitment), unhex(p.proof));
    if (p.expect === "valid") run();
    else if (p.expect === "malformed") assert.throws(run, MalformedNormProof);
    else {
      assert.equal(p.expect, "invalid");
      assert.throws(run, (e: unknown) => e instanceof InvalidNormProof && !(e instanceof MalformedNormProof));
    }
  });
}

test("an L∞ proof is refused under another bound's bit count (another length) and as a norm proof's commitment of another vector", () => {
  const p = V.proofs.find((q: any) => q.expect === "valid" && q.dim === 3);
  const ctx = contextOf(p.context);
  assert.throws(() => verifyLinf(ctx, new LinfParams(p.dim, p.bound * 4), unhex(p.commitment), unhex(p.proof)), MalformedNormProof);
  const other = V.proofs.find((q: any) => q.expect === "valid" && q.commitment !== p.commitment);
  assert.throws(() => verifyLinf(ctx, new LinfParams(p.dim, p.bound), unhex(other.commitment), unhex(p.proof)), InvalidNormProof);
});

test("the statement's bits and weights (§11.1): K = bitlen(2b), the weights' subset sums are exactly [0, 2b]", () => {
  for (const b of [1, 5, 6, 1000, 2 ** 15]) {
    const P = new LinfParams(3, b);
    assert.equal(P.bits, (2 * b).toString(2).length);
    const total = P.weights.reduce((x, y) => x + y, 0n);
    assert.equal(total, BigInt(2 * b));
    const top = P.weights[P.weights.length - 1];
    assert.ok(top >= 1n && top <= 1n << BigInt(P.bits - 1));
  }
  assert.throws(() => new LinfParams(3, 0), RangeError);
  assert.throws(() => new LinfParams(3, 2 ** 31), RangeError);
});
