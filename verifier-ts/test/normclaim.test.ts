/** The norm claim of docs/protocol/zk-norm.md §12.2 and §13 against
 * docs/protocol/vectors/zk-norm-claim-v2.json: the canonical claim decodes to its fields and
 * its proof verifies, a truncated proof is MalformedNormProof, every refused spelling is
 * refused before any curve arithmetic, and the weights' clips, grid values and bounds are
 * recomputed. Also the range rule of §12.1. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { ascii, hex } from "../src/bytes.js";
import { MalformedNormProof, VerificationError } from "../src/errors.js";
import { decodeClaim, encodeClaim, gridWeight, headroom, weightedClip } from "../src/normround.js";
import { RoundParams } from "../src/params.js";
import { boundSqFor, NormParams, verifyNorm } from "../src/zknorm.js";
import { contextOf, vectors } from "./helpers.js";

const V = vectors("zk-norm-claim-v2.json");
const statement = new NormParams(V.statement.dim, BigInt(V.statement.bound_sq));

test("the canonical claim decodes to its fields, re-encodes to its bytes, and its proof verifies", () => {
  const c = decodeClaim(ascii(V.claim));
  assert.equal(V.format, "chainml-norm-claim/2");
  assert.equal(c.sender, V.fields.sender);
  assert.equal(c.dataset, BigInt(V.fields.dataset));
  assert.equal(c.records, BigInt(V.fields.records));
  assert.equal(hex(c.commitment), V.fields.commitment);
  assert.equal(c.proof.length, V.fields.proof_bytes);
  assert.deepEqual(encodeClaim(c), ascii(V.claim));
  verifyNorm(contextOf(V.context), statement, c.commitment, c.proof);
});

test("a claim with a truncated proof decodes, and its proof is MalformedNormProof", () => {
  assert.equal(V.truncated.error, "MalformedNormProof");
  const c = decodeClaim(ascii(V.truncated.claim));
  assert.throws(() => verifyNorm(contextOf(V.context), statement, c.commitment, c.proof), MalformedNormProof);
});

for (const r of V.refused) {
  test(`refused spelling "${r.name}": malformed claim`, () => {
    assert.equal(r.error, "ProtocolViolation");
    assert.throws(
      () => decodeClaim(ascii(r.claim)),
      (e: unknown) => e instanceof VerificationError && e.check === "zk-norm/12.2 claim",
    );
  });
}

test("an L∞ proof (§14) travels as the optional field linf: it decodes and re-encodes; an empty one is refused", () => {
  const withLinf = V.claim.replace('"format"', '"format"').replace('"proof":', '"linf":"0102","proof":');
  const c = decodeClaim(ascii(withLinf));
  assert.equal(hex(c.linf), "0102");
  assert.deepEqual(encodeClaim(c), ascii(withLinf));
  assert.equal(decodeClaim(ascii(V.claim)).linf.length, 0);
  for (const bad of [withLinf.replace('"linf":"0102"', '"linf":""'), withLinf.replace('"linf":"0102"', '"linf":"01AB"'), withLinf.replace('"linf":"0102","proof"', '"proof"').replace('"records"', '"linf":"0102","records"')]) {
    assert.throws(() => decodeClaim(ascii(bad)), (e: unknown) => e instanceof VerificationError && e.check === "zk-norm/12.2 claim");
  }
});

test("claims longer than 262,656 bytes, not UTF-8, not an object, or with a duplicate key are refused", () => {
  const big = V.claim.replace(/"proof":"([0-9a-f]+)"/, (m: string, h: string) => `"proof":"${h}${"00".repeat(130_000)}"`);
  for (const raw of [ascii(big), Uint8Array.of(0xff, 0xfe), ascii("[]"), ascii(V.claim.replace('{"commitment"', '{"sender":1,"commitment"'))]) {
    assert.throws(() => decodeClaim(raw), (e: unknown) => e instanceof VerificationError && e.check === "zk-norm/12.2 claim");
  }
});

test("weights (§13.1): weighted clip, grid weight and bound, recomputed for every case of the file", () => {
  for (const w of V.weights) {
    const p = { fracBits: w.frac_bits } as RoundParams;
    assert.equal(weightedClip(w.clip, BigInt(w.records), w.weight_base), w.weighted_clip);
    assert.equal(gridWeight(p, BigInt(w.records), w.weight_base), BigInt(w.grid_weight));
    assert.equal(boundSqFor(w.weighted_clip, w.frac_bits, w.dim), BigInt(w.bound_sq));
  }
});

test("the range's headroom (§12.1): (√n + 1 + 4·65535 + 1) / 2^f", () => {
  assert.equal(headroom(20, 4810), (Math.sqrt(4810) + 1 + 262140 + 1) / 2 ** 20);
  assert.ok(headroom(24, 43) < headroom(20, 43));
});
