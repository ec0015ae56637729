/** Time this verifier on norm-bound proofs written by bench/make_norm_proof.py, beside
 * chainml's Python verifier's time measured when they were written (same machine):
 *
 *     node dist/bench/norm-verify.js PROOFS.json [repeats]
 *
 * One JSON line: generator derivation (once a process), one proof alone (median of
 * `repeats`), the batch of all proofs per proof, and the ratio to Python; CPU and wall
 * seconds (the machine is shared: CPU is the steadier figure). */
import { readFileSync } from "node:fs";
import { unhex } from "../src/bytes.js";
import { gens, invalidNormProofs, NormContext, NormParams, verifyNorm } from "../src/zknorm.js";

function timed<T>(f: () => T): { value: T; cpu: number; wall: number } {
  const c0 = process.cpuUsage();
  const w0 = performance.now();
  const value = f();
  const c = process.cpuUsage(c0);
  return { value, cpu: (c.user + c.system) / 1e6, wall: (performance.now() - w0) / 1e3 };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const doc = JSON.parse(readFileSync(process.argv[2], "utf8"));
const repeats = Number(process.argv[3] ?? 3);
const params = new NormParams(doc.dim, BigInt(doc.bound_sq));
const items = doc.proofs.map((p: any): [NormContext, Uint8Array, Uint8Array, NormParams] => [
  { chainId: p.context.chain_id, jobs: p.context.jobs_contract, jobId: p.context.job_id, round: p.context.round, attempt: p.context.attempt, trainer: p.context.trainer },
  unhex(p.commitment),
  unhex(p.proof),
  params,
]);
const g = timed(() => gens(params.padded));
const singles = Array.from({ length: repeats }, () => timed(() => verifyNorm(items[0][0], params, items[0][1], items[0][2])));
const batch = timed(() => invalidNormProofs(items));
if (batch.value.length) throw new Error(`proofs ${batch.value} do not verify`);
const one = { cpu_s: median(singles.map((t) => t.cpu)), wall_s: median(singles.map((t) => t.wall)) };
console.log(
  JSON.stringify({
    dim: doc.dim,
    padded: params.padded,
    proof_bytes: items[0][2].length,
    generators: { points: 2 * params.padded + 131, cpu_s: g.cpu, wall_s: g.wall },
    verify_one: one,
    verify_batch_per_proof: { proofs: items.length, cpu_s: batch.cpu / items.length, wall_s: batch.wall / items.length },
    python_verify_one: doc.python_verify,
    ratio_cpu_ts_over_python: one.cpu_s / doc.python_verify.cpu_s,
  }),
);
