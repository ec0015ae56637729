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


def _fit_relu_poly() -> tuple[float, float, float]:
    """The least-squares degree-2 polynomial of ReLU on [-4, 4] (c0, c1, c2)."""
    grid = np.linspace(-4.0, 4.0, 4001)
    c0, c1, c2 = np.polynomial.polynomial.polyfit(grid, np.maximum(grid, 0.0), 2)
    return float(c0), float(c1), float(c2)


RELU_POLY = _fit_relu_poly()  # about 0.375 + 0.5 x + 0.0703 x²
CNN_ACTIVATIONS = ("square", "relu_poly")


class CNN(_NumpyModel):
    """A small convolutional network that CKKS inference can evaluate exactly:
    convolution (``channels`` filters of ``kernel``², stride ``stride``, no padding) →
    activation → average pooling (``pool``², stride ``pool``) → dense → logits.

    ``activation`` is ``"square"`` (x²) or ``"relu_poly"`` (``RELU_POLY``, the
    least-squares degree-2 fit of ReLU on [-4, 4]), trained with from the start.  Inputs
    are rows of C·H·W values (row-major, channel first, like PyTorch's flatten).
    Parameters: ``conv_w`` (channels, C, kernel, kernel), ``conv_b``, ``dense_w``
    (channels · pooled H · pooled W, classes), ``dense_b``.  ``description()`` is the
    layer description ``chainml.inference.he.compile_model`` compiles."""

    def __init__(
        self,
        input_shape: tuple[int, int, int] = (1, 28, 28),
        n_classes: int = 10,
        *,
        channels: int = 4,
        kernel: int = 7,
        stride: int = 3,
        pool: int = 2,
        activation: str = "square",
        seed: int = 0,
    ) -> None:
        if activation not in CNN_ACTIVATIONS:
            raise TrainingError(f"a CNN's activation is one of {CNN_ACTIVATIONS}")
        c, h, w = (int(d) for d in input_shape)
        if min(c, h, w, n_classes, channels, kernel, stride, pool) < 1 or kernel > min(h, w):
            raise TrainingError("a CNN needs positive sizes and a kernel within the image")
        self.input_shape = (c, h, w)
        self.n_classes, self.channels, self.kernel = n_classes, channels, kernel
        self.stride, self.pool, self.activation = stride, pool, activation
        self.conv_out = ((h - kernel) // stride + 1, (w - kernel) // stride + 1)
        self.pooled = (self.conv_out[0] // pool, self.conv_out[1] // pool)
        if min(self.pooled) < 1:
            raise TrainingError("the pooling window is larger than the convolution's output")
        rng = np.random.default_rng(seed)
        fan_in = c * kernel * kernel
        units = channels * self.pooled[0] * self.pooled[1]
        self.params = {
            "conv_w": (rng.standard_normal((channels, c, kernel, kernel)) / np.sqrt(fan_in)).astype(
                np.float32
            ),
            "conv_b": np.zeros(channels, dtype=np.float32),
            "dense_w": (rng.standard_normal((units, n_classes)) / np.sqrt(units)).astype(
                np.float32
            ),
            "dense_b": np.zeros(n_classes, dtype=np.float32),
        }

    def architecture(self) -> dict[str, str]:
        """What rebuilds it beside the weights (safetensors metadata, strings)."""
        return {
            "model": "cnn",
            "activation": self.activation,
            "input_shape": ",".join(str(d) for d in self.input_shape),
            "kernel": str(self.kernel),
            "stride": str(self.stride),
            "pool": str(self.pool),
        }

    def description(self) -> dict[str, object]:
        """The network as layers (``chainml.inference.layers``), in float64."""
        p = {k: v.astype(np.float64) for k, v in self.params.items()}
        act: dict[str, object] = (
            {"type": "square"}
            if self.activation == "square"
            else {"type": "poly", "coeffs": list(RELU_POLY)}
        )
        return {
            "input_shape": list(self.input_shape),
            "layers": [
                {
                    "type": "conv2d",
                    "weight": p["conv_w"],
                    "bias": p["conv_b"],
                    "stride": self.stride,
                },
                act,
                {"type": "avgpool2d", "kernel": self.pool, "stride": self.pool},
                {"type": "flatten"},
                {"type": "dense", "weight": p["dense_w"], "bias": p["dense_b"]},
            ],
        }

    def _act(self, z: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """The activation and its derivative."""
        if self.activation == "square":
            return z * z, 2 * z
        c0, c1, c2 = RELU_POLY
        return c0 + c1 * z + c2 * z * z, c1 + 2 * c2 * z

    def _cols(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """im2col: (batch, out H, out W, C·kernel²)."""
        c, h, w = self.input_shape
        k, s = self.kernel, self.stride
        img = np.asarray(x, dtype=np.float64).reshape(len(x), c, h, w)
        win = np.lib.stride_tricks.sliding_window_view(img, (k, k), axis=(2, 3))
        oh, ow = self.conv_out
        win = win[:, :, : oh * s : s, : ow * s : s]
        return win.transpose(0, 2, 3, 1, 4, 5).reshape(len(x), oh, ow, c * k * k)

    def _forward(
        self, x: NDArray[np.float64], p: Mapping[str, NDArray[np.float64]]
    ) -> tuple[NDArray[np.float64], ...]:
        cols = self._cols(x)
        z = cols @ p["conv_w"].reshape(self.channels, -1).T + p["conv_b"]  # (B, oh, ow, ch)
        a, da = self._act(z)
        (ph, pw), q = self.pooled, self.pool
        pooled = a[:, : ph * q, : pw * q].reshape(len(x), ph, q, pw, q, self.channels)
        flat = pooled.mean(axis=(2, 4)).transpose(0, 3, 1, 2).reshape(len(x), -1)
        logits = flat @ p["dense_w"] + p["dense_b"]
        return cols, da, flat, logits

    def logits(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        p = {k: v.astype(np.float64) for k, v in self.params.items()}
        x = np.asarray(x, dtype=np.float64)
        out = [self._forward(x[i : i + 1024], p)[3] for i in range(0, len(x), 1024)]
        return np.concatenate(out) if out else np.zeros((0, self.n_classes))

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
        """Local training from the current parameters (SGD with momentum on the softmax
        cross-entropy).  ``lr`` defaults to 0.01 with x² (0.03 diverges to NaN on
        Fashion-MNIST's [0, 1] images with a 7×7 kernel) and 0.03 with ``relu_poly``."""
        if lr is None:
            lr = 0.01 if self.activation == "square" else 0.03
        rng = np.random.default_rng(seed)
        p = {k: v.astype(np.float64) for k, v in self.params.items()}
        velocity = {k: np.zeros_like(v) for k, v in p.items()}
        onehot = np.eye(self.n_classes)[y]
        (ph, pw), q, ch = self.pooled, self.pool, self.channels
        oh, ow = self.conv_out
        for _ in range(epochs):
            order = rng.permutation(len(x))
            for start in range(0, len(x), batch):
                idx = order[start : start + batch]
                cols, da, flat, logits = self._forward(x[idx], p)
                z = logits - logits.max(axis=1, keepdims=True)
                prob = np.exp(z)
                prob /= prob.sum(axis=1, keepdims=True)
                delta = (prob - onehot[idx]) / len(idx)
                grads = {"dense_w": flat.T @ delta, "dense_b": delta.sum(axis=0)}
                back = (delta @ p["dense_w"].T).reshape(len(idx), ch, ph, pw).transpose(0, 2, 3, 1)
                up = np.zeros((len(idx), oh, ow, ch))
                up[:, : ph * q, : pw * q] = np.repeat(np.repeat(back, q, axis=1), q, axis=2) / (
                    q * q
                )
                dz = (up * da).reshape(-1, ch)
                grads["conv_w"] = (dz.T @ cols.reshape(len(dz), -1)).reshape(p["conv_w"].shape)
                grads["conv_b"] = dz.sum(axis=0)
                for name, grad in grads.items():
                    if name.endswith("_w"):
                        grad = grad + l2 * p[name]
                    velocity[name] = momentum * velocity[name] - lr * grad
                    p[name] += velocity[name]
        self.params = {k: v.astype(np.float32) for k, v in p.items()}


def classifier_from_safetensors(blob: bytes) -> tuple[Classifier, Params, str | None]:
    """Rebuild a served model: a softmax regression (``w``, ``b``), an MLP (``w0, b0, …``)
    whose activation the metadata names, or a CNN (metadata ``model`` ``"cnn"``, see
    ``CNN.architecture``); returns the model, its parameters and the activation."""
    params = from_safetensors(blob)
    meta = safetensors_metadata(blob)
    activation = meta.get("activation")
    if meta.get("model") == "cnn":
        cnn = _cnn_from_metadata(meta, params)
        cnn.set_params(params)
        return cnn, params, activation
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


def _cnn_from_metadata(meta: Mapping[str, str], params: Params) -> CNN:
    """A CNN shaped by its metadata (``CNN.architecture``) and its weights' shapes."""
    try:
        c, h, w = (int(d) for d in meta["input_shape"].split(","))
        channels, _, kernel, _ = params["conv_w"].shape
        return CNN(
            (c, h, w),
            int(params["dense_b"].shape[0]),
            channels=int(channels),
            kernel=int(kernel),
            stride=int(meta["stride"]),
            pool=int(meta["pool"]),
            activation=meta.get("activation", ""),
        )
    except (KeyError, ValueError, AttributeError) as exc:
        raise TrainingError("a CNN's metadata or weights do not describe a CNN") from exc


def from_safetensors(blob: bytes) -> Params:
    """Parse safetensors bytes; raises ``TrainingError`` on anything malformed."""
    try:
        loaded = st_load(blob)
    except (SafetensorError, ValueError, OSError) as exc:
        raise TrainingError("not a valid safetensors model") from exc
    return {k: np.asarray(v, dtype=np.float32) for k, v in loaded.items()}
