"""Norm-bound proofs in a secure round across parties (docs/protocol/zk-norm.md §7, §12):
what a trainer commits to and sends beside its masked input, and what the aggregator and
every auditor check.  Pure computation: the node moves the messages.

A trainer of a ``norm_proofs`` job puts its weighted, clipped delta on the fixed-point grid
of the round itself (``commit_input``), so the integers SecAgg+ sums are exactly the ones
it commits to; commits to them (Pedersen, ``chainml.crypto.zk``) and appends its blinding
as ``NORM_WORDS`` 16-bit limbs after the weight coordinate; then proves (``prove_input``)
that the committed delta has L2 norm at most the job's clip bound, bound to the round's
context and its own address.  The proof travels as a ``NormClaim``.

The aggregator checks every claim of the inputs it received, in one batch, before it
counts any of them (``refused_claims``); an input whose claim is missing or fails is not
counted.  After unmasking it (and any auditor, from the published record) checks that the
sum opens the sum of the survivors' commitments (``check_sum``): the published delta sum
is then the sum of vectors each of norm at most the bound.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chainml.crypto import zk
from chainml.training.job import NORM_WORDS
from chainml.training.secagg import ProtocolViolation, RoundParams

CLAIM_FORMAT = "chainml-norm-claim/1"
COMMITMENT_BYTES = 48
MAX_PROOF_BYTES = 1 << 16  # a v1 proof is 12-13 KiB for any allowed dimension
LIMB_MAX = (1 << 16) - 1


@dataclass(frozen=True)
class NormClaim:
    """A trainer's commitment to its fixed-point delta and its norm-bound proof, for the
    round whose context the proof is bound to (``context``).  Canonical JSON on the wire
    (docs/protocol/zk-norm.md §12)."""

    sender: int  # the trainer's client id in the round (its bitmap index + 1)
    commitment: bytes  # 48 bytes, a compressed BLS12-381 G1 point
    proof: bytes  # the canonical v1 proof encoding

    def encode(self) -> bytes:
        return json.dumps(
            {
                "format": CLAIM_FORMAT,
                "sender": self.sender,
                "commitment": self.commitment.hex(),
                "proof": self.proof.hex(),
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> NormClaim:
        """The claim in ``raw``, which must be its canonical spelling; ``ProtocolViolation``
        for anything else.  The proof's length and content are the verifier's to judge
        (``zk.MalformedNormProof``, ``zk.InvalidNormProof``)."""
        try:
            if len(raw) > 2 * MAX_PROOF_BYTES + 512:
                raise ValueError("too long")
            d = json.loads(raw)
            if not isinstance(d, dict) or set(d) != {"format", "sender", "commitment", "proof"}:
                raise ValueError("not the claim's fields")
            if d["format"] != CLAIM_FORMAT:
                raise ValueError("unknown format")
            sender = d["sender"]
            if isinstance(sender, bool) or not isinstance(sender, int) or not 1 <= sender < 1 << 16:
                raise ValueError("the sender is a client id")
            commitment = _hex(d["commitment"])
            proof = _hex(d["proof"])
            if len(commitment) != COMMITMENT_BYTES or not proof:
                raise ValueError("a 48-byte commitment and a proof")
            claim = cls(sender, commitment, proof)
            if claim.encode() != raw:
                raise ValueError("not canonical")
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            raise ProtocolViolation("malformed norm claim") from exc
        return claim


def _hex(value: Any) -> bytes:
    if not isinstance(value, str) or value != value.lower():
        raise ValueError("lower-case hex expected")
    return bytes.fromhex(value)


def delta_len(params: RoundParams) -> int:
    """How many coordinates the proof covers: the delta, before the weight and the words."""
    return params.vector_len - NORM_WORDS - 1


def norm_params(params: RoundParams, clip: float) -> zk.NormParams:
    """The statement of every proof of the round: ``||x||^2 <= bound_sq_for(clip, f, n)``,
    ``clip`` the job's bound on chain, ``f`` the round's fraction bits."""
    dim = delta_len(params)
    return zk.NormParams(dim, zk.bound_sq_for(clip, params.frac_bits, dim))


def context(params: RoundParams, trainer: str) -> zk.NormContext:
    """What a proof is bound to: chain, Jobs contract, job, round, attempt, trainer."""
    return zk.NormContext(
        params.chain_id, params.jobs, params.job_id, params.round, params.attempt, trainer
    )


def headroom(frac_bits: int, dim: int) -> float:
    """What a proven input adds to the L2 norm of the vector SecAgg+ clips and encodes,
    beyond the clip and the weight: the grid's rounding of the delta (< sqrt(dim) units)
    and the blinding's words (each < 2^16 units), a unit being 2^-frac_bits."""
    return (math.sqrt(dim) + 1 + math.sqrt(NORM_WORDS) * LIMB_MAX + 1) / (1 << frac_bits)


def warm(dim: int) -> None:
    """Derive the generators a round with ``dim`` delta coordinates needs (hash-to-curve:
    seconds at the demo's size), so that the first round's commitment and check do not
    pay for them; each process derives them once (``zk``'s cache)."""
    zk.commit(np.zeros(dim, dtype=np.int64))


