"""Small numpy models with one interface: parameters in, local training, parameters out.

Parameters are a name → float32 array mapping; they travel as safetensors bytes only
(``to_safetensors`` / ``from_safetensors``), never pickled.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numpy.typing import NDArray
from safetensors import SafetensorError
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from chainml.training.errors import TrainingError

Params = dict[str, NDArray[np.float32]]


def to_safetensors(params: Mapping[str, NDArray[np.float32]]) -> bytes:
    """Serialise parameters as safetensors (data only: loading runs no code)."""
    return bytes(st_save({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in params.items()}))


def from_safetensors(blob: bytes) -> Params:
    """Parse safetensors bytes; raises ``TrainingError`` on anything malformed."""
    try:
        loaded = st_load(blob)
    except (SafetensorError, ValueError, OSError) as exc:
        raise TrainingError("not a valid safetensors model") from exc
    return {k: np.asarray(v, dtype=np.float32) for k, v in loaded.items()}


def flatten(params: Mapping[str, NDArray[np.float32]]) -> NDArray[np.float32]:
    """All parameters as one vector, in sorted name order."""
    return np.concatenate([params[k].ravel() for k in sorted(params)]).astype(np.float32)


def unflatten(vector: NDArray[np.float32], like: Mapping[str, NDArray[np.float32]]) -> Params:
    """The inverse of ``flatten`` for parameters shaped like ``like``."""
    expected = sum(v.size for v in like.values())
    if expected != vector.size:
        raise TrainingError(f"vector has {vector.size} values, the model {expected}")
    out: Params = {}
    offset = 0
    for k in sorted(like):
        size = like[k].size
        out[k] = vector[offset : offset + size].reshape(like[k].shape).astype(np.float32)
        offset += size
    return out


class SoftmaxRegression:
    """Multinomial logistic regression trained with mini-batch SGD."""

    def __init__(self, n_features: int, n_classes: int, *, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.params: Params = {
            "w": (rng.standard_normal((n_features, n_classes)) * 0.01).astype(np.float32),
            "b": np.zeros(n_classes, dtype=np.float32),
        }

    def set_params(self, params: Mapping[str, NDArray[np.float32]]) -> None:
        if {k: v.shape for k, v in params.items()} != {k: v.shape for k, v in self.params.items()}:
            raise TrainingError("parameters do not fit this model")
        self.params = {k: np.array(v, dtype=np.float32) for k, v in params.items()}

    def logits(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(x @ self.params["w"] + self.params["b"], dtype=np.float64)

    def predict(self, x: NDArray[np.float64]) -> NDArray[np.int64]:
        return np.asarray(self.logits(x).argmax(axis=1), dtype=np.int64)

    def accuracy(self, x: NDArray[np.float64], y: NDArray[np.int64]) -> float:
        return float((self.predict(x) == y).mean())

    def fit(
        self,
        x: NDArray[np.float64],
        y: NDArray[np.int64],
        *,
        epochs: int = 1,
        lr: float = 0.5,
        batch: int = 32,
        l2: float = 1e-4,
        seed: int = 0,
    ) -> None:
        """Local training from the current parameters."""
        rng = np.random.default_rng(seed)
        n_classes = self.params["b"].shape[0]
        onehot = np.eye(n_classes)[y]
        w = self.params["w"].astype(np.float64)
        b = self.params["b"].astype(np.float64)
        for _ in range(epochs):
            order = rng.permutation(len(x))
            for start in range(0, len(x), batch):
                idx = order[start : start + batch]
                z = x[idx] @ w + b
                z -= z.max(axis=1, keepdims=True)
                p = np.exp(z)
                p /= p.sum(axis=1, keepdims=True)
                g = (p - onehot[idx]) / len(idx)
                w -= lr * (x[idx].T @ g + l2 * w)
                b -= lr * g.sum(axis=0)
        self.params = {"w": w.astype(np.float32), "b": b.astype(np.float32)}
