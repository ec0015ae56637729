/** The checks of docs/protocol/secagg.md §10 (a round's sum) and §12 (a recorded round).
 * Every refusal is a VerificationError naming the step. */
import { bytesToWords, concat, equal, hex, unhex } from "./bytes.js";
import { cidMatches } from "./cid.js";
import {
  digest,
  domainSeparator,
  inputCommitment,
  keysStructHash,
  roundCommitmentStructHash,
  survivorsStructHash,
} from "./eip712.js";
import { VerificationError, require } from "./errors.js";
import { isObject, JValue, parseCanonical } from "./json.js";
import { addCommitments, commit, commitmentKey, parseCommitment } from "./lattice.js";
import { bitmapOf, leaf, leafData, merkleRoot } from "./merkle.js";
import { auditNorm, DatasetFact, NORM_WORDS, widenedParams } from "./normround.js";
import { decodeWord, deriveParams, label, RoundParams, secureBound } from "./params.js";
import { blake3, keccak256, mask, signedBy, taggedHash, x25519, x25519Public } from "./primitives.js";
import { clientId, decodeTranscript, Transcript } from "./transcript.js";

export function seedCommitment(context: Uint8Array, i: number, seed: Uint8Array): Uint8Array {
  return taggedHash("chainml/secagg/seed", concat(label(context, "seed", i), seed));
}

function account(p: RoundParams, i: number, check: string): string {
  const a = p.roster.get(i);
  if (!a) throw new VerificationError(check, `client ${i} is not on the roster`);
  return a;
}

function ascending(xs: number[]): boolean {
  for (let k = 1; k < xs.length; k++) if (xs[k] <= xs[k - 1]) return false;
  return true;
}

/** §10.1 steps 1–3 (shared with §10.2): survivors, approvals, signed inputs. */
function checkSurvivorsAndInputs(p: RoundParams, t: Transcript): void {
  const domain = domainSeparator(p.chainId, p.jobs);
  require(ascending(t.survivors), "10.1/1 survivors", "the survivor list is not strictly ascending");
  for (const s of t.survivors) account(p, s, "10.1/1 survivors");
  const survivors = new Set(t.survivors);

  const d = digest(domain, survivorsStructHash(p.jobId, p.round, p.context, t.survivors));
  let approvers = 0;
  for (const [c, sig] of t.survivorSignatures) {
    if (survivors.has(c) && signedBy(d, sig, account(p, c, "10.1/2 approvals"))) approvers += 1;
  }
  require(approvers >= p.quorum, "10.1/2 approvals", `${approvers} valid approvals, the quorum is ${p.quorum}`);

  const inputIds = [...t.inputs.keys()].sort((a, b) => a - b);
  require(
    inputIds.join(",") === t.survivors.join(","),
    "10.1/3 inputs",
    `inputs name ${inputIds.join(",")}, the survivors are ${t.survivors.join(",")}`,
  );
  for (const i of t.survivors) {
    const inp = t.inputs.get(i)!;
    const c = inputCommitment(inp.inputHash, inp.partners, p.verifiable ? inp.valueCommitment : null);
    if (!p.verifiable) require(inp.valueCommitment.length === 0, "10.1/3 inputs", `client ${i} carries a value commitment in a round that is not verifiable`);
    const dg = digest(domain, roundCommitmentStructHash(p.jobId, p.round, c));
    require(signedBy(dg, inp.signature, account(p, i, "10.1/3 inputs")), "10.1/3 inputs", `client ${i}'s round commitment is not signed by its account`);
    require(ascending(inp.partners), "10.1/3 inputs", `client ${i}'s partners are not strictly ascending`);
    const nb = new Set(p.neighbours.get(i));
    require(inp.partners.every((j) => nb.has(j)), "10.1/3 inputs", `client ${i}'s partners are not all its neighbours`);
    const kept = inp.partners.filter((j) => survivors.has(j)).length;
    require(kept >= p.minPartners, "10.1/3 inputs", `client ${i} keeps ${kept} partners among the survivors, fewer than ${p.minPartners}`);
  }
}

