"""Federated training on real data: secure aggregation matches plaintext FedAvg, robust
aggregation survives poisoners that break FedAvg, FoolsGold points at Sybils, and the
DP accountant's ε is the textbook one."""

from __future__ import annotations

import math

import numpy as np
import pytest

from chainml.training import privacy
from chainml.training.data import dirichlet_partition, iid_partition, load
from chainml.training.errors import TrainingError
from chainml.training.federated import Attack, train_federated
from chainml.training.models import MLP, LogisticRegression, from_safetensors, to_safetensors
from chainml.training.robust import (
    coordinate_median,
    flag_sybils,
    foolsgold_scores,
    multi_krum,
    trimmed_mean,
)

ATTACKERS = frozenset({0, 4, 7})


@pytest.fixture(scope="module")
def digits():
    data = load("digits", seed=0)
    return data, dirichlet_partition(data.y_train, 10, 0.5, seed=0)


@pytest.fixture(scope="module")
def clean(digits):
    data, shards = digits
    return train_federated(data, shards, rounds=20, mode="fedavg", seed=0)[1].accuracy[-1]


def test_secure_aggregation_matches_fedavg_on_non_iid_digits(digits, clean):
    """Digits, MLP, 10 parties, Dirichlet α = 0.5, 20 rounds."""
    data, shards = digits
    model, history = train_federated(data, shards, rounds=20, mode="secagg", seed=0)
    assert history.accuracy[-1] >= 0.95
    assert abs(history.accuracy[-1] - clean) <= 0.01
    assert all(p == tuple(range(1, 11)) for p in history.participants)
    assert set(from_safetensors(to_safetensors(model.params))) == {"w0", "b0", "w1", "b1"}


def test_training_goes_on_when_trainers_drop(digits):
    data, shards = digits
    drop = {r: {"masked": [2, 6, 9]} for r in range(1, 11, 3)}
    _, history = train_federated(data, shards, rounds=10, mode="secagg", seed=0, drop=drop)
    assert history.participants[0] == (1, 3, 4, 5, 7, 8, 10)
    assert history.accuracy[-1] > 0.9


@pytest.mark.parametrize("kind", ["sign_flip", "label_flip"])
def test_poisoners_break_fedavg_but_not_krum(digits, clean, kind: str):
    """3 of 10 trainers attack; Multi-Krum ends within 2 points of clean accuracy."""
    data, shards = digits
    attack = Attack(kind, ATTACKERS)
    robust = train_federated(data, shards, rounds=20, mode="krum", attack=attack, byzantine=3)
    plain = train_federated(data, shards, rounds=20, mode="fedavg", attack=attack)
    assert robust[1].accuracy[-1] >= clean - 0.02
    assert plain[1].accuracy[-1] < clean - 0.02  # so this test can fail
    if kind == "sign_flip":
        assert plain[1].accuracy[-1] < clean - 0.2


def test_foolsgold_flags_sybils_and_no_honest_party(digits):
    data, shards = digits
    sybils = Attack("label_flip", ATTACKERS, sybil=True)
    _, attacked = train_federated(data, shards, rounds=5, mode="krum", attack=sybils, byzantine=3)
    assert flag_sybils(foolsgold_scores(attacked.delta_sums)) == sorted(ATTACKERS)
    _, honest = train_federated(data, shards, rounds=5, mode="krum", byzantine=3)
    assert flag_sybils(foolsgold_scores(honest.delta_sums)) == []


def test_robust_aggregators_on_known_inputs():
    u = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [100.0, -1000.0]])
    assert coordinate_median(u).tolist() == [2.5, 15.0]
    assert trimmed_mean(u, 1).tolist() == [2.5, 15.0]
    honest = np.random.default_rng(0).normal(size=(7, 5))
    evil = np.full((3, 5), 50.0)
    assert np.abs(multi_krum(np.vstack([honest, evil]), 3)).max() < 3
    with pytest.raises(TrainingError):
        trimmed_mean(u, 2)
    with pytest.raises(TrainingError):
        multi_krum(u, 2)


def test_the_accountant_is_the_textbook_gaussian_one():
    """Without subsampling, T rounds at multiplier z are (α, Tα/2z²)-RDP; the classic
    conversion gives ε ≤ T/2z² + z⁻¹·sqrt(2T log 1/δ), the improved one a little less."""
    for z, rounds in [(1.0, 1), (1.1, 20), (4.0, 100)]:
        acc = privacy.RdpAccountant()
        for _ in range(rounds):
            acc.step(z)
        classic = rounds / (2 * z * z) + math.sqrt(2 * rounds * math.log(1e5)) / z
        eps = acc.epsilon(1e-5)
        assert 0.7 * classic < eps <= classic * 1.001
    more = privacy.RdpAccountant()
    more.step(1.0)
    more.step(1.0)
    one = privacy.RdpAccountant()
    one.step(1.0)
    assert more.epsilon(1e-5) > one.epsilon(1e-5)
    assert privacy.effective_multiplier(1.0, 7, 10) == pytest.approx(math.sqrt(0.7))


def test_noise_has_the_promised_scale():
    rng = np.random.default_rng(1)
    assert np.std(privacy.central_noise(200_000, 2.0, 1.5, rng)) == pytest.approx(3.0, rel=0.01)
    shares = sum(privacy.distributed_noise(200_000, 2.0, 1.5, 10, rng) for _ in range(10))
    assert np.std(shares) == pytest.approx(3.0, rel=0.01)


@pytest.mark.parametrize(("mode", "dp"), [("fedavg", "central"), ("secagg", "distributed")])
def test_a_private_job_reports_its_epsilon(digits, mode: str, dp: str):
    data, shards = digits
    _, history = train_federated(
        data, shards, rounds=3, mode=mode, dp=dp, noise_multiplier=2.0, clip=1.0
    )
    acc = privacy.RdpAccountant()
    for _ in range(3):
        acc.step(2.0)
    assert history.epsilon == pytest.approx(acc.epsilon(1e-5))
    _, quiet = train_federated(data, shards, rounds=3, mode=mode, clip=1.0)
    assert quiet.epsilon is None and quiet.accuracy != history.accuracy  # the noise was there


def test_models_and_data_sets():
    for name in ("digits", "breast_cancer", "wine"):
        data = load(name, seed=1)
        shards = iid_partition(len(data.y_train), 3, seed=1)
        assert sorted(np.concatenate(shards).tolist()) == list(range(len(data.y_train)))
        for model in (
            MLP(data.n_features, data.n_classes, (32,), seed=1),
            LogisticRegression(data.n_features, data.n_classes, seed=1),
        ):
            for epoch in range(30):
                model.fit(data.x_train, data.y_train, epochs=1, seed=epoch)
            assert model.accuracy(data.x_test, data.y_test) > 0.85, (name, type(model).__name__)
    squared = MLP(64, 10, (32,), activation="square", seed=0)
    data = load("digits")
    for epoch in range(30):
        squared.fit(data.x_train, data.y_train, epochs=1, lr=0.02, seed=epoch)
    assert squared.accuracy(data.x_test, data.y_test) > 0.93
    with pytest.raises(TrainingError):
        MLP(4, 2, activation="tanh")
