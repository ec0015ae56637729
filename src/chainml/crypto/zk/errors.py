"""Errors of chainml.crypto.zk.

CryptoError
├── InvalidProof
│   ├── InvalidNormProof        the proof does not verify for this statement and context
│   │   └── MalformedNormProof  not a canonical v1 encoding (truncated, extended, bad element)
│   └── AggregateMismatch       the published sum is not the sum of the committed vectors
└── NormBoundExceeded (also ValueError)  an honest prover asked to prove a false statement
"""

from __future__ import annotations

from chainml.crypto.errors import CryptoError, InvalidProof


class InvalidNormProof(InvalidProof):
    """A norm-bound proof did not verify for the given commitment, bound and context."""


class MalformedNormProof(InvalidNormProof):
    """Bytes that are not a well-formed norm-bound proof of this version and dimension."""


class AggregateMismatch(InvalidProof):
    """The sum of the trainers' commitments does not open to the published sum."""


class NormBoundExceeded(CryptoError, ValueError):
    """The vector's norm is above the bound (or a coordinate outside the 32-bit range)."""