/** §10.1: the sum from the transcript and the survivors' masked inputs; returns the total as words. */
export function verifyRound(p: RoundParams, t: Transcript, maskedInput: (i: number) => Uint8Array): Uint32Array {
  const domain = domainSeparator(p.chainId, p.jobs);
  checkSurvivorsAndInputs(p, t);
  const L = p.secureLen;
  require(t.total.length === 4 * L, "10.1/4 length", `total is ${t.total.length} bytes, not ${4 * L}`);
  const survivors = new Set(t.survivors);
  const need = [...new Set([...t.survivors, ...t.maskKeys.keys()])];
  for (const j of need) {
    const a = t.adverts.get(j);
    require(a, "10.1/5 adverts", `no advert for client ${j}`);
    const dg = digest(domain, keysStructHash(p.jobId, p.round, p.context, j, a.pk, a.seedCommitment, a.sharesRoot));
    require(signedBy(dg, a.signature, account(p, j, "10.1/5 adverts")), "10.1/5 adverts", `client ${j}'s advert is not signed by its account`);
  }
  const masked = new Map<number, Uint32Array>();
  for (const i of t.survivors) {
    const blob = maskedInput(i);
    require(blob.length === 4 * L, "10.1/6 masked inputs", `client ${i}'s masked input is ${blob.length} bytes, not ${4 * L}`);
    require(equal(blake3(blob), t.inputs.get(i)!.inputHash), "10.1/6 masked inputs", `client ${i}'s masked input does not hash to its signed input_hash`);
    masked.set(i, bytesToWords(blob));
    const seed = t.seeds.get(i);
    require(seed, "10.1/6 seeds", `no seed for survivor ${i}`);
    require(
      equal(seedCommitment(p.context, i, seed), t.adverts.get(i)!.seedCommitment),
      "10.1/6 seeds",
      `survivor ${i}'s seed does not open its seed commitment`,
    );
  }
  for (const i of t.survivors) {
    for (const j of t.inputs.get(i)!.partners) {
      if (survivors.has(j)) require(t.inputs.get(j)!.partners.includes(i), "10.1/7 pairs", `${i} names ${j} a partner but ${j} does not name ${i}`);
      else require(t.maskKeys.has(j), "10.1/7 pairs", `no mask key for ${i}'s dropped partner ${j}`);
    }
  }
  for (const [j, sk] of t.maskKeys) {
    require(!survivors.has(j), "10.1/7 pairs", `a mask key is revealed for survivor ${j}`);
    require(equal(x25519Public(sk), t.adverts.get(j)!.pk), "10.1/7 pairs", `the mask key of ${j} is not its advertised key`);
  }
  const T = new Uint32Array(L);
  for (const i of t.survivors) {
    const y = masked.get(i)!;
    const s = mask(t.seeds.get(i)!, label(p.context, "self", i), L);
    for (let w = 0; w < L; w++) T[w] = (T[w] + y[w] - s[w]) >>> 0;
  }
  for (const j of [...t.maskKeys.keys()].sort((a, b) => a - b)) {
    for (const i of t.survivors) {
      if (!t.inputs.get(i)!.partners.includes(j)) continue;
      let secret: Uint8Array;
      try {
        secret = x25519(t.maskKeys.get(j)!, t.adverts.get(i)!.pk);
      } catch (e) {
        throw new VerificationError("10.1/8 unmask", `pair secret of ${i} and ${j}: ${(e as Error).message}`);
      }
      const M = mask(secret, label(p.context, "pair", Math.min(i, j), Math.max(i, j)), L);
      if (i < j) for (let w = 0; w < L; w++) T[w] = (T[w] - M[w]) >>> 0;
      else for (let w = 0; w < L; w++) T[w] = (T[w] + M[w]) >>> 0;
    }
  }
  const total = bytesToWords(t.total);
  for (let w = 0; w < L; w++) {
    if (T[w] !== total[w]) throw new VerificationError("10.1/9 compare", `the published sum differs from the unmasked inputs at word ${w}`);
  }
  return total;
}

/** §10.2: a verifiable round's sum against the survivors' lattice commitments. */
export function verifySum(p: RoundParams, t: Transcript): Uint32Array {
  require(p.verifiable, "10.2/1 verifiable", "the round is not verifiable");
  checkSurvivorsAndInputs(p, t);
  const commitments: Uint32Array[] = [];
  for (const i of t.survivors) {
    try {
      commitments.push(parseCommitment(t.inputs.get(i)!.valueCommitment));
    } catch (e) {
      throw new VerificationError("10.2/3 commitments", `client ${i}: ${(e as Error).message}`);
    }
  }
  require(t.total.length === 4 * p.secureLen, "10.2/4 length", `total is ${t.total.length} bytes, not ${4 * p.secureLen}`);
  const words = bytesToWords(t.total);
  const signed = Int32Array.from(words, (w) => w | 0);
  const S = signed.subarray(0, p.vectorLen);
  const R = signed.subarray(p.vectorLen);
  for (const s of S) require(s !== -(2 ** 31), "10.2/5 bounds", "a sum coordinate is -2^31");
  const rb = 2 * t.survivors.length;
  for (const r of R) require(Math.abs(r) <= rb, "10.2/5 bounds", `summed randomness ${r} outside ±${rb}`);
  const ck = commitmentKey(p.jobDomain, p.vectorLen);
  const expected = commit(ck, S, R);
  const summed = addCommitments(commitments);
  for (let k = 0; k < expected.length; k++) {
    if (expected[k] !== summed[k]) throw new VerificationError("10.2/5 commitment", "the sum does not open the sum of the survivors' commitments");
  }
  return words;
}

