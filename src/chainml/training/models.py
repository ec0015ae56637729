"""Small numpy models with one interface: parameters in, local training, parameters out.

Parameters are a name → float32 array mapping; they travel as safetensors bytes only
(``to_safetensors`` / ``from_safetensors``), never pickled.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Protocol

import numpy as np
from numpy.typing import NDArray
from safetensors import SafetensorError
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from chainml.training.errors import TrainingError

Params = dict[str, NDArray[np.float32]]


class Model(Protocol):
    """What federated training needs of a model: numpy MLP, logistic regression, or a
    PyTorch module through ``chainml.training.torch_adapter``."""

    @property
    def params(self) -> Params: ...
    def set_params(self, params: Mapping[str, NDArray[np.float32]]) -> None: ...
    def fit(
        self,
        x: NDArray[np.float64],
        y: NDArray[np.int64],
        *,
        epochs: int = 1,
        lr: float = 0.1,
        seed: int = 0,
    ) -> None: ...
    def accuracy(self, x: NDArray[np.float64], y: NDArray[np.int64]) -> float: ...


def to_safetensors(
    params: Mapping[str, NDArray[np.float32]], metadata: Mapping[str, str] | None = None
) -> bytes:
    """Serialise parameters as safetensors (data only: loading runs no code); ``metadata``
    (strings) goes in the header, e.g. the architecture a server needs to rebuild it."""
    tensors = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in params.items()}
    return bytes(st_save(tensors, metadata=dict(metadata) if metadata else None))


def safetensors_metadata(blob: bytes) -> dict[str, str]:
    """The ``__metadata__`` of safetensors bytes (its JSON header; nothing else is read)."""
    import json
    import struct

    try:
        (size,) = struct.unpack("<Q", blob[:8])
        header = json.loads(blob[8 : 8 + size]) if 0 < size <= 1 << 20 else None
    except (struct.error, UnicodeDecodeError, ValueError):
        header = None
    if not isinstance(header, dict):
        raise TrainingError("not a valid safetensors header")
    meta = header.get("__metadata__") or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise TrainingError("safetensors metadata must map strings to strings")
    return dict(meta)


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


def check_shapes(
    have: Mapping[str, NDArray[np.float32]], given: Mapping[str, NDArray[np.float32]]
) -> None:
    """Raises ``TrainingError`` unless ``given`` has exactly ``have``'s names and shapes."""
    if {k: tuple(np.shape(v)) for k, v in given.items()} != {
        k: tuple(np.shape(v)) for k, v in have.items()
    }:
        raise TrainingError("parameters do not fit this model")


