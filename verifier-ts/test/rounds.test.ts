/** Real chainml rounds (made in process by fixtures/make_round.py) audited by this
 * verifier: the honest ones check out with chainml's own sum, and each tampered copy is
 * refused by the check that the specification says catches it. */
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { loadCase } from "../src/case.js";
import { VerificationError } from "../src/errors.js";
import { auditRound } from "../src/verify.js";
import { ROOT } from "./helpers.js";

let out = "";
let expected: any;

before(() => {
  out = mkdtempSync(join(tmpdir(), "verifier-ts-"));
  execFileSync(resolve(ROOT, ".venv", "bin", "python"), [resolve(ROOT, "verifier-ts", "fixtures", "make_round.py"), out], {
    cwd: ROOT,
    stdio: ["ignore", "ignore", "inherit"],
    timeout: 120_000,
  });
  expected = JSON.parse(readFileSync(join(out, "expected.json"), "utf8"));
});

after(() => {
  if (out) rmSync(out, { recursive: true, force: true });
});

const audit = (name: string) => {
  const c = loadCase(join(out, "cases", `${name}.json`));
  return auditRound(c.facts, c.fetch);
};

for (const name of ["honest", "honest_verifiable", "honest_dp"]) {
  test(`${name}: the round checks out, with chainml's sum, close to the plain sum of the survivors' inputs`, () => {
    const r = audit(name);
    const e = expected[name];
    assert.deepEqual(r.counted, e.survivors);
    assert.equal(r.params!.fracBits, e.frac_bits);
    assert.deepEqual(r.sum, e.chainml_sum);
    const tol = (e.survivors.length + 1) / 2 ** e.frac_bits;
    r.sum!.forEach((x, c) => assert.ok(Math.abs(x - e.plain_sum[c]) <= tol, `coordinate ${c}: ${x} vs ${e.plain_sum[c]}`));
  });
}

const refusals: Record<string, string> = {
  sum_one_off: "10.1/9 compare",
  swapped_input: "10.1/6 masked inputs",
  forged_signature: "10.1/3 inputs",
  forged_approval: "10.1/2 approvals",
  wrong_bitmap: "12/7 bitmap",
  wrong_root: "12/7 root",
  cid_mismatch: "cid",
  input_cid_mismatch: "cid",
  config_mismatch: "12/2 configuration",
  wrong_params: "12/5 parameters",
  verifiable_sum_one_off: "10.2/5 commitment",
};

for (const [name, check] of Object.entries(refusals)) {
  test(`${name}: refused by ${check}`, () => {
    assert.throws(
      () => audit(name),
      (e: unknown) => e instanceof VerificationError && e.check === check,
    );
  });
}

test("the command line exits 0 on an honest round and 3 on a tampered one, one JSON line each", () => {
  const cli = resolve(ROOT, "verifier-ts", "dist", "src", "cli.js");
  const ok = spawnSync(process.execPath, [cli, join(out, "cases", "honest.json")], { encoding: "utf8" });
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(JSON.parse(ok.stdout).ok, true);
  const bad = spawnSync(process.execPath, [cli, join(out, "cases", "honest.json"), join(out, "cases", "sum_one_off.json")], { encoding: "utf8" });
  assert.equal(bad.status, 3, bad.stderr);
  const lines = bad.stdout.trim().split("\n").map((l) => JSON.parse(l));
  assert.deepEqual(lines.map((l) => [l.ok, l.check]), [[true, undefined], [false, "10.1/9 compare"]]);
  const missing = spawnSync(process.execPath, [cli, join(out, "no-such-case.json")], { encoding: "utf8" });
  assert.equal(missing.status, 2);
});
