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

Honest weights (zk-norm.md §13): a claim names the trainer's data set on the Datasets
contract and how many of its records it counts; its weight is ``min(records,
weight_base) / weight_base``, its proof's bound the clip times that weight, and its weight
coordinate that weight on the round's grid.  The verifier (``ClaimRules``) checks on chain
that the data set is the trainer's, not revoked, and holds that many records; the sum
check ties the summed weight coordinate to the sum of the counted claims' weights.

L∞ (§14): a job with ``linf_bound`` also has every coordinate of each delta within
±``linf_bound`` times the claim's weight: the trainer clips its coordinates to that box,
proves it on the same commitment (``zk.prove_linf``) and the claim carries that proof
(``linf``); the verifier refuses a claim of such a job without one, or whose proof fails.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from chainml.crypto import zk
from chainml.ledger.errors import UnknownDataset
from chainml.training.errors import TrainingError
from chainml.training.job import NORM_WORDS
from chainml.training.secagg import ProtocolViolation, RoundParams

CLAIM_FORMAT = "chainml-norm-claim/2"
COMMITMENT_BYTES = 48
MAX_PROOF_BYTES = 1 << 16  # a v1 proof is 12-13 KiB for any allowed dimension
LIMB_MAX = (1 << 16) - 1
MAX_ID = (1 << 256) - 1  # data set ids and record counts are uint256 on chain
CLAIM_FIELDS = {"format", "sender", "dataset", "records", "commitment", "proof"}
LINF_FIELD = "linf"  # present only in a claim of a job with an L-infinity bound (§14)


