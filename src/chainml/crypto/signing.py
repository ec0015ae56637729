"""EIP-712 typed-data signatures for chainml's on-chain domains.

Round commitments are signed as ``RoundCommitment(uint256 jobId,uint256 round,bytes32
commitment)`` under the domain ``{name: "chainml", version: "1", chainId,
verifyingContract: Jobs}``; the Jobs contract recomputes the same digest to check
double-signing evidence.
"""

from __future__ import annotations

from eth_utils.address import to_checksum_address

from chainml.crypto.eip712 import DOMAIN, ROUND_COMMITMENT, domain_separator
from chainml.crypto.errors import InvalidSignature
from chainml.crypto.keys import AccountKey, recover_address

DOMAIN_TYPEHASH = DOMAIN.typehash
ROUND_COMMITMENT_TYPEHASH = ROUND_COMMITMENT.typehash

__all__ = [
    "domain_separator",
    "round_commitment_digest",
    "sign_round_commitment",
    "verify_round_commitment",
]


def round_commitment_digest(
    chain_id: int, jobs_contract: str, job_id: int, round_no: int, commitment: bytes
) -> bytes:
    """The EIP-712 digest of a participant's commitment for one job round."""
    if len(commitment) != 32:
        raise ValueError("a commitment is 32 bytes")
    return ROUND_COMMITMENT.digest(chain_id, jobs_contract, job_id, round_no, commitment)


def sign_round_commitment(
    key: AccountKey,
    chain_id: int,
    jobs_contract: str,
    job_id: int,
    round_no: int,
    commitment: bytes,
) -> bytes:
    """Sign a round commitment; 65 bytes r || s || v."""
    return key.sign_digest(
        round_commitment_digest(chain_id, jobs_contract, job_id, round_no, commitment)
    )


def verify_round_commitment(
    signer: str,
    signature: bytes,
    chain_id: int,
    jobs_contract: str,
    job_id: int,
    round_no: int,
    commitment: bytes,
) -> None:
    """Raise ``InvalidSignature`` unless ``signer`` signed this commitment."""
    digest = round_commitment_digest(chain_id, jobs_contract, job_id, round_no, commitment)
    if recover_address(digest, signature) != to_checksum_address(signer):
        raise InvalidSignature("round commitment signed by another account")
