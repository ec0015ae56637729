/** Rounds of a job with norm-bound proofs (docs/protocol/zk-norm.md §12): the round's range
 * and length (§12.1), the trainers' claims (§12.2) and the audit of the record (§12.4). */
import { equal, hex, unhex } from "./bytes.js";
import { AggregateMismatch, InvalidNormProof, VerificationError, require } from "./errors.js";
import { LinfParams, verifyLinf } from "./zklinf.js";
import { isObject, JValue, parseStrict } from "./json.js";
import { RoundParams } from "./params.js";
import { clientId } from "./transcript.js";
import { blindingFromLimbSums, boundSqFor, invalidNormProofs, NormContext, NormParams, verifyAggregate } from "./zknorm.js";

/** The blinding's 16-bit limbs, one a word, after the weight coordinate (§7, §12.1). */
export const NORM_WORDS = 16;
const LIMB_MAX = 65535;
const MAX_CLAIM_BYTES = 4 * (1 << 16) + 512; // room for an L∞ proof (§14)

/** §12.1: the range's room for the delta's rounding (< √n grid units) and the 16 words
 * (each < 2^16 units), a unit being 2^-f. The same double operations, in the same order, as
 * every other party. */
export function headroom(fracBits: number, dim: number): number {
  return (Math.sqrt(dim) + 1 + Math.sqrt(NORM_WORDS) * LIMB_MAX + 1) / 2 ** fracBits;
}

/** §12.1: from clip₀, `clip = clip₀ + h(f(clip))` until the range holds its own room;
 * `derive(clip)` gives the round's parameters (and so its fraction bits) under a range. */
export function widenedParams(base: number, dim: number, derive: (clip: number) => RoundParams): RoundParams {
  let p = derive(base);
  for (let step = 0; step < 16; step++) {
    const need = base + headroom(p.fracBits, dim);
    if (p.clip >= need) break;
    p = derive(need);
  }
  return p;
}

/** The claim's format (zk-norm.md §12.2, §13): it names the trainer's data set on the
 * Datasets contract and how many of its records it counts (its weight). Version 1, without
 * them, is refused. */
export const CLAIM_FORMAT = "chainml-norm-claim/2";
const MAX_ID = (1n << 256n) - 1n;
const FIELDS = "commitment,dataset,format,proof,records,sender";
const LINF = "linf"; // only in a claim of a job with an L∞ bound (§14)

export interface NormClaim {
  sender: number;
  dataset: bigint;
  records: bigint;
  commitment: Uint8Array;
  proof: Uint8Array;
  /** an L∞ proof on the same commitment (§11, §14), empty if the claim carries none */
  linf: Uint8Array;
}

/** §12.2: a claim is exactly the canonical spelling of its six fields (sorted keys, no
 * spaces, lower-case hex, integers as JSON numbers), at most 131,584 bytes; anything else is
 * refused (check "zk-norm/12.2 claim") before any curve arithmetic. The proof's length and
 * content are the verifier's (MalformedNormProof, InvalidNormProof), the weight the
 * chain's. */
export function decodeClaim(raw: Uint8Array): NormClaim {
  const fail = (why: string): never => {
    throw new VerificationError("zk-norm/12.2 claim", `malformed norm claim: ${why}`);
  };
  if (raw.length > MAX_CLAIM_BYTES) fail("too long");
  let d: JValue;
  try {
    d = parseStrict(raw, "claim");
  } catch {
    return fail("not JSON");
  }
  if (!isObject(d)) return fail("not an object");
  if (Object.keys(d).filter((k) => k !== LINF).sort().join(",") !== FIELDS) fail("not the claim's fields");
  if (d.format !== CLAIM_FORMAT) fail("unknown format");
  const integer = (v: JValue, most: bigint, what: string): bigint => {
    if ((typeof v !== "number" || !Number.isInteger(v)) && typeof v !== "bigint") return fail(`${what} is not an integer`);
    const b = BigInt(v);
    if (b < 1n || b > most) fail(`${what} out of range`);
    return b;
  };
  const sender = Number(integer(d.sender, 65535n, "the sender"));
  const dataset = integer(d.dataset, MAX_ID, "the data set");
  const records = integer(d.records, MAX_ID, "the record count");
  let commitment: Uint8Array;
  let proof: Uint8Array;
  let linf: Uint8Array = new Uint8Array(0);
  try {
    commitment = unhex(d.commitment as string);
    proof = unhex(d.proof as string);
    if (LINF in d) linf = unhex(d[LINF] as string);
  } catch {
    return fail("lower-case hex expected");
  }
  if (commitment.length !== 48 || proof.length === 0) fail("a 48-byte commitment and a proof");
  if (LINF in d && linf.length === 0) fail("an empty L-infinity proof");
  const claim: NormClaim = { sender, dataset, records, commitment, proof, linf };
  if (!equal(encodeClaim(claim), raw)) fail("not canonical");
  return claim;
}

