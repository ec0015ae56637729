/** What an auditor reads from the chain, over Ethereum JSON-RPC (`eth_chainId`,
 * `eth_call`, `eth_getLogs`), with the committed ABIs (src/chainml/ledger/artifacts/*.json)
 * and nothing else: the job (clip bound, configuration hash and CID, participant count), the
 * round (record CID, commitment root, bitmap), the roster (`participant_at`,
 * docs/protocol/secagg.md §11.1) and each participant's registered X25519 key
 * (`Registry.identities`) as the round saw it: at the block before the one whose
 * `RoundRecorded` event names the round's record, so a key rotated since changes nothing. */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { abi, ascii, beInt, hex, unhex } from "./bytes.js";
import { keccak256 } from "./primitives.js";
import { EscrowFacts } from "./escrow.js";
import { DatasetFact } from "./normround.js";
import { ChainFacts } from "./verify.js";

export interface AbiParam {
  name: string;
  type: string;
  components?: AbiParam[];
}
interface AbiFunction {
  type: string;
  name: string;
  inputs: AbiParam[];
  outputs: AbiParam[];
}
interface AbiEvent {
  type: string;
  name: string;
  inputs: (AbiParam & { indexed: boolean })[];
}
type Block = bigint | "latest";

export type Decoded = bigint | string | boolean | Uint8Array | Decoded[] | { [k: string]: Decoded };

export class ChainError extends Error {}

function canonicalType(p: AbiParam): string {
  if (p.type.startsWith("tuple")) return `(${p.components!.map(canonicalType).join(",")})${p.type.slice(5)}`;
  return p.type;
}

const isDynamic = (p: AbiParam): boolean =>
  p.type === "string" || p.type === "bytes" || p.type.endsWith("[]") || (p.type === "tuple" && p.components!.some(isDynamic));

function word(data: Uint8Array, at: number): Uint8Array {
  if (at + 32 > data.length) throw new ChainError("ABI data too short");
  return data.subarray(at, at + 32);
}

/** Decode a tuple of `params` whose encoding starts at `base`. */
export function decodeTuple(params: AbiParam[], data: Uint8Array, base: number): { [k: string]: Decoded } {
  const out: { [k: string]: Decoded } = {};
  let head = base; // heads are laid out one after another; offsets count from `base`
  params.forEach((p, k) => {
    const name = p.name || String(k);
    if (isDynamic(p)) {
      const at = base + Number(beInt(word(data, head)));
      if (p.type === "string" || p.type === "bytes") {
        const len = Number(beInt(word(data, at)));
        if (at + 32 + len > data.length) throw new ChainError("ABI data too short");
        const b = data.subarray(at + 32, at + 32 + len);
        out[name] = p.type === "string" ? new TextDecoder("utf-8", { fatal: true }).decode(b) : b;
      } else if (p.type === "tuple") out[name] = decodeTuple(p.components!, data, at);
      else throw new ChainError(`ABI type ${p.type} not supported`);
      head += 32;
    } else if (p.type === "tuple") {
      // a static tuple is inline, its fields one after another
      out[name] = decodeTuple(p.components!, data, head);
      head += 32 * staticWords(p);
    } else {
      const w = word(data, head);
      if (p.type === "address") out[name] = "0x" + hex(w.subarray(12));
      else if (p.type === "bool") out[name] = w[31] === 1;
      else if (p.type.startsWith("bytes")) out[name] = w.slice(0, Number(p.type.slice(5)));
      else if (p.type.startsWith("uint")) out[name] = beInt(w);
      else throw new ChainError(`ABI type ${p.type} not supported`);
      head += 32;
    }
  });
  return out;
}

function staticWords(p: AbiParam): number {
  return p.type === "tuple" ? p.components!.reduce((a, c) => a + staticWords(c), 0) : 1;
}

export class Contract {
  private readonly fns = new Map<string, AbiFunction>();
  private readonly evs = new Map<string, AbiEvent>();
  constructor(
    private readonly rpc: Rpc,
    readonly address: string,
    abiJson: unknown,
  ) {
    const list = (Array.isArray(abiJson) ? abiJson : (abiJson as { abi: unknown[] }).abi) as AbiFunction[];
    for (const f of list) if (f.type === "function") this.fns.set(f.name, f);
    for (const e of list as unknown as AbiEvent[]) if (e.type === "event") this.evs.set(e.name, e);
  }

