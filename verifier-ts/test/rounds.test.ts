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
import { blobCid } from "../src/cid.js";
import { keccak256 } from "../src/primitives.js";
import { parseJson } from "../src/json.js";
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

for (const name of ["honest", "honest_verifiable", "honest_dp", "honest_cnn"]) {
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

test("honest_robust: a robust job's round checks out from its signed commitments", () => {
  const r = audit("honest_robust");
  assert.equal(r.aggregation, "krum");
  assert.deepEqual(r.counted, [1, 2, 4, 5]);
  assert.equal(r.sum, undefined);
});

const refusals: Record<string, string> = {
  robust_forged_signature: "12/2 robust",
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

/** The honest round with its record and transcript doctored by `edit` (re-stored under
 * their new CIDs, as an aggregator would post them), audited. */
function doctored(
  edit: (record: any, transcript: any, put: (b: Uint8Array | string) => string, facts: any, plant: (cid: string, b: string) => void) => void,
) {
  const c = loadCase(join(out, "cases", "honest.json"));
  const extra = new Map<string, Uint8Array>();
  const put = (b: Uint8Array | string): string => {
    const bytes = typeof b === "string" ? new Uint8Array(Buffer.from(b, "utf8")) : b;
    const cid = blobCid(bytes);
    extra.set(cid, bytes);
    return cid;
  };
  const canonical = (v: unknown): string => parseJson(JSON.stringify(v)).canonical;
  const record = JSON.parse(Buffer.from(c.fetch(c.facts.aggregateCid)!).toString());
  const transcript = JSON.parse(Buffer.from(c.fetch(record.transcript)!).toString());
  const facts = { ...c.facts };
  const before = record.transcript;
  const planted = new Map<string, Uint8Array>();
  edit(record, transcript, put, facts, (cid, b) => planted.set(cid, new Uint8Array(Buffer.from(b, "utf8"))));
  if (record.transcript === before) record.transcript = put(canonical(transcript));
  if (facts.aggregateCid === c.facts.aggregateCid) facts.aggregateCid = put(canonical(record));
  return auditRound(facts, (cid) => planted.get(cid) ?? extra.get(cid) ?? c.fetch(cid));
}

test("the control: the honest round re-stored through the doctoring path checks out", () => {
  assert.deepEqual(doctored(() => {}).counted, expected.honest.survivors);
});

const set = (path: string, value: unknown) => (record: any, transcript: any) => {
  const [where, ...keys] = path.split(".");
  let target = where === "record" ? record : transcript;
  for (const k of keys.slice(0, -1)) target = target[k];
  const last = keys[keys.length - 1];
  if (value === undefined) delete target[last];
  else target[last] = value;
};

const DOCTORED: Record<string, Parameters<typeof doctored>[0]> = {
  "transcript not canonical": (r, t, put) => (r.transcript = put(JSON.stringify(t, null, 1))),
  "sum of 4k+1 bytes": set("transcript.total", "00".repeat(41)),
  "sum of 3 bytes": set("transcript.total", "000000"),
  "sum in upper-case hex": (r, t) => (t.total = t.total.toUpperCase()),
  "a survivor's advert missing": set("transcript.adverts.3", undefined),
  "degree not the rule's": set("record.params.degree", 2),
  "graph seed not the rule's": set("record.params.graph_seed", "00".repeat(32)),
  "attempt missing": set("record.params.attempt", undefined),
  "attempt negative": set("record.params.attempt", -1),
  "attempt a string": set("record.params.attempt", "1"),
  "another attempt": set("record.params.attempt", 2),
  "transcript format unknown": set("transcript.format", "chainml-secagg-transcript/2"),
  "transcript with an extra field": set("transcript.extra", 1),
  "survivors not a list": set("transcript.survivors", 5),
  "survivors not ascending": (r, t) => t.survivors.reverse(),
  "seed of the wrong size": set("transcript.seeds.1", "00"),
  "input entry truncated": set("transcript.inputs.2", ["00".repeat(32)]),
  "partner id out of range": (r, t) => (t.inputs["2"][1] = [0, 70000]),
  "masked input of 7 bytes": (r, t, put) => (r.inputs["1"] = put(new Uint8Array(7))),
  "masked input missing": set("record.inputs.5", undefined),
  "masked input CID not a CID": set("record.inputs.5", "not-a-cid"),
  "transcript blob missing": set("record.transcript", "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"),
  "record without inputs": set("record.inputs", undefined),
  "seed that does not open its commitment": set("transcript.seeds.2", "11".repeat(32)),
  "a survivor's mask key revealed": (r, t) => (t.mask_keys["1"] = t.seeds["1"]),
  "the dropped trainer's mask key withheld": set("transcript.mask_keys.4", undefined),
  "record format unknown": set("record.format", "chainml-round-record/1"),
  "record of another round": set("record.round", 3),
  "record job not a number": set("record.job", "9"),
  "configuration not a string": set("record.config", 5),
  "relabelled a robust round": (r, t) => {
    r.aggregation = "krum";
    r.commitments = {};
    r.signatures = {};
  },
  "the record under its CID is another record": (r, t, put, facts, plant) => {
    facts.aggregateCid = put(parseJson(JSON.stringify(r)).canonical);
    plant(facts.aggregateCid, parseJson(JSON.stringify({ ...r, round: r.round })).canonical + " ");
  },
  "record not in its canonical encoding": (r, t, put, facts) => (facts.aggregateCid = put(JSON.stringify(r, null, 1))),
  "record with its keys out of order": (r, t, put, facts) => (facts.aggregateCid = put(JSON.stringify({ transcript: r.transcript, ...r }))),
  "record not JSON": (r, t, put, facts) => (facts.aggregateCid = put("{not json")),
  "record a JSON list": (r, t, put, facts) => (facts.aggregateCid = put("[]")),
  "record with a duplicate key": (r, t, put, facts) => (facts.aggregateCid = put('{"format":"x","format":"chainml-round-record/2"}')),
  "configuration on chain not canonical": (r, t, put, facts) => {
    r.config = r.config.replace(",", ", ");
    facts.configHash = keccak256(new Uint8Array(Buffer.from(r.config)));
  },
  "configuration of an unknown dp mode": (r, t, put, facts) => {
    r.config = r.config.replace('"epochs"', '"dp":"local","epochs"');
    facts.configHash = keccak256(new Uint8Array(Buffer.from(r.config)));
  },
  "configuration of an unknown model": (r, t, put, facts) => {
    r.config = r.config.replace('"model":"mlp"', '"model":"cnn"');
    facts.configHash = keccak256(new Uint8Array(Buffer.from(r.config)));
  },
};

for (const [name, edit] of Object.entries(DOCTORED)) {
  test(`doctored, refused with a typed error: ${name}`, () => {
    assert.throws(() => doctored(edit), VerificationError);
  });
}
