/** EIP-712 domain and the three SecAgg+ structs (docs/protocol/secagg.md §5). */
import { abi, ascii, concat, u16 } from "./bytes.js";
import { keccak256 } from "./primitives.js";

const th = (s: string): Uint8Array => keccak256(ascii(s));
export const DOMAIN_TYPEHASH = th("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
export const KEYS_TYPEHASH = th(
  "SecAggKeys(uint256 jobId,uint256 round,bytes32 context,uint256 client,bytes32 maskKey,bytes32 seedCommitment,bytes32 shares)",
);
export const SURVIVORS_TYPEHASH = th("SecAggSurvivors(uint256 jobId,uint256 round,bytes32 survivors)");
export const ROUND_COMMITMENT_TYPEHASH = th("RoundCommitment(uint256 jobId,uint256 round,bytes32 commitment)");

export function domainSeparator(chainId: bigint | number, jobs: string): Uint8Array {
  return keccak256(
    abi(
      { bytes32: DOMAIN_TYPEHASH },
      { bytes32: keccak256(ascii("chainml")) },
      { bytes32: keccak256(ascii("1")) },
      { uint256: chainId },
      { address: jobs },
    ),
  );
}

export function digest(domain: Uint8Array, structHash: Uint8Array): Uint8Array {
  return keccak256(concat(Uint8Array.of(0x19, 0x01), domain, structHash));
}

export function keysStructHash(
  jobId: bigint | number,
  round: bigint | number,
  context: Uint8Array,
  client: number,
  maskKey: Uint8Array,
  seedCommitment: Uint8Array,
  sharesRoot: Uint8Array,
): Uint8Array {
  return keccak256(
    abi(
      { bytes32: KEYS_TYPEHASH },
      { uint256: jobId },
      { uint256: round },
      { bytes32: context },
      { uint256: client },
      { bytes32: maskKey },
      { bytes32: seedCommitment },
      { bytes32: sharesRoot },
    ),
  );
}

/** keccak256(context ‖ u16 of each survivor). */
export function survivorsListed(context: Uint8Array, survivors: number[]): Uint8Array {
  return keccak256(concat(context, ...survivors.map(u16)));
}

export function survivorsStructHash(jobId: bigint | number, round: bigint | number, context: Uint8Array, survivors: number[]): Uint8Array {
  return keccak256(
    abi({ bytes32: SURVIVORS_TYPEHASH }, { uint256: jobId }, { uint256: round }, { bytes32: survivorsListed(context, survivors) }),
  );
}

export function roundCommitmentStructHash(jobId: bigint | number, round: bigint | number, commitment: Uint8Array): Uint8Array {
  return keccak256(abi({ bytes32: ROUND_COMMITMENT_TYPEHASH }, { uint256: jobId }, { uint256: round }, { bytes32: commitment }));
}

/** §5 input_commitment(input_hash, P, value_commitment). */
export function inputCommitment(inputHash: Uint8Array, partners: number[], valueCommitment: Uint8Array | null): Uint8Array {
  const extra = valueCommitment && valueCommitment.length > 0 ? keccak256(valueCommitment) : new Uint8Array(0);
  return keccak256(concat(inputHash, keccak256(concat(...partners.map(u16))), extra));
}