  /** eth_call of a view function with uint256/address arguments at the latest block. */
  async call(name: string, ...args: (bigint | number | string)[]): Promise<Decoded> {
    return this.callAt("latest", name, ...args);
  }

  /** Every `name` event of this contract whose leading indexed uint256 arguments are
   * `indexed`, oldest first: its block number and its non-indexed arguments, decoded. */
  async logs(name: string, ...indexed: bigint[]): Promise<{ block: bigint; topics: string[]; args: { [k: string]: Decoded } }[]> {
    const e = this.evs.get(name);
    if (!e) throw new ChainError(`no event ${name} in the ABI`);
    const topic0 = keccak256(ascii(`${e.name}(${e.inputs.map(canonicalType).join(",")})`));
    const topics = ["0x" + hex(topic0), ...indexed.map((v) => "0x" + hex(abi({ uint256: v })))];
    const found = (await this.rpc.request("eth_getLogs", [{ address: this.address, fromBlock: "0x0", toBlock: "latest", topics }])) as {
      blockNumber: string;
      topics: string[];
      data: string;
    }[];
    if (!Array.isArray(found)) throw new ChainError(`${name}: eth_getLogs did not answer a list`);
    const data = e.inputs.filter((p) => !p.indexed);
    return found.map((log) => ({
      block: BigInt(log.blockNumber),
      topics: log.topics,
      args: decodeTuple(data, unhex(log.data.slice(2).toLowerCase()), 0),
    }));
  }

  /** eth_call of a view function with uint256/address arguments at `block`; returns its
   * one output. */
  async callAt(block: Block, name: string, ...args: (bigint | number | string)[]): Promise<Decoded> {
    const f = this.fns.get(name);
    if (!f) throw new ChainError(`no function ${name} in the ABI`);
    const sig = `${f.name}(${f.inputs.map(canonicalType).join(",")})`;
    const selector = keccak256(ascii(sig)).subarray(0, 4);
    const encoded = f.inputs.map((p, k) =>
      p.type === "address" ? abi({ address: String(args[k]) }) : abi({ uint256: BigInt(args[k] as bigint) }),
    );
    const data = "0x" + hex(selector) + encoded.map(hex).join("");
    const tag = block === "latest" ? block : "0x" + block.toString(16);
    const result = (await this.rpc.request("eth_call", [{ to: this.address, data }, tag])) as string;
    if (typeof result !== "string" || !/^0x([0-9a-fA-F]{2})*$/.test(result)) throw new ChainError(`${name}: not hex data`);
    const decoded = decodeTuple(f.outputs, unhex(result.slice(2).toLowerCase()), 0);
    return decoded[f.outputs[0].name || "0"];
  }
}

export class Rpc {
  private id = 0;
  constructor(readonly url: string) {}

  async request(method: string, params: unknown[]): Promise<unknown> {
    const res = await fetch(this.url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: ++this.id, method, params }),
      signal: AbortSignal.timeout(30_000),
    });
    const body = (await res.json()) as { result?: unknown; error?: { message?: string } };
    if (body.error) throw new ChainError(`${method}: ${body.error.message ?? "error"}`);
    return body.result;
  }
}

function abiOf(dir: string, name: string): unknown {
  return JSON.parse(readFileSync(join(dir, `${name}.json`), "utf8"));
}

/** Where a norm-proof round's data sets are (zk-norm.md §13): the Datasets contract, and
 * the ids the round's claims name, given the record's CID. */
export interface DatasetSource {
  address: string;
  ids: (aggregateCid: string) => bigint[];
}

/** The facts of one round, read from the chain (with `datasets`, also `Datasets.get` of
 * each data set the round's claims name, at the same block as the keys). */
