"""What a training job asks of its trainers, and one trainer's step of one round.

A ``JobConfig`` is canonical JSON; its keccak-256 is the ``config_hash`` the job records
on chain, so a trainer can check that the aggregator sends the configuration the requester
paid for.  ``local_update`` is a trainer's whole contribution to a round: train from the
global parameters on its own data, take the change, clip it to the job's L2 bound, scale
it by the trainer's weight, and append that weight, so that the secure sum carries the
total weight as its last coordinate (the aggregator learns the sum of the weights and
nothing about any one of them).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import NDArray

from chainml.crypto.hashing import keccak256
from chainml.training import robust
from chainml.training.errors import TrainingError
from chainml.training.models import MLP, Params, flatten
from chainml.training.secagg import clip_l2


@dataclass(frozen=True)
class JobConfig:
    n_features: int
    n_classes: int
    hidden: tuple[int, ...] = (64,)
    activation: str = "relu"
    epochs: int = 5
    lr: float = 0.1
    seed: int = 0
    weight_base: int = 1000  # records per party that count as weight 1
    model: str = "mlp"
    verifiable: bool = True  # rounds carry lattice commitments: anyone checks the sum
    aggregation: str = "secagg"  # or a robust rule over plaintext updates: krum, median, ...

    def encode(self) -> bytes:
        doc = asdict(self)
        doc["hidden"] = list(self.hidden)
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> JobConfig:
        try:
            doc = json.loads(raw)
            doc["hidden"] = tuple(int(h) for h in doc["hidden"])
            config = cls(**doc)
        except (ValueError, TypeError, KeyError) as exc:
            raise TrainingError("not a job configuration") from exc
        if config.aggregation not in ("secagg", *robust.RULES):
            raise TrainingError(f"aggregation is secagg or one of {', '.join(robust.RULES)}")
        if config.model != "mlp" or config.encode() != raw:
            raise TrainingError("a job configuration is canonical JSON of an MLP")
        return config

    def architecture(self) -> dict[str, str]:
        """What a server needs, beside the weights, to rebuild the model (safetensors
        metadata)."""
        return {"model": self.model, "activation": self.activation}

    @property
    def config_hash(self) -> bytes:
        return keccak256(self.encode())

    def initial_model(self) -> MLP:
        return MLP(
            self.n_features, self.n_classes, self.hidden, activation=self.activation, seed=self.seed
        )

    def vector_len(self) -> int:
        return int(sum(v.size for v in self.initial_model().params.values())) + 1

    def local_update(
        self,
        global_params: Params,
        x: NDArray[np.float64],
        y: NDArray[np.int64],
        *,
        round_no: int,
        clip: float,
    ) -> NDArray[np.float64]:
        model = self.initial_model()
        model.set_params(global_params)
        start = flatten(model.params).astype(np.float64)
        model.fit(x, y, epochs=self.epochs, lr=self.lr, seed=self.seed * 1000 + round_no)
        weight = min(1.0, len(y) / self.weight_base)
        delta = clip_l2(flatten(model.params).astype(np.float64) - start, clip)
        return np.append(delta * weight, weight)
