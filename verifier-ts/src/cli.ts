/** Audit recorded rounds; one JSON line per round on stdout.
 *
 *     node dist/src/cli.js CASE.json …
 *     node dist/src/cli.js --rpc URL --jobs 0x… --job N --round R --blobs DIR [--datasets 0x…] [--abi DIR]
 *     node dist/src/cli.js --rpc URL --jobs 0x… --job N --escrow [--abi DIR]
 *
 * The first reads each round's chain facts from a case file (src/case.ts); the second reads
 * them from an Ethereum JSON-RPC endpoint with the committed ABIs (default: the repository's
 * src/chainml/ledger/artifacts) and, with --datasets (the Datasets contract), the data sets a
 * norm-proof round's claims name (docs/protocol/zk-norm.md §13); the third checks the job's escrow to the wei (src/escrow.ts).
 * Exit 0 when every round (or the escrow) checks out, 3 when one is refused, 2 when the input
 * cannot be read. */
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { blobFolder, Case, loadCase } from "./case.js";
import { readChainFacts, readEscrowFacts } from "./chain.js";
import { auditEscrow } from "./escrow.js";
import { claimedDatasets } from "./normround.js";
import { VerificationError } from "./errors.js";
import { auditRound } from "./verify.js";

const DEFAULT_ABI = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..", "src", "chainml", "ledger", "artifacts");

function usage(msg: string): never {
  console.error(`${msg}\nusage: cli.js CASE.json … | cli.js --rpc URL --jobs ADDR --job N (--round R --blobs DIR [--datasets ADDR] | --escrow) [--abi DIR]`);
  process.exit(2);
}

async function cases(argv: string[]): Promise<[string, Case][]> {
  if (argv[0] !== "--rpc") {
    return argv.map((path) => {
      try {
        return [path, loadCase(path)];
      } catch (e) {
        return usage(`${path}: ${(e as Error).message}`);
      }
    });
  }
  const opts = new Map<string, string>();
  for (let k = 0; k < argv.length; k += 2) {
    if (!argv[k].startsWith("--") || argv[k + 1] === undefined) usage(`bad option ${argv[k]}`);
    opts.set(argv[k].slice(2), argv[k + 1]);
  }
  for (const need of ["rpc", "jobs", "job", "round", "blobs"]) if (!opts.has(need)) usage(`--${need} is required`);
  try {
    const fetch = blobFolder(opts.get("blobs")!);
    const datasets = opts.has("datasets") ? { address: opts.get("datasets")!, ids: (cid: string) => claimedDatasets(fetch, cid) } : undefined;
    const facts = await readChainFacts(opts.get("rpc")!, opts.get("jobs")!, BigInt(opts.get("job")!), BigInt(opts.get("round")!), opts.get("abi") ?? DEFAULT_ABI, datasets);
    return [[`${opts.get("rpc")} job ${opts.get("job")} round ${opts.get("round")}`, { facts, fetch }]];
  } catch (e) {
    return usage(`reading the chain: ${(e as Error).message}`);
  }
}

/** One JSON line per audit: its result, or the check that refused it (then exit 3). */
async function report(name: string, audit: () => object): Promise<number> {
  try {
    console.log(JSON.stringify({ case: name, ok: true, ...audit() }));
    return 0;
  } catch (e) {
    if (!(e instanceof VerificationError)) throw e;
    console.log(JSON.stringify({ case: name, ok: false, check: e.check, error: e.message }));
    return 3;
  }
}

async function escrowOf(argv: string[]): Promise<number> {
  const opts = new Map<string, string>();
  for (let k = 0; k < argv.length; k += 2) opts.set(argv[k].replace(/^--/, ""), argv[k + 1]);
  for (const need of ["rpc", "jobs", "job"]) if (!opts.get(need)) usage(`--${need} is required`);
  let facts;
  try {
    facts = await readEscrowFacts(opts.get("rpc")!, opts.get("jobs")!, BigInt(opts.get("job")!), opts.get("abi") ?? DEFAULT_ABI);
  } catch (e) {
    return usage(`reading the chain: ${(e as Error).message}`);
  }
  return report(`${opts.get("rpc")} job ${opts.get("job")} escrow`, () => ({ escrow: auditEscrow(facts) }));
}

const argv = process.argv.slice(2);
if (argv.length === 0) usage("nothing to audit");
let status = 0;
if (argv[0] === "--rpc" && argv.includes("--escrow")) {
  status = await escrowOf(argv.filter((a) => a !== "--escrow"));
} else {
  for (const [name, c] of await cases(argv)) {
    const code = await report(name, () => {
      const r = auditRound(c.facts, c.fetch);
      return { aggregation: r.aggregation, counted: r.counted, sum: r.sum };
    });
    status = Math.max(status, code);
  }
}
// exitCode, not exit(): exit() would end the process before a piped stdout has drained
// (a 4,810-parameter sum is more than the pipe's 64 KiB)
process.exitCode = status;