/** What the chain says about a job and one of its rounds, and what the Registry lists. */
export interface ChainFacts {
  chainId: bigint | number;
  jobs: string;
  jobId: bigint | number;
  round: bigint | number;
  /** the job's clip_bound on chain (thousandths) */
  clipBound: number;
  configHash: Uint8Array;
  /** where the job's configuration is published ("" if the job names none) */
  configCid?: string;
  aggregateCid: string;
  commitmentRoot: Uint8Array;
  bitmap: bigint;
  /** client id (bitmap position + 1) → account */
  roster: Map<number, string>;
  /** client id → registered X25519 key */
  keys: Map<number, Uint8Array>;
  /** data set id (decimal) → `Datasets.get(id)` at the round's block: what v2 norm claims
   * (honest weights) are checked against; absent means none is known */
  datasets?: Map<string, DatasetFact>;
}

export interface AuditResult {
  aggregation: string;
  counted: number[];
  params?: RoundParams;
  /** the decoded sum (first vector_len words), secure-aggregation rounds only */
  sum?: number[];
  totalWords?: Uint32Array;
}

/** Fetch a blob by CID and check the bytes are what the CID names. */
function fetchChecked(fetch: (cid: string) => Uint8Array | undefined, cid: JValue | undefined, what: string): Uint8Array {
  require(typeof cid === "string", "cid", `${what}: no CID`);
  const data = fetch(cid);
  require(data !== undefined, "cid", `${what}: blob ${cid} not found`);
  let ok: boolean;
  try {
    ok = cidMatches(cid, data);
  } catch (e) {
    throw new VerificationError("cid", `${what}: ${(e as Error).message}`);
  }
  require(ok, "cid", `${what}: the blob's bytes are not what ${cid} names`);
  return data;
}

function int(v: JValue | undefined, what: string, check: string): number {
  require(typeof v === "number" && Number.isInteger(v) && v >= 0, check, `${what} is not a non-negative integer`);
  return v as number;
}

/** §3 vector_len of a configuration: an MLP's, or a CNN's (convolution, activation,
 * average pooling, dense), plus the weight coordinate. */
export function vectorLen(config: { [k: string]: JValue }): number {
  const check = "12/3 configuration";
  if (config.model === "cnn") {
    const image = config.image;
    require(Array.isArray(image) && image.length === 3, check, "a CNN's image is [channels, height, width]");
    const [c, h, w] = image.map((d) => int(d, "an image size", check));
    const [ch, k, s, p] = ["channels", "kernel", "stride", "pool"].map((name) => int(config[name], name, check));
    require(Math.min(c, h, w, ch, k, s, p) >= 1 && k <= Math.min(h, w), check, "the kernel does not fit the image");
    require(c * h * w === int(config.n_features, "n_features", check), check, "the image does not hold n_features values");
    const ph = Math.floor((Math.floor((h - k) / s) + 1) / p);
    const pw = Math.floor((Math.floor((w - k) / s) + 1) / p);
    require(ph >= 1 && pw >= 1, check, "the pooling window is larger than the convolution's output");
    const classes = int(config.n_classes, "n_classes", check);
    return ch * c * k * k + ch + ch * ph * pw * classes + classes + 1;
  }
  require(config.model === "mlp", check, `unknown model ${JSON.stringify(config.model)}`);
  const hidden = config.hidden;
  require(Array.isArray(hidden), check, "hidden is not a list");
  const sizes = [int(config.n_features, "n_features", check), ...hidden.map((h) => int(h, "a hidden size", check)), int(config.n_classes, "n_classes", check)];
  let n = 1;
  for (let a = 0; a + 1 < sizes.length; a++) n += sizes[a] * sizes[a + 1] + sizes[a + 1];
  return n;
}