export function encodeClaim(c: NormClaim): Uint8Array {
  const linf = c.linf.length ? `"linf":"${hex(c.linf)}",` : "";
  const text = `{"commitment":"${hex(c.commitment)}","dataset":${c.dataset},"format":"${CLAIM_FORMAT}",${linf}"proof":"${hex(c.proof)}","records":${c.records},"sender":${c.sender}}`;
  return new TextEncoder().encode(text);
}

/** The delta's length: the round's vector less the weight and the 16 words. */
export function deltaLen(p: RoundParams): number {
  return p.vectorLen - NORM_WORDS - 1;
}

/** A proof's statement in the round: ‖x‖² ≤ bound_sq_for(clip, f, n), `clip` the job's
 * bound on chain (clip_bound / 1000) times the claim's weight (§13.1), f the round's
 * fraction bits. */
export function normParams(p: RoundParams, clip: number): NormParams {
  const dim = deltaLen(p);
  return new NormParams(dim, boundSqFor(clip, p.fracBits, dim));
}

export function normContext(p: RoundParams, trainer: string): NormContext {
  return { chainId: p.chainId, jobs: p.jobs, jobId: p.jobId, round: p.round, attempt: p.attempt, trainer };
}

/** A data set as the Datasets contract lists it (`Datasets.get`) at the round's block. */
export interface DatasetFact {
  owner: string;
  recordCount: bigint;
  revoked: boolean;
}

/** What every claim of a round is checked against: the job's clip (clip_bound / 1000), its
 * configuration's `weight_base`, and the data sets on chain at the round's block. */
export interface ClaimRules {
  clip: number;
  weightBase: number;
  datasets: (id: bigint) => DatasetFact | undefined;
  /** the job's linf_bound (§14): 0 if it asks for none */
  linf: number;
}

/** §14: the L∞ statement for a delta within ±bound (already times the weight) on the
 * round's grid: |x_j| ≤ ⌈bound·2^f⌉ + 1, at most 2^31 − 1. */
export function linfParams(p: RoundParams, bound: number): LinfParams {
  const grid = Math.ceil(bound * 2 ** p.fracBits) + 1;
  return new LinfParams(deltaLen(p), Math.min(grid, 2 ** 31 - 1));
}

/** §14: a claim's L∞ proof as its job asks (none if it asks none); InvalidNormProof. */
function verifyClaimLinf(p: RoundParams, rules: ClaimRules, c: NormClaim, ctx: NormContext): void {
  if (!rules.linf) {
    if (c.linf.length) throw new InvalidNormProof("an L-infinity proof in a job that asks for none");
    return;
  }
  if (!c.linf.length) throw new InvalidNormProof("no L-infinity proof");
  verifyLinf(ctx, linfParams(p, weightedClip(rules.linf, c.records, rules.weightBase)), c.commitment, c.linf);
}

const minWeight = (records: bigint, weightBase: number): bigint => (records < BigInt(weightBase) ? records : BigInt(weightBase));

/** §13.1: a claim's bound: clip · min(records, weight_base) / weight_base, as a double. */
export function weightedClip(clip: number, records: bigint, weightBase: number): number {
  return (clip * Number(minWeight(records, weightBase))) / weightBase;
}

/** §13.1: a claim's weight on the round's grid: ⌊min(records, weight_base)·2^f / weight_base⌋. */
export function gridWeight(p: RoundParams, records: bigint, weightBase: number): bigint {
  return (minWeight(records, weightBase) << BigInt(p.fracBits)) / BigInt(weightBase);
}

function statement(p: RoundParams, rules: ClaimRules, c: NormClaim): NormParams {
  return normParams(p, weightedClip(rules.clip, c.records, rules.weightBase));
}

/** §13.1 item 1: why the data set a claim names does not back its weight, or null. */
function unbacked(p: RoundParams, rules: ClaimRules, c: NormClaim): string | null {
  const d = rules.datasets(c.dataset);
  if (!d) return "the claimed data set does not exist";
  if (d.owner.toLowerCase() !== p.roster.get(c.sender)!.toLowerCase()) return "the claimed data set is not the trainer's";
  if (d.revoked) return "the claimed data set is revoked";
  if (c.records > d.recordCount) return "the claimed weight is more than its data set holds";
  return null;
}

/** Client id → why, for every claim that does not verify (the proofs in one batch): a
 * missing claim, one under another client's id, a weight its data set does not back, a
 * malformed or false proof. Empty if all verify. */
export function refusedClaims(p: RoundParams, rules: ClaimRules, claims: Map<number, NormClaim | null>): Map<number, string> {
  const refused = new Map<number, string>();
  const batch: [number, NormClaim][] = [];
  for (const i of [...claims.keys()].sort((a, b) => a - b)) {
    const c = claims.get(i);
    if (!c) refused.set(i, "no norm claim");
    else if (c.sender !== i || !p.roster.has(i)) refused.set(i, "a norm claim under another client's id");
    else {
      const why = unbacked(p, rules, c);
      if (why) refused.set(i, why);
      else batch.push([i, c]);
    }
  }
  if (batch.length) {
    const items = batch.map(([i, c]): [NormContext, Uint8Array, Uint8Array, NormParams] => [
      normContext(p, p.roster.get(i)!),
      c.commitment,
      c.proof,
      statement(p, rules, c),
    ]);
    for (const k of invalidNormProofs(items)) refused.set(batch[k][0], "the norm-bound proof does not verify");
    batch.forEach(([i, c], k) => {
      if (refused.has(i) || !(rules.linf || c.linf.length)) return;
      try {
        verifyClaimLinf(p, rules, c, items[k][0]);
      } catch (e) {
        if (!(e instanceof InvalidNormProof)) throw e; // MalformedNormProof included
        refused.set(i, "the L-infinity proof does not verify");
      }
    });
  }
  return refused;
}

