"""Robust aggregation over plaintext updates (Krum, coordinate median, trimmed mean) for
jobs that send updates to a committee, with FoolsGold watching for Sybils.

Each trainer's step is its update divided by its weight; FoolsGold scores each trainer by
its steps summed over the job's rounds so far (a retried round replaces its earlier
attempt's), and the trainers it flags are left out before the rule votes (alike
identities do not vote twice) when at least three remain.  The aggregate's ``flagged``
names them with their FoolsGold weights (the node raises an alert for each).  The rule
tolerates ``f`` poisoners (``chainml.training.robust.aggregate``'s default when None)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from chainml.training import robust
from chainml.training.engine.plain import PlainRound, PlainStrategy
from chainml.training.errors import TrainingError
from chainml.training.secagg import RoundParams


class SybilWatch:
    """A job's FoolsGold history: each trainer's step in each round."""

    def __init__(self) -> None:
        self.steps: dict[int, dict[int, NDArray[np.float64]]] = {}

    def observe(
        self, round_no: int, counted: list[int], steps: NDArray[np.float64]
    ) -> dict[int, float]:
        """Add a round's steps; the trainers FoolsGold flags, with their weights."""
        for i, d in zip(counted, steps, strict=True):
            self.steps.setdefault(i, {})[round_no] = d
        ids = sorted(self.steps)
        if len(ids) < 3:
            return {}
        scores = robust.foolsgold_scores(np.stack([sum(self.steps[i].values()) for i in ids]))
        return {ids[k]: float(scores[k]) for k in robust.flag_sybils(scores)}


class Robust(PlainStrategy):
    def __init__(self, rule: str, *, f: int | None = None, watch: SybilWatch | None = None) -> None:
        """``watch``: the job's FoolsGold history (kept across its rounds by the caller);
        None: no Sybil check."""
        if rule not in robust.RULES:
            raise TrainingError(f"the robust rules are {', '.join(robust.RULES)}")
        self.name, self.f, self.watch = rule, f, watch

    def aggregation(self, params: RoundParams, *, clip: float, n_trainers: int) -> RobustRound:
        round_ = RobustRound(params, clip=clip, signed=self.signed, name=self.name)
        round_.f, round_.watch = self.f, self.watch
        return round_


class RobustRound(PlainRound):
    f: int | None = None
    watch: SybilWatch | None = None

    def combine(
        self, counted: list[int], raw: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], float, dict[int, float]]:
        steps = raw[:, :-1] / raw[:, -1:]  # each party's own step, unweighted
        flagged: dict[int, float] = {}
        if self.watch is not None:
            flagged = self.watch.observe(self.params.round, counted, steps)
            keep = [k for k, i in enumerate(counted) if i not in flagged]
            if len(keep) >= 3:  # FoolsGold's verdict first: alike identities do not vote twice
                steps = steps[keep]
        return (
            robust.aggregate(self.name, steps, _tolerable(self.name, self.f, len(steps))),
            1.0,
            flagged,
        )


def _tolerable(rule: str, f: int | None, n: int) -> int | None:
    """``f``, or the most ``rule`` allows among ``n`` updates if fewer remain than ``f``
    needs (FoolsGold may have left some out)."""
    if f is None:
        return None
    if rule == "krum":
        return max(0, min(f, n - 3))
    if rule == "trimmed_mean":
        return min(f, (n - 1) // 2)
    return f
