"""Federated averaging (McMahan et al. 2017) in plaintext: the baseline secure rounds beat."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from chainml.training.errors import TrainingError
from chainml.training.models import Params


def fedavg(
    updates: Sequence[Mapping[str, NDArray[np.float32]]], weights: Sequence[float]
) -> Params:
    """The weighted mean of parameter sets (weights are typically sample counts)."""
    if not updates or len(updates) != len(weights):
        raise TrainingError("need one weight per update and at least one update")
    total = float(sum(weights))
    if total <= 0 or min(weights) < 0:
        raise TrainingError("weights must be non-negative with a positive sum")
    names = set(updates[0])
    if any(set(u) != names for u in updates):
        raise TrainingError("updates have different parameter names")
    scale = np.asarray(weights, dtype=np.float64) / total
    return {
        k: np.tensordot(scale, np.stack([u[k] for u in updates]), axes=1).astype(np.float32)
        for k in sorted(names)
    }