/** §7, §12.3: the summed words open the sum of the survivors' commitments: the delta read
 * as signed 32-bit, the blinding from the 16 words after the weight; and the weight word is
 * the sum of the claims' grid weights (§13.1 item 3). */
export function checkSum(p: RoundParams, rules: ClaimRules, total: Uint32Array, claims: NormClaim[]): void {
  const dim = deltaLen(p);
  require(total.length >= p.vectorLen, "zk-norm/7 aggregate", "the sum is shorter than the round's vector");
  let weights = 0n;
  for (const c of claims) weights += gridWeight(p, c.records, rules.weightBase);
  if (BigInt(total[dim]) !== weights % (1n << 32n)) throw new AggregateMismatch("the summed weight is not the sum of the claims' weights");
  const x = Array.from(total.subarray(0, dim), (w) => BigInt(w | 0));
  const blinding = blindingFromLimbSums(total.subarray(p.vectorLen - NORM_WORDS, p.vectorLen));
  verifyAggregate(
    claims.map((c) => c.commitment),
    x,
    blinding,
  );
}

/** §12.4, after secagg.md §12 step 6: every survivor has a claim under its id in
 * `record.norm.claims`; all of them verify (one batch); the summed words open the sum of
 * their commitments; every refused claim present does not verify. `fetch` returns a blob
 * checked against its CID. */
export function auditNorm(
  p: RoundParams,
  rules: ClaimRules,
  record: { [k: string]: JValue },
  survivors: number[],
  total: Uint32Array,
  fetch: (cid: JValue | undefined, what: string) => Uint8Array,
): void {
  const norm = record.norm;
  require(isObject(norm), "zk-norm/12.4 record", "the record has no norm field");
  const claims = norm.claims;
  const refused = norm.refused;
  require(isObject(claims) && isObject(refused), "zk-norm/12.4 record", "the norm field lacks claims or refused");
  const claim = (cid: JValue | undefined, what: string): NormClaim => {
    require(typeof cid === "string", "zk-norm/12.4 record", `${what}: no claim`);
    return decodeClaim(fetch(cid, what));
  };
  const counted = new Map<number, NormClaim | null>();
  for (const i of survivors) counted.set(i, claim(claims[String(i)], `survivor ${i}'s norm claim`));
  const bad = refusedClaims(p, rules, counted);
  if (bad.size) {
    const i = Math.min(...bad.keys());
    throw new VerificationError("zk-norm/12.4 claims", `client ${i}'s norm claim does not verify (${bad.get(i)})`);
  }
  checkSum(
    p,
    rules,
    total,
    survivors.map((i) => counted.get(i)!),
  );
  const evidence = new Map<number, NormClaim | null>();
  for (const [k, entry] of Object.entries(refused)) {
    let i: number;
    try {
      i = clientId(k);
    } catch {
      throw new VerificationError("zk-norm/12.4 record", `a refused entry is not under a client id: ${k}`);
    }
    require(isObject(entry) && typeof entry.claim === "string" && typeof entry.reason === "string", "zk-norm/12.4 record", `refused entry ${k} is not {reason, claim}`);
    if (entry.claim !== "") evidence.set(i, claim(entry.claim, `client ${i}'s refused claim`));
  }
  if (evidence.size) {
    const still = refusedClaims(p, rules, evidence);
    for (const i of evidence.keys()) {
      require(still.has(i), "zk-norm/12.4 refused", `client ${i}'s refused norm claim verifies: an honest trainer was dropped`);
    }
  }
}

/** The data set ids a round record's claims name (counted and refused), read leniently
 * from the blobs (`fetch` returns a blob by CID, unchecked): what an auditor must look up on
 * the Datasets contract before the audit, which checks everything itself. */
export function claimedDatasets(fetch: (cid: string) => Uint8Array | undefined, recordCid: string): bigint[] {
  const ids: bigint[] = [];
  const claimAt = (cid: unknown): void => {
    const raw = typeof cid === "string" && cid ? fetch(cid) : undefined;
    if (!raw) return;
    try {
      ids.push(decodeClaim(raw).dataset);
    } catch {
      // a malformed claim names no data set; the audit refuses it
    }
  };
  try {
    const raw = fetch(recordCid);
    const record = raw ? JSON.parse(Buffer.from(raw).toString("utf8")) : {};
    for (const cid of Object.values(record?.norm?.claims ?? {})) claimAt(cid);
    for (const entry of Object.values(record?.norm?.refused ?? {})) claimAt((entry as { claim?: unknown })?.claim);
  } catch {
    // not a record: the audit refuses it
  }
  return ids;
}
