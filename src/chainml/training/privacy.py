"""Differential privacy for the aggregate: the Gaussian mechanism and a Rényi-DP accountant.

The sum of updates clipped to L2 norm ``C`` changes by at most ``C`` when one trainer is
added or removed, so Gaussian noise of standard deviation ``z * C`` on the sum makes each
round (α, α / (2 z²))-RDP for every order α > 1 (Mironov 2017).  Every trainer takes part
in every round (no subsampling), so rounds compose by adding their RDP, and the total is
turned into (ε, δ)-DP with the conversion of Balle et al. 2020 (Prop. 12 of
"Hypothesis testing interpretations and Rényi DP"), minimised over a grid of orders.

- **central**: the aggregator adds the noise to the sum (it must be trusted to do so);
- **distributed**: each of ``n`` trainers adds noise of variance ``(z C)² / n`` to its own
  update before masking, so the sum carries ``(z C)² · s / n`` when ``s`` of them survive:
  the accountant is charged with the survivors' effective multiplier ``z · sqrt(s / n)``.
"""

from __future__ import annotations

import math
import os

import numpy as np
from numpy.typing import NDArray

from chainml.training.errors import TrainingError

ORDERS = tuple([1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + [128, 256, 512])


def gaussian_rdp(order: float, noise_multiplier: float) -> float:
    return order / (2.0 * noise_multiplier**2)


def rdp_to_epsilon(rdp: dict[float, float], delta: float) -> float:
    """The smallest ε over the orders (Balle et al. 2020's conversion)."""
    if not 0 < delta < 1:
        raise TrainingError("delta is in (0, 1)")
    best = math.inf
    for a, r in rdp.items():
        eps = r + math.log1p(-1.0 / a) - (math.log(delta) + math.log(a)) / (a - 1.0)
        best = min(best, eps)
    return max(best, 0.0)


class RdpAccountant:
    """Adds up the rounds' RDP; ``epsilon(delta)`` at any time."""

    def __init__(self) -> None:
        self.rdp = dict.fromkeys(ORDERS, 0.0)
        self.rounds = 0

    def step(self, noise_multiplier: float) -> None:
        if noise_multiplier <= 0:
            raise TrainingError("the noise multiplier is positive")
        for a in self.rdp:
            self.rdp[a] += gaussian_rdp(a, noise_multiplier)
        self.rounds += 1

    def epsilon(self, delta: float) -> float:
        return math.inf if not self.rounds else rdp_to_epsilon(self.rdp, delta)


def secure_rng() -> np.random.Generator:
    """A generator for noise that must stay secret: seeded with 256 bits from the
    operating system's CSPRNG, never a fixed seed."""
    return np.random.default_rng(int.from_bytes(os.urandom(32), "big"))


def central_noise(
    length: int, clip: float, noise_multiplier: float, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Noise the aggregator adds to the sum."""
    return rng.normal(0.0, noise_multiplier * clip, size=length)


def distributed_noise(
    length: int, clip: float, noise_multiplier: float, n_trainers: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    """One trainer's share of the noise: the shares of all ``n`` add up to central noise."""
    return rng.normal(0.0, noise_multiplier * clip / math.sqrt(n_trainers), size=length)


def noise_headroom(noise_multiplier: float, clip: float, n_trainers: int, length: int) -> float:
    """How far one trainer's share of distributed noise can lengthen its update (L2): a
    Gaussian vector of ``length`` coordinates of standard deviation ``s`` exceeds norm
    ``s (sqrt(length) + t)`` with probability below ``exp(-t² / 2)``; ``t = 10``.  The
    secure-aggregation range of a distributed-DP job grows by this much, so that a noisy
    update is neither clipped (which would bias it) nor overflows the sum."""
    sigma = noise_multiplier * clip / math.sqrt(n_trainers)
    return sigma * (math.sqrt(length) + 10.0)


def effective_multiplier(noise_multiplier: float, survivors: int, n_trainers: int) -> float:
    """With distributed noise and ``survivors`` of ``n_trainers`` counted."""
    return noise_multiplier * math.sqrt(survivors / n_trainers)