@dataclass(frozen=True)
class NormClaim:
    """A trainer's commitment to its fixed-point delta and its norm-bound proof, for the
    round whose context the proof is bound to (``context``).  Canonical JSON on the wire
    (docs/protocol/zk-norm.md §12)."""

    sender: int  # the trainer's client id in the round (its bitmap index + 1)
    dataset: int  # its data set's id on the Datasets contract
    records: int  # how many of that data set's records it counts (its weight, §13)
    commitment: bytes  # 48 bytes, a compressed BLS12-381 G1 point
    proof: bytes  # the canonical proof encoding (zk-norm.md §6)
    linf: bytes = b""  # an L-infinity proof on the same commitment (§11), if the job asks

    def encode(self) -> bytes:
        doc: dict[str, Any] = {
            "format": CLAIM_FORMAT,
            "sender": self.sender,
            "dataset": self.dataset,
            "records": self.records,
            "commitment": self.commitment.hex(),
            "proof": self.proof.hex(),
        }
        if self.linf:
            doc[LINF_FIELD] = self.linf.hex()
        return json.dumps(
            doc,
            sort_keys=True,
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> NormClaim:
        """The claim in ``raw``, which must be its canonical spelling; ``ProtocolViolation``
        for anything else.  The proof's length and content are the verifier's to judge
        (``zk.MalformedNormProof``, ``zk.InvalidNormProof``)."""
        try:
            if len(raw) > 4 * MAX_PROOF_BYTES + 512:
                raise ValueError("too long")
            d = json.loads(raw)
            if not isinstance(d, dict) or set(d) - {LINF_FIELD} != CLAIM_FIELDS:
                raise ValueError("not the claim's fields")
            if d["format"] != CLAIM_FORMAT:
                raise ValueError("unknown format")
            sender = _integer(d["sender"], (1 << 16) - 1)
            dataset, records = _integer(d["dataset"], MAX_ID), _integer(d["records"], MAX_ID)
            commitment = _hex(d["commitment"])
            proof = _hex(d["proof"])
            if len(commitment) != COMMITMENT_BYTES or not proof:
                raise ValueError("a 48-byte commitment and a proof")
            linf = _hex(d[LINF_FIELD]) if LINF_FIELD in d else b""
            if LINF_FIELD in d and not linf:
                raise ValueError("an empty L-infinity proof")
            claim = cls(sender, dataset, records, commitment, proof, linf)
            if claim.encode() != raw:
                raise ValueError("not canonical")
        except (ValueError, TypeError, KeyError, RecursionError) as exc:
            raise ProtocolViolation("malformed norm claim") from exc
        return claim


def _integer(value: Any, most: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise ValueError(f"an integer in [1, {most}] expected")
    return value


def _hex(value: Any) -> bytes:
    if not isinstance(value, str) or value != value.lower():
        raise ValueError("lower-case hex expected")
    return bytes.fromhex(value)


class NoDataset(TrainingError):
    """This trainer has no live data set on the Datasets contract: it cannot back a weight."""


class UnbackedWeight(ProtocolViolation):
    """A claim's weight is not backed by the data set it names (§13)."""


class DatasetRecord(Protocol):
    """What a claim's check reads of a data set on chain (``Datasets.get``)."""

    @property
    def owner(self) -> str: ...

    @property
    def record_count(self) -> int: ...

    @property
    def revoked(self) -> bool: ...


@dataclass(frozen=True)
class ClaimRules:
    """What every claim of a job's round is checked against: the job's clip bound (on
    chain), its ``weight_base`` (records that count as weight 1, in the configuration the
    chain names) and the Datasets contract as of the check (``datasets``: id -> record;
    raises ``UnknownDataset`` for an id never committed; ``dataset_lookup``)."""

    clip: float
    weight_base: int
    datasets: Callable[[int], DatasetRecord]
    linf: float = 0.0  # the job's linf_bound: 0 if it asks for none


@dataclass(frozen=True)
class DataStake:
    """What backs a trainer's weight: its data set's id on chain and how many of its
    records it counts (at most the data set's ``record_count``)."""

    dataset: int
    records: int
    weight_base: int

    def __post_init__(self) -> None:
        for name in ("dataset", "records", "weight_base"):
            _integer(getattr(self, name), MAX_ID)

    @property
    def weight(self) -> float:
        """``min(records, weight_base) / weight_base``: in (0, 1]."""
        return min(self.records, self.weight_base) / self.weight_base


def weighted_clip(clip: float, records: int, weight_base: int) -> float:
    """The bound on a claim's delta: the job's ``clip`` times the claim's weight (every
    party computes this same double)."""
    return clip * min(records, weight_base) / weight_base


def grid_weight(params: RoundParams, records: int, weight_base: int) -> int:
    """A claim's weight on the round's fixed-point grid: the integer its weight coordinate
    carries, ``floor(min(records, weight_base) · 2^f / weight_base)``."""
    return (min(records, weight_base) << params.frac_bits) // weight_base


def dataset_lookup(datasets: Any, block: int | str = "latest") -> Callable[[int], DatasetRecord]:
    """``ClaimRules.datasets`` from the Datasets binding, read at ``block`` (an auditor
    reads the data sets as they were when the round was recorded)."""

    def get(dataset_id: int) -> DatasetRecord:
        record: DatasetRecord = datasets.functions.get(dataset_id, block=block)
        return record

    return get


def own_stake(datasets: Any, owner: str, available: int, weight_base: int) -> DataStake:
    """A trainer's stake: its newest live data set on the Datasets binding ``datasets``
    (found by its ``DatasetCommitted`` events), counting ``available`` records (its own)
    or the data set's ``record_count`` if that is less.  Raises ``NoDataset``."""
    if available < 1:
        raise NoDataset("no records to train on")
    events = datasets.contract.past_events("DatasetCommitted", where={"owner": owner})
    for event in reversed(events):
        dataset_id = int(event.args["dataset_id"])
        record = datasets.get(dataset_id)
        if not record.revoked and record.owner.lower() == owner.lower():
            return DataStake(dataset_id, min(available, record.record_count), weight_base)
    raise NoDataset(f"{owner} has no live data set on the Datasets contract")


def linf_params(params: RoundParams, bound: float) -> zk.LinfParams:
    """The L∞ statement for a delta within ±``bound`` (already times the weight) on the
    round's grid: ``|x_j| <= ceil(bound·2^f) + 1`` (the grid's rounding adds below 1)."""
    grid = math.ceil(bound * (1 << params.frac_bits)) + 1
    return zk.LinfParams(delta_len(params), min(grid, (1 << 31) - 1))  # |x_j| < 2^31 anyway


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
    stake: DataStake  # public: what the claim names as its weight
    linf: float = 0.0  # the job's linf_bound, if any: the claim carries an L∞ proof

    def __repr__(self) -> str:
        return f"CommittedInput(commitment={self.commitment.hex()}, <secret>)"


def commit_input(
    params: RoundParams,
    update: NDArray[np.floating],
    stake: DataStake,
    rng: np.random.Generator | None = None,
    *,
    linf: float = 0.0,
) -> CommittedInput:
    """Put ``update`` (``[delta · weight, weight]``, ``JobConfig.local_update``) on the
    round's fixed-point grid with stochastic rounding, at the weight ``stake`` backs (the
    delta rescaled from the update's own weight to it, a no-op when they agree), commit to
    the delta's integers, put the weight's grid value (``grid_weight``) in the weight
    coordinate and append the commitment's blinding as ``NORM_WORDS`` words.  SecAgg+'s
    own encoding of the returned vector yields exactly these integers (its rounding of a
    grid value is the value itself).  With ``linf`` (the job's ``linf_bound``) every
    coordinate is first clipped to ±``linf`` times the weight (which keeps the L2 clip).
    Raises ``zk.NormBoundExceeded`` for a coordinate outside 32 bits."""
    values = np.asarray(update, dtype=np.float64)
    dim = delta_len(params)
    if values.shape != (dim + 1,) or not values[dim] > 0:
        raise ValueError(f"an update of {dim + 1} values, the last a positive weight, expected")
    scale = float(1 << params.frac_bits)
    rng = rng or np.random.default_rng()
    scaled = values[:dim] * (stake.weight / values[dim])
    if linf:
        box = weighted_clip(linf, stake.records, stake.weight_base)
        scaled = np.clip(scaled, -box, box)
    delta = np.floor(scaled * scale + rng.random(dim)).astype(np.int64)
    commitment, opening = zk.commit(delta)
    words = np.array(opening.limbs(), dtype=np.float64) / scale
    weight = grid_weight(params, stake.records, stake.weight_base) / scale
    vector = np.concatenate([delta.astype(np.float64) / scale, [weight], words])
    return CommittedInput(vector, delta, commitment, opening, stake, linf)


def prove_input(
    params: RoundParams, sender: int, clip: float, committed: CommittedInput
) -> NormClaim:
    """The claim for ``committed``: its commitment, its stake, and a proof that its delta's
    L2 norm is within the job's ``clip`` times its weight (on the grid), bound to the round
    and the trainer the roster names for ``sender``.  Raises ``zk.NormBoundExceeded`` if
    it is not (nothing proven)."""
    ctx = context(params, params.roster[sender])
    stake = committed.stake
    bound = weighted_clip(clip, stake.records, stake.weight_base)
    proof = zk.prove_norm(ctx, norm_params(params, bound), committed.delta, committed.opening)
    linf = b""
    if committed.linf:
        box = weighted_clip(committed.linf, stake.records, stake.weight_base)
        linf = zk.prove_linf(ctx, linf_params(params, box), committed.delta, committed.opening)
    return NormClaim(sender, stake.dataset, stake.records, committed.commitment, proof, linf)


def verify_claim(params: RoundParams, rules: ClaimRules, claim: NormClaim) -> None:
    """Check one claim for this round.  Returns nothing; raises ``zk.MalformedNormProof``
    (a truncated or extended proof, a commitment that is not a point),
    ``zk.InvalidNormProof`` (a proof for another round, job, attempt, trainer or vector,
    or of a false statement), ``UnbackedWeight`` for a weight its data set does not back,
    ``ProtocolViolation`` for a sender not on the roster."""
    if claim.sender not in params.roster:
        raise ProtocolViolation(f"client {claim.sender} is not on the roster")
    why = _unbacked(params, rules, claim)
    if why:
        raise UnbackedWeight(why)
    ctx = context(params, params.roster[claim.sender])
    zk.verify_norm(ctx, _statement(params, rules, claim), claim.commitment, claim.proof)
    _verify_linf(params, rules, claim, ctx)


def _verify_linf(
    params: RoundParams, rules: ClaimRules, claim: NormClaim, ctx: zk.NormContext
) -> None:
    """The claim's L∞ proof, as its job asks: ``zk.InvalidNormProof`` if it has none, has
    one the job does not ask for, or one that does not verify."""
    if not rules.linf:
        if claim.linf:
            raise zk.InvalidNormProof("an L-infinity proof in a job that asks for none")
        return
    if not claim.linf:
        raise zk.InvalidNormProof("no L-infinity proof")
    box = weighted_clip(rules.linf, claim.records, rules.weight_base)
    zk.verify_linf(ctx, linf_params(params, box), claim.commitment, claim.linf)


def _statement(params: RoundParams, rules: ClaimRules, claim: NormClaim) -> zk.NormParams:
    return norm_params(params, weighted_clip(rules.clip, claim.records, rules.weight_base))


def _unbacked(params: RoundParams, rules: ClaimRules, claim: NormClaim) -> str | None:
    """Why the data set a claim names does not back its weight, or None if it does."""
    try:
        record = rules.datasets(claim.dataset)
    except UnknownDataset:
        return "the claimed data set does not exist"
    if record.owner.lower() != params.roster[claim.sender].lower():
        return "the claimed data set is not the trainer's"
    if record.revoked:
        return "the claimed data set is revoked"
    if claim.records > record.record_count:
        return "the claimed weight is more than its data set holds"
    return None


def refused_claims(
    params: RoundParams, rules: ClaimRules, claims: Mapping[int, NormClaim | None]
) -> dict[int, str]:
    """Client id -> why, for every claim that does not verify (the proofs checked together
    in one batch): a missing claim, one sent under another client's id, a weight its data
    set does not back, a malformed or false proof.  Empty if all verify."""
    refused: dict[int, str] = {}
    batch: list[tuple[int, NormClaim]] = []
    for i, claim in sorted(claims.items()):
        if claim is None:
            refused[i] = "no norm claim"
        elif claim.sender != i or i not in params.roster:
            refused[i] = "a norm claim under another client's id"
        elif why := _unbacked(params, rules, claim):
            refused[i] = why
        else:
            batch.append((i, claim))
    if batch:
        statements = [_statement(params, rules, c) for _, c in batch]
        items = [(context(params, params.roster[i]), c.commitment, c.proof) for i, c in batch]
        for k in zk.invalid_norm_proofs(statements[0], items, statements=statements):
            refused[batch[k][0]] = "the norm-bound proof does not verify"
        for (i, claim), (ctx, _, _) in zip(batch, items, strict=True):
            if i not in refused and (rules.linf or claim.linf):
                try:
                    _verify_linf(params, rules, claim, ctx)
                except zk.InvalidNormProof:  # MalformedNormProof included
                    refused[i] = "the L-infinity proof does not verify"
    return refused


def check_sum(
    params: RoundParams, weight_base: int, total: NDArray[np.uint32], claims: Sequence[NormClaim]
) -> None:
    """The round's summed words (``total``: at least ``vector_len`` little-endian uint32,
    the transcript's) are the survivors' ``claims``: the weight word is the sum of their
    weights on the grid (``grid_weight``), and the delta part (read as signed 32-bit) and
    the blinding from the summed words open the sum of their commitments.  Raises
    ``zk.AggregateMismatch`` (``zk.MalformedNormProof`` for a commitment that is not a
    point)."""
    words = np.asarray(total, dtype=np.uint32)
    dim = delta_len(params)
    if words.shape[0] < params.vector_len:
        raise zk.AggregateMismatch("the sum is shorter than the round's vector")
    weights = sum(grid_weight(params, c.records, weight_base) for c in claims)
    if int(words[dim]) != weights % (1 << 32):
        raise zk.AggregateMismatch("the summed weight is not the sum of the claims' weights")
    x = words[:dim].view(np.int32).astype(np.int64)
    blinding = zk.blinding_from_limb_sums(
        [int(w) for w in words[params.vector_len - NORM_WORDS : params.vector_len]]
    )
    zk.verify_aggregate([c.commitment for c in claims], x, blinding)


__all__ = [
    "CLAIM_FORMAT",
    "ClaimRules",
    "CommittedInput",
    "DataStake",
    "DatasetRecord",
    "NoDataset",
    "NormClaim",
    "UnbackedWeight",
    "check_sum",
    "commit_input",
    "context",
    "dataset_lookup",
    "delta_len",
    "grid_weight",
    "headroom",
    "linf_params",
    "norm_params",
    "own_stake",
    "prove_input",
    "refused_claims",
    "verify_claim",
    "warm",
    "weighted_clip",
]
