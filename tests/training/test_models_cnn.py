"""The CNN model kind and the Fashion-MNIST loader: gradients match finite differences,
training lowers the loss, bad shapes and bad files get typed errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from chainml.training.data import load_fashion_mnist
from chainml.training.errors import TrainingError
from chainml.training.models import CNN, RELU_POLY, classifier_from_safetensors, to_safetensors


def _loss(model: CNN, x: np.ndarray, y: np.ndarray) -> float:
    z = model.logits(x)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return float(-logp[np.arange(len(y)), y].mean())


def _cnn(activation: str) -> CNN:
    return CNN((2, 9, 9), 3, channels=2, kernel=3, stride=2, pool=2, activation=activation)


@pytest.mark.parametrize("activation", ["square", "relu_poly"])
def test_one_sgd_step_follows_the_gradient(activation):
    """One plain SGD step (no momentum, no l2, one batch) changes each parameter by -lr
    times the finite-difference gradient of the mean cross-entropy."""
    rng = np.random.default_rng(0)
    model = _cnn(activation)
    model.params = {
        k: (v + rng.normal(0, 0.1, v.shape)).astype(np.float32) for k, v in model.params.items()
    }
    x, y = rng.uniform(0, 1, (8, 162)), rng.integers(0, 3, 8)
    before = {k: v.astype(np.float64) for k, v in model.params.items()}
    lr = 1e-3
    model.fit(x, y, epochs=1, lr=lr, batch=8, l2=0.0, momentum=0.0)
    for name in before:
        flat = before[name].ravel()
        for i in rng.choice(len(flat), size=min(3, len(flat)), replace=False):
            eps = 1e-3
            moved = []
            for sign in (1, -1):
                other = _cnn(activation)
                other.params = {k: v.astype(np.float32) for k, v in before.items()}
                other.params[name].ravel()[i] += sign * eps
                moved.append(_loss(other, x, y))
            numeric = (moved[0] - moved[1]) / (2 * eps)
            step = float(model.params[name].ravel()[i]) - flat[i]
            assert step == pytest.approx(-lr * numeric, rel=0.05, abs=2e-6)


def test_the_relu_fit_is_the_least_squares_one():
    grid = np.linspace(-4, 4, 4001)
    fitted = np.polynomial.polynomial.polyval(grid, RELU_POLY)
    for other in ([0.4, 0.5, 0.07], [0.375, 0.45, 0.0703], [0.375, 0.5, 0.08]):
        assert np.mean((fitted - np.maximum(grid, 0)) ** 2) < np.mean(
            (np.polynomial.polynomial.polyval(grid, other) - np.maximum(grid, 0)) ** 2
        )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"activation": "relu"},
        {"kernel": 29},
        {"pool": 9},
        {"channels": 0},
    ],
)
def test_bad_cnn_shapes_are_typed_errors(kwargs):
    with pytest.raises(TrainingError):
        CNN(**kwargs)


def test_a_cnn_blob_with_bad_metadata_is_a_typed_error():
    model = CNN(seed=1)
    meta = {**model.architecture(), "stride": "three"}
    with pytest.raises(TrainingError):
        classifier_from_safetensors(to_safetensors(model.params, meta))
    other = CNN(kernel=5, seed=1)  # the kernel's size comes from the weights' shape
    rebuilt, _, _ = classifier_from_safetensors(to_safetensors(other.params, other.architecture()))
    assert isinstance(rebuilt, CNN) and rebuilt.kernel == 5


def test_fashion_mnist_loads_from_the_debian_package():
    data = load_fashion_mnist()
    assert data.x_train.shape == (60000, 784) and data.x_test.shape == (10000, 784)
    assert data.x_train.min() == 0.0 and data.x_train.max() == 1.0
    assert np.bincount(data.y_test).tolist() == [1000] * 10


def _idx(path: Path, raw: bytes) -> None:
    path.write_bytes(gzip.compress(raw))


def test_missing_or_malformed_fashion_files_are_typed_errors(tmp_path):
    with pytest.raises(TrainingError, match="dataset-fashion-mnist"):
        load_fashion_mnist(tmp_path)
    header = bytes([0, 0, 8, 3]) + (2).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    for split in ("train", "t10k"):
        _idx(tmp_path / f"{split}-images-idx3-ubyte.gz", header + bytes(2 * 784 - 1))
        _idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", bytes([0, 0, 8, 1, 0, 0, 0, 2, 1, 2]))
    with pytest.raises(TrainingError, match="does not match its header"):
        load_fashion_mnist(tmp_path)
    for split in ("train", "t10k"):
        _idx(tmp_path / f"{split}-images-idx3-ubyte.gz", header + bytes(2 * 784))
    data = load_fashion_mnist(tmp_path)
    assert data.x_train.shape == (2, 784) and data.y_train.tolist() == [1, 2]
    _idx(tmp_path / "t10k-labels-idx1-ubyte.gz", bytes([0, 0, 8, 3, 0, 0, 0, 2, 1, 2]))
    with pytest.raises(TrainingError, match="not an IDX file"):
        load_fashion_mnist(tmp_path)