/** §12: audit one recorded round from the chain's facts and the public blobs. */
export function auditRound(facts: ChainFacts, fetch: (cid: string) => Uint8Array | undefined): AuditResult {
  const recordBytes = fetchChecked(fetch, facts.aggregateCid, "round record");
  let record: JValue;
  try {
    record = parseCanonical(recordBytes, "round record"); // §12 step 1: only its canonical encoding
  } catch (e) {
    throw new VerificationError("11.2 record", (e as Error).message);
  }
  require(isObject(record), "11.2 record", "not a JSON object");
  require(record.format === "chainml-round-record/2", "11.2 record", `unknown format ${JSON.stringify(record.format)}`);
  const sameRound = (v: JValue | undefined, want: bigint | number): boolean =>
    (typeof v === "number" && Number.isInteger(v)) || typeof v === "bigint" ? BigInt(v) === BigInt(want) : false;
  require(sameRound(record.job, facts.jobId) && sameRound(record.round, facts.round), "11.2 record", "the record is for another job or round");

  // step 2: the configuration
  require(typeof record.config === "string", "12/2 configuration", "no configuration");
  const configBytes = new Uint8Array(Buffer.from(record.config, "utf8"));
  require(equal(keccak256(configBytes), facts.configHash), "12/2 configuration", "the configuration does not hash to the job's config_hash");
  if (facts.configCid) {
    // the job's published configuration is the one the record carries (same hash: same bytes)
    const published = fetchChecked(fetch, facts.configCid, "published configuration");
    require(equal(keccak256(published), facts.configHash), "12/2 configuration", "the published configuration does not hash to the job's config_hash");
  }
  let config: JValue;
  try {
    config = parseCanonical(configBytes, "configuration");
  } catch (e) {
    throw new VerificationError("12/2 configuration", (e as Error).message);
  }
  require(isObject(config), "12/2 configuration", "not an object");
  const rule = config.aggregation === undefined ? "secagg" : config.aggregation;
  require(
    typeof rule === "string" && ["secagg", "krum", "median", "trimmed_mean"].includes(rule),
    "12/2 configuration",
    `unknown aggregation rule ${JSON.stringify(rule)}`,
  );
  require(
    config.dp === undefined || config.dp === "central" || config.dp === "distributed",
    "12/3 configuration",
    `unknown dp mode ${JSON.stringify(config.dp)}`,
  );
  const recordRule = record.aggregation === undefined ? "secagg" : record.aggregation;
  require(recordRule === rule, "12/2 configuration", `the record says ${JSON.stringify(recordRule)}, the configuration ${JSON.stringify(rule)}`);
  const domain = domainSeparator(facts.chainId, facts.jobs);
  require(rule === "secagg" || config.norm_proofs === undefined || config.norm_proofs === false, "12/3 configuration", "norm_proofs needs secure aggregation");
  if (rule !== "secagg") return auditRobust(facts, record, rule, domain);

  // steps 3–5: the parameters, derived
  const vlen = vectorLen(config);
  const verifiable = config.verifiable;
  require(typeof verifiable === "boolean", "12/3 configuration", "verifiable is not a boolean");
  let noise: number | undefined;
  if (config.dp === "distributed") {
    require(typeof config.noise_multiplier === "number", "12/3 configuration", "a distributed-DP job without noise_multiplier");
    noise = config.noise_multiplier;
  }
  // a job with norm-bound proofs (zk-norm.md §12): 16 more words, a wider range
  const normProofs = config.norm_proofs === undefined ? false : config.norm_proofs;
  require(typeof normProofs === "boolean", "12/3 configuration", "norm_proofs is not a boolean");
  require(!normProofs || config.dp !== "distributed", "12/3 configuration", "norm_proofs with distributed DP");
  require(normProofs || config.linf_bound === undefined, "12/3 configuration", "linf_bound without norm_proofs");
  const recorded = record.params;
  require(isObject(recorded), "12/4 parameters", "the record has no params");
  const attempt = int(recorded.attempt, "params.attempt", "12/4 parameters");
  const base = secureBound(facts.clipBound, facts.roster.size, vlen, noise);
  const derive = (clip: number): RoundParams =>
    deriveParams({ ...facts, attempt, vectorLen: vlen + (normProofs ? NORM_WORDS : 0), clip, verifiable, roster: facts.roster, keys: facts.keys });
  let p: RoundParams;
  try {
    p = normProofs ? widenedParams(base, vlen - 1, derive) : derive(base);
  } catch (e) {
    throw new VerificationError("12/4 parameters", (e as Error).message);
  }
  const same =
    recorded.degree === p.degree &&
    recorded.threshold === p.threshold &&
    recorded.min_partners === p.minPartners &&
    recorded.clip === p.clip &&
    recorded.graph_seed === hex(p.graphSeed) &&
    recorded.vector_len === p.vectorLen &&
    recorded.verifiable === p.verifiable;
  require(same, "12/5 parameters", "the record's parameters are not the derived ones");

  // step 6: the sum
  const transcript = decodeTranscript(fetchChecked(fetch, record.transcript, "transcript"));
  let total: Uint32Array;
  if (p.verifiable) total = verifySum(p, transcript);
  else {
    const inputs = record.inputs;
    require(isObject(inputs), "11.2 record", "the record has no inputs");
    total = verifyRound(p, transcript, (i) => fetchChecked(fetch, inputs[String(i)], `masked input ${i}`));
  }

  // step 6, a job with norm-bound proofs: zk-norm.md §12.4
  if (normProofs) {
    const weightBase = config.weight_base;
    require(typeof weightBase === "number" && Number.isInteger(weightBase) && weightBase >= 1, "12/3 configuration", "weight_base is not a positive integer");
    require(facts.datasets, "zk-norm/13 data sets", "no data sets to check the claims' weights against (the Datasets contract: --datasets, or a case's datasets)");
    const datasets: Map<string, DatasetFact> = facts.datasets;
    const linf = config.linf_bound === undefined ? 0 : config.linf_bound;
    require(typeof linf === "number" && Number.isFinite(linf) && linf >= 0, "12/3 configuration", "linf_bound is not a non-negative number");
    const rules = { clip: facts.clipBound / 1000, weightBase, datasets: (id: bigint) => datasets.get(id.toString()), linf };
    auditNorm(p, rules, record, transcript.survivors, total, (cid, what) => fetchChecked(fetch, cid, what));
  }

  // step 7: root and bitmap
  const leaves = transcript.survivors.map((i) => {
    const t = transcript.inputs.get(i)!;
    const c = inputCommitment(t.inputHash, t.partners, p.verifiable ? t.valueCommitment : null);
    return leaf(leafData(facts.roster.get(i)!, facts.jobId, facts.round, c));
  });
  require(equal(merkleRoot(leaves), facts.commitmentRoot), "12/7 root", "the commitment root on chain is not the survivors'");
  require(bitmapOf(transcript.survivors) === facts.bitmap, "12/7 bitmap", "the bitmap on chain is not the survivors'");
  const sum = Array.from(total.subarray(0, p.vectorLen), (w) => decodeWord(w, p.fracBits));
  // (in a norm-proof round the last 16 of these are the summed blinding limbs, not the model's)
  return { aggregation: rule, counted: transcript.survivors, params: p, sum, totalWords: total };
}

