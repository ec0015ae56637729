"""One round engine for the simulator and the node.

``RoundEngine`` (``driver``) runs one round of an aggregation ``Strategy`` (``base``) over
a ``Transport``, timed by an injected clock.  The strategies, one file each: ``fedavg``
(plaintext sum), ``secagg`` (FedAvg under SecAgg+, norm-bound proofs), ``robust`` (Krum,
median, trimmed mean, FoolsGold), ``dp`` (central or distributed Gaussian noise around a
sum).  ``memory`` holds the in-memory transport and the hand-moved clock the simulator
(``chainml.training.federated``) and the tests use; the node's transport seals every
message in an envelope (``chainml.node.rounds``).  Every trainer sends
``[clip(delta) · weight, weight]``, so the sum's last coordinate is the survivors' total
weight and the step is the weighted mean, in the simulator as in the node.
"""

from __future__ import annotations

from chainml.training import normproofs
from chainml.training.engine.base import (
    Aggregate,
    Aggregation,
    Arrival,
    Clock,
    Strategy,
    TrainerSession,
    Transport,
    identify,
)
from chainml.training.engine.dp import Private, dp_entry
from chainml.training.engine.driver import RoundEngine
from chainml.training.engine.fedavg import FedAvg
from chainml.training.engine.memory import ManualClock, MemoryTransport
from chainml.training.engine.plain import PlainUpdate, within_bounds
from chainml.training.engine.robust import Robust, SybilWatch
from chainml.training.engine.secagg import SecAggFedAvg, record_params, secure_params
from chainml.training.job import JobConfig


def strategy_for(
    config: JobConfig,
    *,
    watch: SybilWatch | None = None,
    rules: normproofs.ClaimRules | None = None,
) -> Strategy:
    """A job's strategy, as its configuration names it: SecAgg+ (with norm proofs and DP
    as it asks; ``rules``: what the norm claims are checked against) or a robust rule over
    signed plaintext updates (``watch``: the job's FoolsGold history)."""
    if config.aggregation != "secagg":
        return Robust(config.aggregation, watch=watch)
    strategy: Strategy = SecAggFedAvg(norm_proofs=config.norm_proofs, rules=rules)
    if config.dp is not None:
        strategy = Private(strategy, config.dp, config.noise_multiplier)
    return strategy


__all__ = [
    "Aggregate",
    "Aggregation",
    "Arrival",
    "Clock",
    "FedAvg",
    "ManualClock",
    "MemoryTransport",
    "PlainUpdate",
    "Private",
    "Robust",
    "RoundEngine",
    "SecAggFedAvg",
    "Strategy",
    "SybilWatch",
    "TrainerSession",
    "Transport",
    "dp_entry",
    "identify",
    "record_params",
    "secure_params",
    "strategy_for",
    "within_bounds",
]
