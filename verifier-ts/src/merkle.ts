/** The commitment root (docs/protocol/secagg.md §11.3). */
import { abi, ascii, beInt, concat } from "./bytes.js";
import { keccak256 } from "./primitives.js";

export function leafData(account: string, jobId: bigint | number, round: bigint | number, commitment: Uint8Array): Uint8Array {
  return abi({ address: account }, { uint256: jobId }, { uint256: round }, { bytes32: commitment });
}

export function leaf(data: Uint8Array): Uint8Array {
  return keccak256(concat(Uint8Array.of(0), data));
}

export function node(a: Uint8Array, b: Uint8Array): Uint8Array {
  const [lo, hi] = beInt(a) <= beInt(b) ? [a, b] : [b, a];
  return keccak256(concat(Uint8Array.of(1), lo, hi));
}

export function merkleRoot(leaves: Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return keccak256(ascii("chainml/merkle/empty/v1"));
  let level = leaves;
  while (level.length > 1) {
    const next: Uint8Array[] = [];
    for (let i = 0; i + 1 < level.length; i += 2) next.push(node(level[i], level[i + 1]));
    if (level.length % 2 === 1) next.push(level[level.length - 1]);
    level = next;
  }
  return level[0];
}

/** Σ 2^(i−1) over the counted client ids. */
export function bitmapOf(ids: number[]): bigint {
  return ids.reduce((acc, i) => acc | (1n << BigInt(i - 1)), 0n);
}
