"""FedAvg under SecAgg+: each trainer masks ``[delta · weight, weight]`` and the aggregator
learns only the sum, whose last coordinate is the survivors' total weight; the step is
``sum(delta · weight) / sum(weight)``.  The public record holds the round's transcript,
every masked input and the round's parameters (docs/protocol/secagg.md §11.2).

With ``norm_proofs`` (docs/protocol/zk-norm.md §12) each trainer also commits to its
fixed-point delta, appends the commitment's blinding as ``NORM_WORDS`` words after the
weight, and sends a ``NormClaim`` proving the delta's L2 norm within the job's clip just
before its masked input.  The aggregator holds the masked inputs back until the masked
stage closes, checks the claims in one batch and counts only the inputs whose claims
verify (the others are dropouts, their claims kept in the record as evidence); after
unmasking, the sum must open the sum of the survivors' commitments
(``zk.AggregateMismatch`` otherwise).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chainml.crypto import Identity, zk
from chainml.training import normproofs
from chainml.training.engine.base import Aggregate, Aggregation, Outgoing, Put, Strategy
from chainml.training.job import NORM_WORDS
from chainml.training.normproofs import NormClaim
from chainml.training.secagg import (
    MaskedInput,
    PairKeys,
    ProtocolViolation,
    RoundParams,
    SecAggClient,
    SecAggServer,
    Stage,
    TooFewSurvivors,
)

log = logging.getLogger("chainml.training.engine")

STAGES = (Stage.KEYS, Stage.SHARES, Stage.MASKED, Stage.CONSISTENCY, Stage.UNMASK)

# the record's parameters an audit compares with those it derives, all but the attempt (which
# it derives them from; docs/protocol/secagg.md §11.2, §12 step 5)
COMPARED_PARAMS = (
    "degree",
    "threshold",
    "min_partners",
    "clip",
    "graph_seed",
    "vector_len",
    "verifiable",
)


def record_params(params: RoundParams, attempt: int) -> dict[str, Any]:
    """A secure round's ``params`` in its record (docs/protocol/secagg.md §11.2)."""
    return {
        "attempt": attempt,
        "degree": params.degree,
        "threshold": params.threshold,
        "min_partners": params.min_partners,
        "clip": params.clip,
        "graph_seed": params.graph_seed.hex(),
        "vector_len": params.vector_len,
        "verifiable": params.verifiable,
    }


def secure_params(
    derive: Callable[[float], RoundParams], base: float, *, norm_proofs: bool, dim: int
) -> RoundParams:
    """The round's parameters at the least secure range that holds what trainers send:
    ``derive(base)``, and with norm proofs the room their grid rounding and blinding words
    take (``normproofs.headroom``) at the fraction bits that range itself gives."""
    params = derive(base)
    if norm_proofs:
        for _ in range(16):  # fewer fraction bits, more room: a step or two, then fixed
            need = base + normproofs.headroom(params.frac_bits, dim)
            if params.clip >= need:
                break
            params = derive(need)
    return params


class SecAggTrainer:
    """A trainer's session: its ``SecAggClient``, and with norm proofs its claim sent
    just before its masked input (``claim``: made when first needed)."""

    def __init__(self, client: SecAggClient, claim: Callable[[], NormClaim] | None = None):
        self.client, self.claim = client, claim

    def open(self) -> list[Any]:
        return [self.client.advertise()]

    def handle(self, message: Any) -> list[Any]:
        reply = self.client.handle(message)
        if isinstance(reply, MaskedInput) and self.claim is not None:
            return [self.claim(), reply]
        return [reply]


class SecAggFedAvg(Strategy):
    name = "secagg"

    def __init__(
        self, *, norm_proofs: bool = False, rules: normproofs.ClaimRules | None = None
    ) -> None:
        """``rules``: what the aggregator checks each norm claim against (the job's clip
        and weight base, the Datasets contract); required to aggregate with norm proofs."""
        self.norm_proofs, self.rules = norm_proofs, rules

    def extra_len(self) -> int:
        return NORM_WORDS if self.norm_proofs else 0

    def trainer(
        self,
        params: RoundParams,
        slot: int,
        identity: Identity,
        vector: NDArray[np.float64],
        *,
        pairs: PairKeys | None = None,
        rng: np.random.Generator | None = None,
        clip: float | None = None,
        stake: normproofs.DataStake | None = None,
    ) -> SecAggTrainer:
        """With norm proofs, ``clip`` is the job's bound and ``stake`` what backs the
        trainer's weight (both required)."""
        claim = None
        if self.norm_proofs:
            if clip is None or stake is None:
                raise ValueError("a norm-proof trainer needs the job's clip and its stake")
            committed = normproofs.commit_input(params, vector, stake, rng)
            vector = committed.vector
            bound = clip

            def claim() -> NormClaim:
                return normproofs.prove_input(params, slot, bound, committed)

        client = SecAggClient(params, slot, identity, vector, pairs=pairs, rng=rng)
        return SecAggTrainer(client, claim)

    def aggregation(self, params: RoundParams, *, clip: float, n_trainers: int) -> SecAggRound:
        if self.norm_proofs and self.rules is None:
            raise ValueError("a norm-proof round needs the claims' rules")
        return SecAggRound(params, clip=clip, rules=self.rules if self.norm_proofs else None)


