"""chainml.crypto.zk: zero-knowledge norm-bound proofs for secure aggregation.

A trainer commits to its integer (fixed-point) update with a Pedersen vector commitment,
proves that its L2 norm is at most the job's bound, bound to the job, round, attempt and
its own address; the aggregator verifies each proof before counting the input and checks
that the published sum opens the sum of the commitments.  As a job option the same
commitment also carries an L∞-bound proof (``prove_linf``: every coordinate within
±bound).  Specified in docs/protocol/zk-norm.md.  ``verify_*`` return nothing and raise.
"""

from chainml.crypto.zk._linf import LinfParams, linf_proof_size, prove_linf, verify_linf
from chainml.crypto.zk._norm import (
    CommitmentOpening,
    NormContext,
    NormParams,
    blinding_from_limb_sums,
    bound_sq_for,
    commit,
    invalid_norm_proofs,
    proof_size,
    prove_norm,
    verify_aggregate,
    verify_norm,
)
from chainml.crypto.zk.errors import (
    AggregateMismatch,
    InvalidNormProof,
    MalformedNormProof,
    NormBoundExceeded,
)

__all__ = [
    "AggregateMismatch",
    "CommitmentOpening",
    "InvalidNormProof",
    "LinfParams",
    "MalformedNormProof",
    "NormBoundExceeded",
    "NormContext",
    "NormParams",
    "blinding_from_limb_sums",
    "bound_sq_for",
    "commit",
    "invalid_norm_proofs",
    "linf_proof_size",
    "proof_size",
    "prove_linf",
    "prove_norm",
    "verify_aggregate",
    "verify_linf",
    "verify_norm",
]
