"""Data partitioning, the softmax model, safetensors transport and FedAvg."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from chainml.training.data import dirichlet_partition, iid_partition, load
from chainml.training.errors import TrainingError
from chainml.training.fedavg import fedavg
from chainml.training.models import (
    SoftmaxRegression,
    flatten,
    from_safetensors,
    to_safetensors,
    unflatten,
)


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def test_bundled_data_sets_load_and_scale(digits):
    assert digits.x_train.shape[1] == 64 and digits.n_classes == 10
    assert len(digits.x_train) + len(digits.x_test) == 1797
    assert digits.x_train.min() >= 0.0 and digits.x_train.max() <= 1.0
    assert load("wine").n_classes == 3 and load("breast_cancer").n_features == 30
    with pytest.raises(TrainingError):
        load("imagenet")


@pytest.mark.parametrize("alpha", [0.1, 0.5, 100.0])
def test_dirichlet_partition_covers_every_sample_once(digits, alpha):
    parts = dirichlet_partition(digits.y_train, 10, alpha, seed=1)
    joined = np.concatenate(parts)
    assert sorted(joined.tolist()) == list(range(len(digits.y_train)))
    assert min(len(p) for p in parts) >= 5


def test_small_alpha_is_non_iid_and_large_alpha_is_not(digits):
    def skew(alpha: float) -> float:
        parts = dirichlet_partition(digits.y_train, 10, alpha, seed=2)
        # mean share of each party's most common label
        return float(np.mean([np.bincount(digits.y_train[p]).max() / len(p) for p in parts]))

    assert skew(0.1) > 0.5
    assert skew(1000.0) < 0.2


def test_iid_partition_and_bad_arguments(digits):
    parts = iid_partition(100, 3)
    assert sorted(np.concatenate(parts).tolist()) == list(range(100))
    with pytest.raises(TrainingError):
        dirichlet_partition(digits.y_train, 0, 0.5)
    with pytest.raises(TrainingError):
        dirichlet_partition(digits.y_train, 10, -1.0)
    with pytest.raises(TrainingError):
        iid_partition(3, 4)


def test_softmax_regression_learns_digits(digits):
    model = SoftmaxRegression(digits.n_features, digits.n_classes)
    before = model.accuracy(digits.x_test, digits.y_test)
    model.fit(digits.x_train, digits.y_train, epochs=10)
    assert before < 0.3
    assert model.accuracy(digits.x_test, digits.y_test) > 0.93


def test_safetensors_round_trip_and_rejection():
    model = SoftmaxRegression(4, 3, seed=5)
    blob = to_safetensors(model.params)
    back = from_safetensors(blob)
    assert set(back) == {"w", "b"}
    np.testing.assert_array_equal(back["w"], model.params["w"])
    with pytest.raises(TrainingError):
        from_safetensors(b"not safetensors at all")
    with pytest.raises(TrainingError):
        from_safetensors(blob[:-4])  # truncated data
    # A header that claims more data than there is.
    header = json.dumps({"w": {"dtype": "F32", "shape": [10**6], "data_offsets": [0, 4 * 10**6]}})
    evil = struct.pack("<Q", len(header)) + header.encode() + b"\0" * 8
    with pytest.raises(TrainingError):
        from_safetensors(evil)


def test_flatten_unflatten_round_trip():
    params = SoftmaxRegression(5, 2, seed=1).params
    vec = flatten(params)
    assert vec.shape == (12,)
    back = unflatten(vec, params)
    np.testing.assert_array_equal(back["w"], params["w"])
    with pytest.raises(TrainingError):
        unflatten(vec[:-1], params)


def test_fedavg_is_the_weighted_mean():
    a = {"w": np.array([1.0, 2.0], dtype=np.float32)}
    b = {"w": np.array([3.0, 6.0], dtype=np.float32)}
    np.testing.assert_allclose(fedavg([a, b], [1, 3])["w"], [2.5, 5.0])
    with pytest.raises(TrainingError):
        fedavg([a, {"v": a["w"]}], [1, 1])
    with pytest.raises(TrainingError):
        fedavg([a, b], [1])
    with pytest.raises(TrainingError):
        fedavg([a, b], [0, 0])
