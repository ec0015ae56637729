/** A round to audit, as a JSON file: the chain's facts and a folder of blobs named by CID.
 *
 *     {"chain_id": 31337, "jobs": "0x…", "job_id": 1, "round": 1, "clip_bound": 5000,
 *      "config_hash": "<hex32>", "aggregate_cid": "bafy…", "commitment_root": "<hex32>",
 *      "bitmap": "27", "roster": {"1": "0x…"}, "keys": {"1": "<hex32>"}, "blobs": "blobs"}
 *
 * and optionally "config_cid": the CID the job publishes its configuration under, and
 * "datasets": {"<id>": {"owner": "0x…", "record_count": N, "revoked": false}} (Datasets.get
 * at the round's block, for a norm-proof round's v2 claims).
 * `bitmap` is a decimal string or an integer; `blobs` is relative to the case file. */
import { readFileSync, existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { unhex } from "./bytes.js";
import { isObject, JValue, parseStrict } from "./json.js";
import { DatasetFact } from "./normround.js";
import { ChainFacts } from "./verify.js";

export interface Case {
  facts: ChainFacts;
  fetch: (cid: string) => Uint8Array | undefined;
}

export function loadCase(path: string): Case {
  const doc = parseStrict(new Uint8Array(readFileSync(path)), path);
  if (!isObject(doc)) throw new TypeError("a case file is a JSON object");
  const idMap = <T>(v: unknown, f: (x: string) => T): Map<number, T> => {
    if (!isObject(v as never)) throw new TypeError("expected an object of client ids");
    return new Map(Object.entries(v as Record<string, string>).map(([k, x]) => [Number(k), f(x)]));
  };
  const facts: ChainFacts = {
    chainId: BigInt(doc.chain_id as number),
    jobs: doc.jobs as string,
    jobId: BigInt(doc.job_id as number),
    round: BigInt(doc.round as number),
    clipBound: Number(doc.clip_bound),
    configHash: unhex(doc.config_hash as string, 32),
    configCid: typeof doc.config_cid === "string" ? doc.config_cid : "",
    aggregateCid: doc.aggregate_cid as string,
    commitmentRoot: unhex(doc.commitment_root as string, 32),
    bitmap: BigInt(doc.bitmap as string),
    roster: idMap(doc.roster, (x) => x),
    keys: idMap(doc.keys, (x) => unhex(x, 32)),
  };
  if (doc.datasets !== undefined) facts.datasets = datasetMap(doc.datasets);
  return { facts, fetch: blobFolder(resolve(dirname(path), (doc.blobs as string) ?? "blobs")) };
}

/** `{"<id>": {"owner": "0x…", "record_count": N, "revoked": false}, …}` */
function datasetMap(v: JValue): Map<string, DatasetFact> {
  if (!isObject(v)) throw new TypeError("datasets is an object of data set ids");
  const out = new Map<string, DatasetFact>();
  for (const [id, d] of Object.entries(v)) {
    if (!/^(0|[1-9][0-9]*)$/.test(id) || !isObject(d)) throw new TypeError(`data set ${id}: expected {owner, record_count, revoked}`);
    const { owner, record_count: count, revoked } = d;
    if (typeof owner !== "string" || typeof revoked !== "boolean" || (typeof count !== "number" && typeof count !== "bigint")) {
      throw new TypeError(`data set ${id}: expected {owner, record_count, revoked}`);
    }
    out.set(id, { owner, recordCount: BigInt(count), revoked });
  }
  return out;
}

/** Blobs from a folder, each file named by its CID (the verifier checks every CID itself). */
export function blobFolder(dir: string): (cid: string) => Uint8Array | undefined {
  return (cid: string) => {
    if (!/^[A-Za-z0-9]+$/.test(cid)) return undefined;
    const f = join(dir, cid);
    return existsSync(f) ? new Uint8Array(readFileSync(f)) : undefined;
  };
}
