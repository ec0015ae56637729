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
import { AggregateMismatch, VerificationError } from "../src/errors.js";
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
  name = "honest",
) {
  const c = loadCase(join(out, "cases", `${name}.json`));
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
  const get = (cid: string): Uint8Array | undefined => planted.get(cid) ?? extra.get(cid) ?? c.fetch(cid);
  blob = (cid: string) => Buffer.from(get(cid)!).toString("utf8");
  edit(record, transcript, put, facts, (cid, b) => planted.set(cid, new Uint8Array(Buffer.from(b, "utf8"))));
  if (record.transcript === before) record.transcript = put(canonical(transcript));
  if (facts.aggregateCid === c.facts.aggregateCid) facts.aggregateCid = put(canonical(record));
  return auditRound(facts, get);
}

/** A blob of the case being doctored, as text (set by `doctored`). */
let blob: (cid: string) => string = () => "";

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

// -- a job with norm-bound proofs (docs/protocol/zk-norm.md §12) -----------------------------

test("honest_norm: a norm-proof round checks out: every survivor's claim verifies, the sum opens their commitments, the refused claim does not verify", () => {
  const r = audit("honest_norm");
  const e = expected.honest_norm;
  assert.deepEqual(r.counted, e.survivors);
  assert.equal(r.params!.fracBits, e.frac_bits);
  assert.equal(r.params!.clip, e.clip); // the range widened by §12.1's rule, as chainml's
  assert.equal(r.params!.vectorLen, e.vector_len); // and 16 words for the blinding
  assert.deepEqual(r.sum, e.chainml_sum);
  const tol = (e.survivors.length + 1) / 2 ** e.frac_bits;
  e.plain_sum.forEach((x: number, c: number) => assert.ok(Math.abs(r.sum![c] - x) <= tol, `coordinate ${c}: ${r.sum![c]} vs ${x}`));
});

test("norm_input_off: a trainer fed SecAgg+ a vector one grid unit off its commitment: refused by the aggregate check", () => {
  assert.throws(
    () => audit("norm_input_off"),
    (e: unknown) => e instanceof AggregateMismatch && e.check === "zk-norm/7 aggregate",
  );
});

const flipLast = (claim: string): string => {
  const c = JSON.parse(claim);
  const last = c.proof.slice(-2);
  c.proof = c.proof.slice(0, -2) + (parseInt(last, 16) ^ 1).toString(16).padStart(2, "0");
  return canonicalClaim(c);
};
const canonicalClaim = (c: any): string => parseJson(JSON.stringify(c)).canonical;
const withClaim = (i: number, change: (claim: string) => string) => (r: any, t: any, put: (b: string) => string) =>
  (r.norm.claims[String(i)] = put(change(blob(r.norm.claims[String(i)]))));

const NORM_DOCTORED: Record<string, [Parameters<typeof doctored>[0], string]> = {
  "a survivor's proof with a flipped byte": [withClaim(3, flipLast), "zk-norm/12.4 claims"],
  "a survivor's proof truncated": [withClaim(2, (c) => canonicalClaim({ ...JSON.parse(c), proof: JSON.parse(c).proof.slice(0, -2) })), "zk-norm/12.4 claims"],
  "a survivor's claim with another survivor's commitment": [
    (r, t, put) => {
      const other = JSON.parse(blob(r.norm.claims["1"])).commitment;
      withClaim(3, (c) => canonicalClaim({ ...JSON.parse(c), commitment: other }))(r, t, put);
    },
    "zk-norm/12.4 claims",
  ],
  "a survivor's claim is another survivor's (its sender)": [(r) => (r.norm.claims["2"] = r.norm.claims["3"]), "zk-norm/12.4 claims"],
  "a survivor's claim missing": [(r) => delete r.norm.claims["2"], "zk-norm/12.4 record"],
  "no norm field": [(r) => delete r.norm, "zk-norm/12.4 record"],
  "norm claims not an object": [(r) => (r.norm.claims = []), "zk-norm/12.4 record"],
  "a claim not in its canonical spelling": [withClaim(1, (c) => c.replace('","', '", "')), "zk-norm/12.2 claim"],
  "a claim in upper-case hex": [withClaim(1, (c) => c.replace(/"commitment":"([0-9a-f]+)"/, (m, h) => `"commitment":"${h.toUpperCase()}"`)), "zk-norm/12.2 claim"],
  "a claim's blob not what its CID names": [
    (r, t, put, facts, plant) => plant(r.norm.claims["1"], blob(r.norm.claims["1"]).replace('"sender":1', '"sender":2')),
    "cid",
  ],
  "the refused trainer's honest claim listed as refused": [
    (r) => (r.norm.refused["5"].claim = expected.honest_norm.honest_claim_5),
    "zk-norm/12.4 refused",
  ],
  "a refused entry under a name that is not a client id": [(r) => (r.norm.refused["05"] = r.norm.refused["5"]), "zk-norm/12.4 record"],
  "a refused entry without its reason": [(r) => delete r.norm.refused["5"].reason, "zk-norm/12.4 record"],
  "the range not widened for the words (the clip of a job without proofs)": [(r) => (r.params.clip = 5.0), "12/5 parameters"],
  "the vector without the 16 words": [(r) => (r.params.vector_len -= 16), "12/5 parameters"],
};