class SecAggRound(Aggregation):
    def __init__(
        self, params: RoundParams, *, clip: float, rules: normproofs.ClaimRules | None
    ) -> None:
        """``rules``: a norm-proof round's claim rules; None for a round without proofs."""
        self.params, self.clip, self.rules = params, clip, rules
        self.norm_proofs = rules is not None
        self.server = SecAggServer(params)
        self.stage = Stage.KEYS
        self.completed: set[int] = set()
        self._held: dict[int, MaskedInput] = {}  # norm proofs: masked inputs held back
        self._claims: dict[int, NormClaim] = {}
        self.claims: dict[int, NormClaim] = {}  # the counted inputs' claims
        self.refused: dict[int, tuple[str, NormClaim | None]] = {}

    @property
    def length(self) -> int:
        """The delta and the weight: what the sum's step and weight are read from."""
        return self.params.vector_len - (NORM_WORDS if self.norm_proofs else 0)

    def accept(self, client: int, message: Any) -> None:
        if self.norm_proofs and self.stage == Stage.MASKED:
            if isinstance(message, NormClaim):
                self._claims.setdefault(client, message)  # the first one counts
            elif isinstance(message, MaskedInput):
                self._held.setdefault(client, message)
            else:
                raise ProtocolViolation(f"{type(message).__name__} during the masked stage")
            if client in self._held and client in self._claims:
                self.completed.add(client)
            return
        if isinstance(message, NormClaim):
            raise ProtocolViolation(f"a norm claim during stage {self.stage}")
        self.server.receive(message)
        self.completed.add(client)

    def close(self) -> list[Outgoing] | None:
        if self.norm_proofs and self.stage == Stage.MASKED:
            self._settle_claims()
        if self.stage == Stage.UNMASK:
            return None
        outgoing = self.server.advance()
        self.stage = STAGES[STAGES.index(self.stage) + 1]
        self.completed = set()
        return [(m.recipient, m) for m in outgoing]

    def _settle_claims(self) -> None:
        """Every held input's claim checked in one batch; only the inputs whose claims
        verify reach the server (counted)."""
        assert self.rules is not None
        bad = normproofs.refused_claims(
            self.params, self.rules, {i: self._claims.get(i) for i in self._held}
        )
        for i in sorted(self._held):
            if i in bad:
                self.refused[i] = (bad[i], self._claims.get(i))
                continue
            try:
                self.server.receive(self._held[i])
            except ProtocolViolation as exc:
                log.warning("refused: %s", exc)
                continue
            self.claims[i] = self._claims[i]

    def finish(self) -> Aggregate:
        result = self.server.finish()
        length = self.length
        total = np.asarray(result.total[: length - 1], dtype=np.float64)
        weight = float(result.total[length - 1])
        if weight <= 0:
            raise TooFewSurvivors("the survivors' total weight is not positive")
        if self.norm_proofs:  # the sum is the sum of the proven vectors, or nothing
            assert self.rules is not None
            try:
                claims = [self.claims[i] for i in result.survivors]
            except KeyError:
                raise zk.AggregateMismatch("a survivor has no verified norm claim") from None
            normproofs.check_sum(
                self.params,
                self.rules.weight_base,
                np.frombuffer(result.transcript.total, dtype="<u4"),
                claims,
            )
        params, server, counted, refused = self.params, self.server, self.claims, self.refused

        def record(put: Put) -> dict[str, Any]:
            fields: dict[str, Any] = {
                "transcript": put(result.transcript.encode()),
                "inputs": {
                    str(i): put(v.astype("<u4").tobytes()) for i, v in server.inputs.items()
                },
                "params": record_params(params, params.attempt),
            }
            if self.norm_proofs:  # every counted claim, and the refused ones as evidence
                fields["norm"] = {
                    "claims": {str(i): put(c.encode()) for i, c in sorted(counted.items())},
                    "refused": {
                        str(i): {"reason": why, "claim": put(c.encode()) if c is not None else ""}
                        for i, (why, c) in sorted(refused.items())
                    },
                }
            return fields

        return Aggregate(
            total,
            weight,
            result.survivors,
            result.transcript.leaves(params),
            record,
            refused={i: why for i, (why, _) in refused.items()},
        )
