"""Differential privacy around a summing strategy (``fedavg`` or ``secagg``): Gaussian
noise of standard deviation ``z · C`` (``C`` the job's clip bound) on the delta part of
the sum, never on the weight coordinate (``chainml.training.privacy``).

- ``central``: the aggregator adds it to the unmasked sum (it must be trusted to);
- ``distributed``: each of ``n`` trainers adds its share ``z · C / sqrt(n)`` to its own
  weighted delta before masking, and the secure range leaves room for it
  (``privacy.noise_headroom``); a round with ``s`` survivors carries the multiplier
  ``z · sqrt(s / n)``.

The aggregate carries the multiplier the accountant is charged for the round; the record's
``dp`` entry (``dp_entry``) names it and the job's ε at ``δ`` through this round.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chainml.crypto import Identity
from chainml.training import privacy
from chainml.training.engine.base import Aggregate, Aggregation, Outgoing, Strategy, TrainerSession
from chainml.training.errors import TrainingError
from chainml.training.normproofs import DataStake
from chainml.training.secagg import PairKeys, RoundParams

MODES = ("central", "distributed")


class Private(Strategy):
    def __init__(
        self,
        inner: Strategy,
        mode: str,
        noise_multiplier: float,
        *,
        rng: np.random.Generator | None = None,
    ) -> None:
        """``rng``: the aggregator's noise (central); None: one seeded by the operating
        system each round (``privacy.secure_rng``), as a node's must be."""
        if mode not in MODES:
            raise TrainingError("dp is 'central' or 'distributed'")
        if not noise_multiplier > 0:
            raise TrainingError("the noise multiplier is a positive number")
        self.inner, self.mode, self.z, self.rng = inner, mode, noise_multiplier, rng
        self.name = inner.name

    def bound(self, clip: float, n_trainers: int, length: int) -> float:
        bound = self.inner.bound(clip, n_trainers, length)
        if self.mode == "distributed":
            bound += privacy.noise_headroom(self.z, clip, n_trainers, length - 1)
        return bound

    def extra_len(self) -> int:
        return self.inner.extra_len()

    def contribution(
        self,
        delta: NDArray[np.floating],
        weight: float,
        *,
        clip: float,
        n_trainers: int,
        rng: np.random.Generator | None = None,
    ) -> NDArray[np.float64]:
        """The inner strategy's vector with, for distributed noise, this trainer's share on
        the delta part (from ``rng``, else the operating system's CSPRNG)."""
        vector = self.inner.contribution(delta, weight, clip=clip, n_trainers=n_trainers, rng=rng)
        if self.mode != "distributed":
            return vector
        noise = privacy.distributed_noise(
            len(vector) - 1, clip, self.z, n_trainers, rng or privacy.secure_rng()
        )
        return np.append(vector[:-1] + noise, vector[-1])

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
        stake: DataStake | None = None,
    ) -> TrainerSession:
        return self.inner.trainer(
            params, slot, identity, vector, pairs=pairs, rng=rng, clip=clip, stake=stake
        )

    def aggregation(self, params: RoundParams, *, clip: float, n_trainers: int) -> Aggregation:
        inner = self.inner.aggregation(params, clip=clip, n_trainers=n_trainers)
        return PrivateRound(self, inner, clip, n_trainers)

    def multiplier(self, survivors: int, n_trainers: int) -> float:
        """What the accountant is charged for a round with ``survivors`` counted."""
        if self.mode == "central":
            return self.z
        return privacy.effective_multiplier(self.z, survivors, n_trainers)


class PrivateRound(Aggregation):
    """The inner round, with central noise on its sum and the round's multiplier."""

    def __init__(self, strategy: Private, inner: Aggregation, clip: float, n: int) -> None:
        self.strategy, self.inner, self.clip, self.n = strategy, inner, clip, n
        self._follow()

    def _follow(self) -> None:
        self.stage, self.completed = self.inner.stage, self.inner.completed

    def accept(self, client: int, message: Any) -> None:
        try:
            self.inner.accept(client, message)
        finally:
            self._follow()

    def close(self) -> list[Outgoing] | None:
        outgoing = self.inner.close()
        self._follow()
        return outgoing

    def finish(self) -> Aggregate:
        aggregate = self.inner.finish()
        s = self.strategy
        if s.mode == "central":
            rng = s.rng or privacy.secure_rng()
            aggregate.total = aggregate.total + privacy.central_noise(
                len(aggregate.total), self.clip, s.z, rng
            )
        aggregate.multiplier = s.multiplier(len(aggregate.counted), self.n)
        return aggregate


def dp_entry(
    mode: str, noise_multiplier: float, delta: float, charged: Sequence[float]
) -> dict[str, Any]:
    """A round record's ``dp`` entry: ``charged`` the multipliers of the job's rounds so far,
    this one last; the job's ε at ``delta`` through them (RDP accountant)."""
    accountant = privacy.RdpAccountant()
    for z in charged:
        accountant.step(z)
    return {
        "mode": mode,
        "noise_multiplier": noise_multiplier,
        "multiplier": charged[-1],
        "delta": delta,
        "rounds": len(charged),
        "epsilon": accountant.epsilon(delta),
    }