for (const [name, [edit, check]] of Object.entries(NORM_DOCTORED)) {
  test(`norm round doctored: ${name}: refused by ${check}`, () => {
    assert.throws(
      () => doctored(edit, "honest_norm"),
      (e: unknown) => e instanceof VerificationError && e.check === check,
    );
  });
}

test("norm round: the control: re-stored through the doctoring path it checks out", () => {
  assert.deepEqual(doctored(() => {}, "honest_norm").counted, expected.honest_norm.survivors);
});

test("norm round, honest weights (§13): a weight its data set does not back, or a claim without a weight, is refused", () => {
  assert.equal(expected.honest_norm.claim_format, "chainml-norm-claim/2");
  const onDataset = (change: (d: any) => void) => (r: any, tr: any, put: any, facts: any) => {
    const id = String(JSON.parse(blob(r.norm.claims["2"])).dataset);
    const ds = new Map(facts.datasets);
    const d = { ...(ds.get(id) as any) };
    change(d);
    ds.set(id, d);
    facts.datasets = ds;
  };
  const cases: Record<string, Parameters<typeof doctored>[0]> = {
    "fewer records on chain than claimed": onDataset((d) => (d.recordCount = 100n)),
    "the data set revoked": onDataset((d) => (d.revoked = true)),
    "the data set another trainer's": onDataset((d) => (d.owner = "0x" + "12".repeat(20))),
    "the data set unknown": (r, tr, put, facts) => (facts.datasets = new Map()),
    "no data sets known to the auditor": (r, tr, put, facts) => (facts.datasets = undefined),
    "a v1 claim (no weight) among v2 claims": withClaim(3, (c) => {
      const { dataset, records, ...rest } = JSON.parse(c);
      return canonicalClaim({ ...rest, format: "chainml-norm-claim/1" });
    }),
    "more records claimed (a greater weight) than the proof was made for": withClaim(1, (c) =>
      canonicalClaim({ ...JSON.parse(c), records: JSON.parse(c).records + 1 }),
    ),
  };
  const checks: Record<string, string> = {
    "a v1 claim (no weight) among v2 claims": "zk-norm/12.2 claim",
    "no data sets known to the auditor": "zk-norm/13 data sets",
  };
  for (const [name, edit] of Object.entries(cases)) {
    assert.throws(
      () => doctored(edit, "honest_norm"),
      (e: unknown) => e instanceof VerificationError && e.check === (checks[name] ?? "zk-norm/12.4 claims"),
      name,
    );
  }
});

test("honest_linf: an L∞ job's round (§14) checks out, every survivor's L∞ proof re-verified", (t) => {
  if (!expected.honest_linf) return t.skip("this chainml has no L-infinity job option");
  const r = audit("honest_linf");
  assert.deepEqual(r.counted, expected.honest_linf.survivors);
  assert.deepEqual(r.sum, expected.honest_linf.chainml_sum);
});

test("L∞ round doctored: a claim without its L∞ proof, with a flipped one, and an L∞ proof in a job that asks none are refused", (t) => {
  if (!expected.honest_linf) return t.skip("this chainml has no L-infinity job option");
  const flipLinf = (c: string) => {
    const d = JSON.parse(c);
    d.linf = (parseInt(d.linf.slice(0, 2), 16) ^ 0).toString(16).padStart(2, "0") + d.linf.slice(2, -2) + (parseInt(d.linf.slice(-2), 16) ^ 1).toString(16).padStart(2, "0");
    return canonicalClaim(d);
  };
  const cases: [string, Parameters<typeof doctored>[0]][] = [
    ["honest_linf", withClaim(2, (c) => canonicalClaim({ ...JSON.parse(c), linf: undefined }))],
    ["honest_linf", withClaim(1, flipLinf)],
    ["honest_norm", withClaim(1, (c) => canonicalClaim({ ...JSON.parse(c), linf: "0102" }))],
  ];
  for (const [name, edit] of cases) {
    assert.throws(
      () => doctored(edit, name),
      (e: unknown) => e instanceof VerificationError && e.check === "zk-norm/12.4 claims" && /L-infinity/.test(e.message),
      name,
    );
  }
});
