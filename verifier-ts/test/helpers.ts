import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { dirname, resolve } from "node:path";

/** The repository root, from dist/test/ (compiled) or test/ (source). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const VECTORS = resolve(ROOT, "docs", "protocol", "vectors");

/** Read a vectors file at test time (another engineer may regenerate it). */
export function vectors(name: string): any {
  return JSON.parse(readFileSync(resolve(VECTORS, name), "utf8"));
}

/** A proof vector's context, as the verifier takes it. */
export function contextOf(c: any): { chainId: number; jobs: string; jobId: number; round: number; attempt: number; trainer: string } {
  return { chainId: c.chain_id, jobs: c.jobs_contract, jobId: c.job_id, round: c.round, attempt: c.attempt, trainer: c.trainer };
}