export async function readChainFacts(
  url: string,
  jobs: string,
  jobId: bigint,
  round: bigint,
  abiDir: string,
  datasets?: DatasetSource,
): Promise<ChainFacts> {
  const rpc = new Rpc(url);
  const chainId = BigInt((await rpc.request("eth_chainId", [])) as string);
  const J = new Contract(rpc, jobs, abiOf(abiDir, "Jobs"));
  const job = (await J.call("get_job", jobId)) as { [k: string]: any };
  const info = (await J.call("get_round", jobId, round)) as { [k: string]: any };
  const R = new Contract(rpc, (await J.call("registry")) as string, abiOf(abiDir, "Registry"));
  // the keys as the round saw them: the block before the one that recorded its record (a
  // round not recorded has no such block; its audit fails on the record's CID anyway)
  let at: Block = "latest";
  for (const event of await J.logs("RoundRecorded", jobId, round)) {
    if (event.args.aggregate_cid === info.aggregate_cid) at = event.block > 0n ? event.block - 1n : 0n;
  }
  const roster = new Map<number, string>();
  const keys = new Map<number, Uint8Array>();
  for (let i = 0; i < Number(job.participant_count); i++) {
    const account = (await J.call("participant_at", jobId, i)) as string;
    roster.set(i + 1, account);
    keys.set(i + 1, ((await R.callAt(at, "identities", account)) as { [k: string]: any }).x25519_key);
  }
  const facts: ChainFacts = {
    chainId,
    jobs,
    jobId,
    round,
    clipBound: Number(job.params.clip_bound),
    configHash: job.params.config_hash,
    configCid: job.params.config_cid ?? "",
    aggregateCid: info.aggregate_cid,
    commitmentRoot: info.commitment_root,
    bitmap: info.bitmap,
    roster,
    keys,
  };
  if (datasets) {
    const D = new Contract(rpc, datasets.address, abiOf(abiDir, "Datasets"));
    facts.datasets = await readDatasets(D, datasets.ids(facts.aggregateCid), at);
  }
  return facts;
}

/** `Datasets.get(id)` at `at` for each of `ids` that exists then (1 ≤ id ≤ dataset_count:
 * `get` reverts for any other); an id absent from the map is a data set that does not exist. */
export async function readDatasets(D: Contract, ids: bigint[], at: Block): Promise<Map<string, DatasetFact>> {
  const count = (await D.callAt(at, "dataset_count")) as bigint;
  const out = new Map<string, DatasetFact>();
  for (const id of new Set(ids)) {
    if (id < 1n || id > count) continue;
    const d = (await D.callAt(at, "get", id)) as { [k: string]: any };
    out.set(id.toString(), { owner: d.owner, recordCount: d.record_count, revoked: d.revoked });
  }
  return out;
}

const STATES: { [k: number]: EscrowFacts["state"] } = { 1: "open", 2: "finalized", 3: "cancelled" };

/** What the chain says of a job's escrow: its state and amounts, its roster, each recorded
 * round's bitmap, and its RewardClaimed and Refunded events. */
export async function readEscrowFacts(url: string, jobs: string, jobId: bigint, abiDir: string): Promise<EscrowFacts> {
  const J = new Contract(new Rpc(url), jobs, abiOf(abiDir, "Jobs"));
  const job = (await J.call("get_job", jobId)) as { [k: string]: any };
  const state = STATES[Number(job.state)];
  if (state === undefined) throw new ChainError(`job ${jobId}: unknown state ${job.state}`);
  const roster = new Map<number, string>();
  for (let i = 0; i < Number(job.participant_count); i++) roster.set(i + 1, (await J.call("participant_at", jobId, i)) as string);
  const bitmaps: bigint[] = [];
  for (let r = 1n; r <= BigInt(job.rounds_done); r++) bitmaps.push(((await J.call("get_round", jobId, r)) as { [k: string]: any }).bitmap);
  const claims = new Map<string, bigint>();
  for (const e of await J.logs("RewardClaimed", jobId)) {
    const account = "0x" + e.topics[2].slice(26).toLowerCase();
    if (claims.has(account)) throw new ChainError(`${account} claimed twice`);
    claims.set(account, e.args.amount as bigint);
  }
  const refunds = (await J.logs("Refunded", jobId)).map((e) => e.args.amount as bigint);
  return { state, escrow: job.escrow, paid: job.paid, totalParticipations: job.total_participations, roster, bitmaps, claims, refunds };
}
