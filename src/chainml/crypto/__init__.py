"""chainml.crypto: safe recipes for identities, signatures, hashing and commitments.

Risky primitives live under ``chainml.crypto.hazmat``; everything here checks its inputs
and raises ``chainml.crypto.errors.CryptoError`` subclasses.  No I/O.
"""

from chainml.crypto.box import SecretBox
from chainml.crypto.commitments import (
    DatasetCommitment,
    RecordOpening,
    encode_float_records,
    schema_hash,
    verify_opening,
)
from chainml.crypto.errors import (
    CryptoError,
    DecryptionFailed,
    InvalidKey,
    InvalidProof,
    InvalidSignature,
)
from chainml.crypto.hashing import keccak256, sha256, tagged_hash
from chainml.crypto.keys import (
    AccountKey,
    Identity,
    X25519KeyPair,
    recover_address,
    verify_proof_of_possession,
)
from chainml.crypto.merkle import MerkleTree, commitment_leaf, verify_inclusion
from chainml.crypto.signing import (
    round_commitment_digest,
    sign_round_commitment,
    verify_round_commitment,
)

__all__ = [
    "AccountKey",
    "CryptoError",
    "DatasetCommitment",
    "DecryptionFailed",
    "Identity",
    "InvalidKey",
    "InvalidProof",
    "InvalidSignature",
    "MerkleTree",
    "RecordOpening",
    "SecretBox",
    "X25519KeyPair",
    "commitment_leaf",
    "encode_float_records",
    "keccak256",
    "recover_address",
    "round_commitment_digest",
    "schema_hash",
    "sha256",
    "sign_round_commitment",
    "tagged_hash",
    "verify_inclusion",
    "verify_opening",
    "verify_proof_of_possession",
    "verify_round_commitment",
]