@dataclass(frozen=True)
class CommittedInput:
    """A trainer's input to SecAgg+ and what it committed to.  ``delta`` and ``opening``
    are secret (never logged: see ``__repr__``)."""

    vector: NDArray[np.float64]  # what SecAgg+ encodes: exact grid values, weight, words
    delta: NDArray[np.int64]  # the fixed-point delta the commitment opens to
    commitment: bytes
    opening: zk.CommitmentOpening

    def __repr__(self) -> str:
        return f"CommittedInput(commitment={self.commitment.hex()}, <secret>)"


def commit_input(
    params: RoundParams, update: NDArray[np.floating], rng: np.random.Generator | None = None
) -> CommittedInput:
    """Put ``update`` (``[delta · weight, weight]``, ``JobConfig.local_update``) on the
    round's fixed-point grid with stochastic rounding, commit to the delta's integers and
    append the commitment's blinding as ``NORM_WORDS`` words.  SecAgg+'s own encoding of
    the returned vector yields exactly these integers (its rounding of a grid value is the
    value itself).  Raises ``zk.NormBoundExceeded`` for a coordinate outside 32 bits."""
    values = np.asarray(update, dtype=np.float64)
    dim = delta_len(params)
    if values.shape != (dim + 1,):
        raise ValueError(f"an update of {dim + 1} values expected")
    scale = float(1 << params.frac_bits)
    rng = rng or np.random.default_rng()
    delta = np.floor(values[:dim] * scale + rng.random(dim)).astype(np.int64)
    commitment, opening = zk.commit(delta)
    words = np.array(opening.limbs(), dtype=np.float64) / scale
    vector = np.concatenate([delta.astype(np.float64) / scale, values[dim:], words])
    return CommittedInput(vector, delta, commitment, opening)


def prove_input(
    params: RoundParams, sender: int, clip: float, committed: CommittedInput
) -> NormClaim:
    """The claim for ``committed``: its commitment and a proof that its delta's L2 norm is
    within the job's ``clip`` (on the grid), bound to the round and the trainer the roster
    names for ``sender``.  Raises ``zk.NormBoundExceeded`` if it is not (nothing proven)."""
    ctx = context(params, params.roster[sender])
    proof = zk.prove_norm(ctx, norm_params(params, clip), committed.delta, committed.opening)
    return NormClaim(sender, committed.commitment, proof)


def verify_claim(params: RoundParams, clip: float, claim: NormClaim) -> None:
    """Check one claim for this round.  Returns nothing; raises ``zk.MalformedNormProof``
    (a truncated or extended proof, a commitment that is not a point),
    ``zk.InvalidNormProof`` (a proof for another round, job, attempt, trainer or vector,
    or of a false statement), ``ProtocolViolation`` for a sender not on the roster."""
    if claim.sender not in params.roster:
        raise ProtocolViolation(f"client {claim.sender} is not on the roster")
    zk.verify_norm(
        context(params, params.roster[claim.sender]),
        norm_params(params, clip),
        claim.commitment,
        claim.proof,
    )


def refused_claims(
    params: RoundParams, clip: float, claims: Mapping[int, NormClaim | None]
) -> dict[int, str]:
    """Client id -> why, for every claim that does not verify (checked together in one
    batch): a missing claim, one sent under another client's id, a malformed or false
    proof.  Empty if all verify."""
    refused: dict[int, str] = {}
    batch: list[int] = []
    for i, claim in sorted(claims.items()):
        if claim is None:
            refused[i] = "no norm claim"
        elif claim.sender != i or i not in params.roster:
            refused[i] = "a norm claim under another client's id"
        else:
            batch.append(i)
    if batch:
        statement = norm_params(params, clip)
        items = [
            (context(params, params.roster[i]), claims[i].commitment, claims[i].proof)  # type: ignore[union-attr]
            for i in batch
        ]
        for k in zk.invalid_norm_proofs(statement, items):
            refused[batch[k]] = "the norm-bound proof does not verify"
    return refused


def check_sum(params: RoundParams, total: NDArray[np.uint32], commitments: Sequence[bytes]) -> None:
    """The round's summed words (``total``: at least ``vector_len`` little-endian uint32,
    the transcript's) open the sum of the survivors' ``commitments``: the delta part read
    as signed 32-bit, the blinding from the summed words.  Raises ``zk.AggregateMismatch``
    (``zk.MalformedNormProof`` for a commitment that is not a point)."""
    words = np.asarray(total, dtype=np.uint32)
    dim = delta_len(params)
    if words.shape[0] < params.vector_len:
        raise zk.AggregateMismatch("the sum is shorter than the round's vector")
    x = words[:dim].view(np.int32).astype(np.int64)
    blinding = zk.blinding_from_limb_sums(
        [int(w) for w in words[params.vector_len - NORM_WORDS : params.vector_len]]
    )
    zk.verify_aggregate(list(commitments), x, blinding)


__all__ = [
    "CLAIM_FORMAT",
    "CommittedInput",
    "NormClaim",
    "check_sum",
    "commit_input",
    "context",
    "delta_len",
    "headroom",
    "norm_params",
    "prove_input",
    "refused_claims",
    "verify_claim",
    "warm",
]
