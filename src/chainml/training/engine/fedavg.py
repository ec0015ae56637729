"""FedAvg in plaintext (McMahan et al. 2017): the sum of the trainers' ``[delta · weight,
weight]`` vectors, the step ``sum(delta · weight) / sum(weight)``: exactly what a secure
round computes, without the masks.  The simulator's baseline (``train_federated``'s
``fedavg`` mode; its updates go unsigned)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from chainml.training.engine.plain import PlainRound, PlainStrategy
from chainml.training.secagg import RoundParams


class FedAvg(PlainStrategy):
    name = "fedavg"

    def __init__(self, *, signed: bool = False) -> None:
        self.signed = signed

    def aggregation(self, params: RoundParams, *, clip: float, n_trainers: int) -> FedAvgRound:
        return FedAvgRound(params, clip=clip, signed=self.signed, name=self.name)


class FedAvgRound(PlainRound):
    def combine(
        self, counted: list[int], raw: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], float, dict[int, float]]:
        return raw[:, :-1].sum(axis=0), float(raw[:, -1].sum()), {}