class Classifier:
    """``predict`` and ``accuracy`` from a model's ``logits``."""

    def logits(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        raise NotImplementedError

    def predict(self, x: NDArray[np.float64]) -> NDArray[np.int64]:
        return np.asarray(self.logits(x).argmax(axis=1), dtype=np.int64)

    def accuracy(self, x: NDArray[np.float64], y: NDArray[np.int64]) -> float:
        return float((self.predict(x) == y).mean())


class _NumpyModel(Classifier):
    params: Params

    def set_params(self, params: Mapping[str, NDArray[np.float32]]) -> None:
        check_shapes(self.params, params)
        self.params = {k: np.array(v, dtype=np.float32) for k, v in params.items()}


class SoftmaxRegression(_NumpyModel):
    """Multinomial logistic regression trained with mini-batch SGD."""

    def __init__(self, n_features: int, n_classes: int, *, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.params: Params = {
            "w": (rng.standard_normal((n_features, n_classes)) * 0.01).astype(np.float32),
            "b": np.zeros(n_classes, dtype=np.float32),
        }

    def logits(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(x @ self.params["w"] + self.params["b"], dtype=np.float64)

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


LogisticRegression = SoftmaxRegression  # multinomial logistic regression: the same model


class MLP(_NumpyModel):
    """A multi-layer perceptron trained with mini-batch SGD with momentum.

    ``activation`` is ``"relu"`` or ``"square"`` (x², the activation CKKS inference can
    evaluate exactly; trained that way from the start so accuracy holds encrypted).
    Parameters are named ``w0, b0, w1, b1, …``.
    """

    def __init__(
        self,
        n_features: int,
        n_classes: int,
        hidden: tuple[int, ...] = (64,),
        *,
        activation: str = "relu",
        seed: int = 0,
    ) -> None:
        if activation not in ("relu", "square"):
            raise TrainingError("activation is 'relu' or 'square'")
        self.activation = activation
        rng = np.random.default_rng(seed)
        sizes = [n_features, *hidden, n_classes]
        self.params = {}
        for i, (a, b) in enumerate(itertools.pairwise(sizes)):
            scale = np.sqrt(2.0 / a) if activation == "relu" else np.sqrt(1.0 / a)
            self.params[f"w{i}"] = (rng.standard_normal((a, b)) * scale).astype(np.float32)
            self.params[f"b{i}"] = np.zeros(b, dtype=np.float32)
        self.layers = len(sizes) - 1

    def _act(self, z: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.maximum(z, 0.0) if self.activation == "relu" else z * z

    def _forward(
        self, x: NDArray[np.float64], p: Mapping[str, NDArray[np.float64]]
    ) -> tuple[list[NDArray[np.float64]], list[NDArray[np.float64]]]:
        inputs, pre = [x], []
        h = x
        for i in range(self.layers):
            z = h @ p[f"w{i}"] + p[f"b{i}"]
            pre.append(z)
            h = self._act(z) if i < self.layers - 1 else z
            inputs.append(h)
        return inputs, pre

    def logits(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        p = {k: v.astype(np.float64) for k, v in self.params.items()}
        return self._forward(np.asarray(x, dtype=np.float64), p)[0][-1]

    def fit(
        self,
        x: NDArray[np.float64],
        y: NDArray[np.int64],
        *,
        epochs: int = 1,
        lr: float | None = None,
        batch: int = 32,
        l2: float = 1e-4,
        momentum: float = 0.9,
        seed: int = 0,
    ) -> None:
        """Local training from the current parameters.

        ``lr`` defaults to 0.1 with ReLU and to ``min(0.05, 1 / n_features)`` with x²,
        divided by 3 for each hidden layer after the first: the gradient of x² grows with
        the hidden pre-activation, which grows with the fan-in, and at 0.1 the 64→32→10
        digits MLP diverges to NaN within 20 epochs on [0, 1] features.  Inputs far
        outside [0, 1] need a smaller rate still."""
        if lr is None:
            fan_in = self.params["w0"].shape[0]
            deeper = 3.0 ** (self.layers - 2)
            lr = 0.1 if self.activation == "relu" else min(0.05, 1.0 / fan_in) / deeper
        rng = np.random.default_rng(seed)
        p = {k: v.astype(np.float64) for k, v in self.params.items()}
        velocity = {k: np.zeros_like(v) for k, v in p.items()}
        onehot = np.eye(p[f"b{self.layers - 1}"].shape[0])[y]
        for _ in range(epochs):
            order = rng.permutation(len(x))
            for start in range(0, len(x), batch):
                idx = order[start : start + batch]
                inputs, pre = self._forward(x[idx], p)
                z = inputs[-1] - inputs[-1].max(axis=1, keepdims=True)
                prob = np.exp(z)
                prob /= prob.sum(axis=1, keepdims=True)
                delta = (prob - onehot[idx]) / len(idx)
                for i in reversed(range(self.layers)):
                    grad_w = inputs[i].T @ delta + l2 * p[f"w{i}"]
                    grad_b = delta.sum(axis=0)
                    if i:
                        back = delta @ p[f"w{i}"].T
                        zi = pre[i - 1]
                        delta = back * (zi > 0) if self.activation == "relu" else back * 2 * zi
                    for name, grad in ((f"w{i}", grad_w), (f"b{i}", grad_b)):
                        velocity[name] = momentum * velocity[name] - lr * grad
                        p[name] += velocity[name]
        self.params = {k: v.astype(np.float32) for k, v in p.items()}


def classifier_from_safetensors(blob: bytes) -> tuple[Classifier, Params, str | None]:
    """Rebuild a served model: a softmax regression (``w``, ``b``) or an MLP (``w0, b0, …``)
    whose activation the metadata names; returns the model, its parameters and the
    activation."""
    params = from_safetensors(blob)
    activation = safetensors_metadata(blob).get("activation")
    if set(params) == {"w", "b"}:
        n_features, n_classes = params["w"].shape
        model: _NumpyModel = SoftmaxRegression(n_features, n_classes)
    else:
        layers = len(params) // 2
        if set(params) != {f"{p}{i}" for p in "wb" for i in range(layers)} or layers < 1:
            raise TrainingError("neither a softmax regression nor an MLP")
        shapes = [params[f"w{i}"].shape for i in range(layers)]
        model = MLP(
            shapes[0][0],
            shapes[-1][1],
            tuple(s[1] for s in shapes[:-1]),
            activation=activation or "relu",
        )
    model.set_params(params)
    return model, params, activation


def from_safetensors(blob: bytes) -> Params:
    """Parse safetensors bytes; raises ``TrainingError`` on anything malformed."""
    try:
        loaded = st_load(blob)
    except (SafetensorError, ValueError, OSError) as exc:
        raise TrainingError("not a valid safetensors model") from exc
    return {k: np.asarray(v, dtype=np.float32) for k, v in loaded.items()}
