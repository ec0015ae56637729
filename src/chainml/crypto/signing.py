"""EIP-712 typed-data signatures for chainml's on-chain domains.

Round commitments are signed as ``RoundCommitment(uint256 jobId,uint256 round,bytes32
commitment)`` under the domain ``{name: "chainml", version: "1", chainId,
verifyingContract: Jobs}``; the Jobs contract recomputes the same digest to check
double-signing evidence.
"""

from __future__ import annotations

from functools import lru_cache

from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address

from chainml.crypto.errors import InvalidSignature
from chainml.crypto.hashing import keccak256
from chainml.crypto.keys import AccountKey, recover_address

DOMAIN_TYPEHASH = keccak256(
    b"EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
)
ROUND_COMMITMENT_TYPEHASH = keccak256(
    b"RoundCommitment(uint256 jobId,uint256 round,bytes32 commitment)"
)


@lru_cache(maxsize=256)
def domain_separator(chain_id: int, verifying_contract: str, *, name: str = "chainml") -> bytes:
    return keccak256(
        abi_encode(
            ["bytes32", "bytes32", "bytes32", "uint256", "address"],
            [
                DOMAIN_TYPEHASH,
                keccak256(name.encode()),
                keccak256(b"1"),
                chain_id,
                to_checksum_address(verifying_contract),
            ],
        )
    )


def words(*values: int | bytes) -> bytes:
    """ABI encoding of static ``uint256`` and ``bytes32`` values (what ``eth_abi`` gives
    for those types, without its per-call validation cost on hot paths)."""
    out = bytearray()
    for v in values:
        if isinstance(v, bytes):
            if len(v) != 32:
                raise ValueError("a bytes32 word is 32 bytes")
            out += v
        elif isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 1 << 256:
            out += v.to_bytes(32, "big")
        else:
            raise ValueError("a word is a uint256 or 32 bytes")
    return bytes(out)


def round_commitment_digest(
    chain_id: int, jobs_contract: str, job_id: int, round_no: int, commitment: bytes
) -> bytes:
    """The EIP-712 digest of a participant's commitment for one job round."""
    if len(commitment) != 32:
        raise ValueError("a commitment is 32 bytes")
    struct_hash = keccak256(words(ROUND_COMMITMENT_TYPEHASH, job_id, round_no, commitment))
    return keccak256(b"\x19\x01" + domain_separator(chain_id, jobs_contract) + struct_hash)


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