/** §12 step 2, robust rules: each trainer's signed commitment, then the root and bitmap. */
function auditRobust(facts: ChainFacts, record: { [k: string]: JValue }, rule: string, domain: Uint8Array): AuditResult {
  const commitments = record.commitments;
  const signatures = record.signatures;
  require(isObject(commitments) && isObject(signatures), "12/2 robust", "no commitments or signatures");
  const ids = Object.keys(commitments).map((k) => {
    try {
      return clientId(k);
    } catch {
      throw new VerificationError("12/2 robust", `not a client id: ${k}`);
    }
  });
  ids.sort((a, b) => a - b);
  const leaves: Uint8Array[] = [];
  for (const i of ids) {
    const acct = facts.roster.get(i);
    require(acct, "12/2 robust", `client ${i} is not on the roster`);
    let c: Uint8Array, sig: Uint8Array;
    try {
      c = unhex(commitments[String(i)] as string, 32);
      sig = unhex(signatures[String(i)] as string, 65);
    } catch {
      throw new VerificationError("12/2 robust", `client ${i}'s commitment or signature is malformed`);
    }
    require(signedBy(digest(domain, roundCommitmentStructHash(facts.jobId, facts.round, c)), sig, acct), "12/2 robust", `client ${i}'s commitment is not signed by its account`);
    leaves.push(leaf(leafData(acct, facts.jobId, facts.round, c)));
  }
  require(equal(merkleRoot(leaves), facts.commitmentRoot), "12/7 root", "the commitment root on chain is not the trainers'");
  require(bitmapOf(ids) === facts.bitmap, "12/7 bitmap", "the bitmap on chain is not the trainers'");
  return { aggregation: rule, counted: ids };
}

