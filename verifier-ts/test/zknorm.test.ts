/** The norm-bound proof vectors of docs/protocol/vectors/zk-norm-v3.json, checked by this
 * verifier (written from docs/protocol/zk-norm.md): the generators and commitments are
 * recomputed, every valid proof verifies alone and in a batch, every tampered one is
 * refused with the typed error the file names, and the aggregate check holds for the true
 * sum only. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { hex, unhex } from "../src/bytes.js";
import { InvalidNormProof, MalformedNormProof, AggregateMismatch, VerificationError } from "../src/errors.js";
import { decodePoint, decodeScalar, encodePoint, generators, msm, ORDER } from "../src/g1.js";
import {
  blindingFromLimbSums,
  boundSqFor,
  GEN_DST,
  gens,
  invalidNormProofs,
  NormContext,
  NormParams,
  verifyAggregate,
  verifyNorm,
} from "../src/zknorm.js";
import { contextOf, vectors } from "./helpers.js";

const V = vectors("zk-norm-v3.json");


const paramsOf = (p: any) => new NormParams(p.dim, BigInt(p.bound_sq));

test("the file is version 3 with the generators' and the transcript's tags the verifier uses", () => {
  assert.equal(V.version, 3);
  assert.equal(V.dst, GEN_DST);
  assert.equal(V.transcript_dst, "chainml/zk-norm/v3");
});

test("the generators are recomputed byte for byte (G0, G1, H0 of H, H0, U, Q, RG0, RH0)", () => {
  const g = V.generators;
  const one = (label: string, i: number) => hex(encodePoint(generators(GEN_DST, label, i + 1)[i]));
  assert.equal(one("G", 0), g.G0);
  assert.equal(one("G", 1), g.G1);
  assert.equal(one("H", 0), g.H0_of_H);
  assert.equal(one("H0", 0), g.H0);
  assert.equal(one("U", 0), g.U);
  assert.equal(one("Q", 0), g.Q);
  assert.equal(one("RG", 0), g.RG0);
  assert.equal(one("RH", 0), g.RH0);
});

test("each valid proof's commitment opens to its vector and blinding: C = <x, G> + <x, H> + r·H0", () => {
  for (const p of V.proofs.filter((q: any) => q.expect === "valid")) {
    const params = paramsOf(p);
    const g = gens(params.padded);
    const n = p.x.length;
    const xs = p.x.map((v: number) => BigInt(v));
    const C = msm([...g.g.slice(0, n), ...g.h.slice(0, n), g.h0], [...xs, ...xs, BigInt(p.blinding)]);
    assert.equal(hex(encodePoint(C)), p.commitment, p.name);
  }
});

for (const p of V.proofs) {
  test(`vector "${p.name}": ${p.expect}`, () => {
    const run = () => verifyNorm(contextOf(p.context), paramsOf(p), unhex(p.commitment), unhex(p.proof));
    if (p.expect === "valid") run();
    else if (p.expect === "malformed") assert.throws(run, MalformedNormProof);
    else {
      assert.equal(p.expect, "invalid");
      assert.throws(run, (e: unknown) => e instanceof InvalidNormProof && !(e instanceof MalformedNormProof));
    }
  });
}

test("the proofs of one dimension in one batch: the valid pass together, the others are named", () => {
  const groups = new Map<string, any[]>();
  for (const p of V.proofs) {
    const key = `${p.dim}`; // one batch may mix bounds (v2 claims: a bound per weight)
    groups.set(key, [...(groups.get(key) ?? []), p]);
  }
  for (const ps of groups.values()) {
    const items = ps.map((p): [NormContext, Uint8Array, Uint8Array, NormParams] => [contextOf(p.context), unhex(p.commitment), unhex(p.proof), paramsOf(p)]);
    const want = ps.flatMap((p, k) => (p.expect === "valid" ? [] : [k]));
    assert.deepEqual(invalidNormProofs(items), want);
    const valid = items.filter((_, k) => !want.includes(k));
    assert.deepEqual(invalidNormProofs(valid), []);
  }
});

test("a proof for one statement is refused under another dimension or bound", () => {
  const p = V.proofs.find((q: any) => q.expect === "valid" && q.dim === 3);
  const ctx = contextOf(p.context);
  assert.throws(() => verifyNorm(ctx, new NormParams(4, BigInt(p.bound_sq)), unhex(p.commitment), unhex(p.proof)), MalformedNormProof);
  assert.throws(() => verifyNorm(ctx, new NormParams(3, BigInt(p.bound_sq) - 1n), unhex(p.commitment), unhex(p.proof)), InvalidNormProof);
  for (const field of ["chainId", "jobId", "round", "attempt"] as const) {
    const other = { ...ctx, [field]: BigInt(ctx[field]) + 1n };
    assert.throws(() => verifyNorm(other, paramsOf(p), unhex(p.commitment), unhex(p.proof)), InvalidNormProof, field);
  }
  for (const field of ["jobs", "trainer"] as const) {
    const other = { ...ctx, [field]: "0x" + "77".repeat(20) };
    assert.throws(() => verifyNorm(other, paramsOf(p), unhex(p.commitment), unhex(p.proof)), InvalidNormProof, field);
  }
});

test("a commitment that is not a canonical point, or a proof with a point that is not, is malformed", () => {
  const p = V.proofs.find((q: any) => q.expect === "valid" && q.dim === 3);
  const ctx = contextOf(p.context);
  const params = paramsOf(p);
  const c = unhex(p.commitment);
  const bad = [
    c.slice(0, 47),
    Uint8Array.from(c, (b, i) => (i === 0 ? b & 0x7f : b)), // the compression flag cleared
    Uint8Array.from(c, (b, i) => (i === 0 ? b ^ 0x20 : b)), // the other y
    new Uint8Array(48).fill(0xff),
  ];
  for (const cm of bad.slice(0, 2).concat(bad.slice(3))) assert.throws(() => verifyNorm(ctx, params, cm, unhex(p.proof)), MalformedNormProof);
  // the other y is a point, but not the committed one
  assert.throws(() => verifyNorm(ctx, params, bad[2], unhex(p.proof)), InvalidNormProof);
  const proof = unhex(p.proof);
  proof.set(new Uint8Array(48).fill(0xff), 1); // V
  assert.throws(() => verifyNorm(ctx, params, c, proof), MalformedNormProof);
  const v2 = unhex(p.proof);
  v2[0] = 2;
  assert.throws(() => verifyNorm(ctx, params, c, v2), MalformedNormProof);
  assert.throws(() => verifyNorm(ctx, params, c, new Uint8Array(0)), MalformedNormProof);
});

test("a point on the curve outside the prime-order subgroup is refused", () => {
  // x = 0..: the first x on y² = x³ + 4 whose point has a component outside G1
  for (let x = 0n; x < 1000n; x++) {
    const enc = new Uint8Array(48);
    let v = x;
    for (let i = 47; i >= 0; i--) {
      enc[i] = Number(v & 0xffn);
      v >>= 8n;
    }
    enc[0] |= 0x80;
    try {
      decodePoint(enc);
    } catch (e) {
      if (/torsion|subgroup/i.test((e as Error).message)) return; // refused for the subgroup
      continue; // not on the curve
    }
  }
  assert.fail("no point outside the subgroup found to try");
});

test("scalars: 32 bytes big-endian below r", () => {
  assert.equal(decodeScalar(new Uint8Array(32)), 0n);
  const r = new Uint8Array(32);
  let v = ORDER;
  for (let i = 31; i >= 0; i--) {
    r[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  assert.throws(() => decodeScalar(r), RangeError);
  r[31] -= 1;
  assert.equal(decodeScalar(r), ORDER - 1n);
});

for (const a of V.aggregates) {
  test(`aggregate "${a.name}": ${a.expect}`, () => {
    const R = blindingFromLimbSums(a.blinding_limb_sums);
    assert.equal(R, BigInt(a.blinding_sum));
    const run = () => verifyAggregate(a.commitments.map((c: string) => unhex(c)), a.total.map((x: number) => BigInt(x)), R);
    if (a.expect === "valid") run();
    else assert.throws(run, AggregateMismatch);
  });
}

test("the aggregate check refuses a missing commitment, another blinding, and a non-point", () => {
  const a = V.aggregates.find((x: any) => x.expect === "valid");
  const cs = a.commitments.map((c: string) => unhex(c));
  const total = a.total.map((x: number) => BigInt(x));
  const R = BigInt(a.blinding_sum);
  assert.throws(() => verifyAggregate(cs.slice(1), total, R), AggregateMismatch);
  assert.throws(() => verifyAggregate(cs, total, R + 1n), AggregateMismatch);
  assert.throws(() => verifyAggregate([], total, R), AggregateMismatch);
  assert.throws(() => verifyAggregate([...cs.slice(1), new Uint8Array(48)], total, R), VerificationError);
});

test("bound_sq_for: (⌈clip·2^f⌉ + ⌊√n⌋ + 1)²", () => {
  assert.equal(boundSqFor(2.0, 10, 4810), (2048n + 69n + 1n) ** 2n);
  assert.equal(boundSqFor(0.1, 3, 1), (1n + 1n + 1n) ** 2n);
  assert.throws(() => boundSqFor(0, 3, 1), RangeError);
});
