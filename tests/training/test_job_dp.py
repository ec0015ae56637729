"""Differential privacy in a job's configuration: validation, canonical encoding, the
trainer's and the aggregator's noise, the SecAgg+ headroom, and the job's ε."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest

from chainml.crypto.hazmat import fixedpoint
from chainml.training import privacy
from chainml.training.errors import TrainingError
from chainml.training.job import JobConfig
from chainml.training.models import flatten

BASE = JobConfig(n_features=64, n_classes=10)
# the bytes a configuration without DP had before DP existed: config hashes on chain hold
BEFORE_DP = (
    b'{"activation":"relu","aggregation":"secagg","epochs":5,"hidden":[64],"lr":0.1,'
    b'"model":"mlp","n_classes":10,"n_features":64,"seed":0,"verifiable":true,'
    b'"weight_base":1000}'
)


def _raw(**changes: object) -> bytes:
    doc = json.loads(BASE.encode())
    doc.update(changes)
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def test_a_job_without_dp_encodes_and_hashes_as_before():
    assert BASE.encode() == BEFORE_DP
    from chainml.node.demo import JOB

    assert replace(JOB, norm_proofs=False).config_hash.hex() == (
        "6e9c278c2cbc7672b91a16fbee656d86639906559e58160c0908651962efc4f8"
    )
    assert JobConfig.decode(BEFORE_DP) == BASE and BASE.dp is None


@pytest.mark.parametrize("mode", ["central", "distributed"])
def test_a_dp_job_round_trips_and_has_its_own_hash(mode: str):
    config = JobConfig(n_features=64, n_classes=10, dp=mode, noise_multiplier=0.8, dp_delta=1e-6)
    raw = config.encode()
    doc = json.loads(raw)
    assert (doc["dp"], doc["noise_multiplier"], doc["dp_delta"]) == (mode, 0.8, 1e-6)
    assert JobConfig.decode(raw) == config
    assert config.config_hash != BASE.config_hash


@pytest.mark.parametrize(
    "changes",
    [
        {"dp": "local"},
        {"dp": 1},
        {"dp": "central", "noise_multiplier": 0.0},
        {"dp": "central", "noise_multiplier": -1.0},
        {"dp": "central", "noise_multiplier": float("nan")},
        {"dp": "central", "noise_multiplier": float("inf")},
        {"dp": "central", "noise_multiplier": "1.0"},
        {"dp": "central", "noise_multiplier": True},
        {"dp": "distributed", "dp_delta": 0.0},
        {"dp": "distributed", "dp_delta": 1.0},
        {"dp": "distributed", "dp_delta": 2.5},
        {"dp": "distributed", "dp_delta": 2e-5},  # the chain records δ as 10^-e
        {"dp": "distributed", "dp_delta": 1e-31},
        {"dp": "central", "noise_multiplier": 0.0005},  # the chain records z in thousandths
        {"dp": "central", "aggregation": "krum"},
        {"dp": "distributed", "aggregation": "median"},
        {"dp": "distributed", "aggregation": "trimmed_mean"},
        {"noise_multiplier": 2.0},  # noise without dp: says something it does not do
        {"dp_delta": 1e-6},
        {"dp": None},  # not canonical: a job without DP carries no DP keys
    ],
)
def test_bad_dp_settings_are_refused_at_decode(changes: dict[str, object]):
    with pytest.raises(TrainingError):
        JobConfig.decode(_raw(**changes))


def test_bad_dp_settings_are_refused_when_built():
    with pytest.raises(TrainingError):
        JobConfig(n_features=4, n_classes=2, dp="central", aggregation="krum")
    with pytest.raises(TrainingError):
        JobConfig(n_features=4, n_classes=2, dp="distributed", noise_multiplier=0)


def _update(config: JobConfig, weight: float = 0.7) -> np.ndarray:
    rng = np.random.default_rng(3)
    step = rng.normal(size=config.vector_len() - 1)
    return np.append(step / np.linalg.norm(step) * 2.0 * weight, weight)


def test_a_trainer_adds_its_share_of_the_noise_and_leaves_the_weight_alone():
    config = JobConfig(n_features=64, n_classes=10, dp="distributed", noise_multiplier=1.5)
    update = _update(config)
    clip, n = 2.0, 9
    noisy = config.add_trainer_noise(update, clip=clip, n_trainers=n)
    assert noisy.shape == update.shape
    assert noisy[-1] == update[-1]  # the weight coordinate, exactly
    noise = noisy[:-1] - update[:-1]
    # sigma = z C / sqrt(n) = 1.0: 4,810 draws put the sample deviation within about 3%
    assert np.std(noise) == pytest.approx(1.5 * clip / math.sqrt(n), rel=0.06)
    assert abs(np.mean(noise)) < 0.1
    # not a fixed seed: a second call draws other noise
    again = config.add_trainer_noise(update, clip=clip, n_trainers=n)
    assert not np.allclose(again, noisy)
    assert np.array_equal(update, _update(config))  # the input itself is not changed


def test_the_trainers_shares_add_up_to_the_central_noise():
    config = JobConfig(n_features=64, n_classes=10, dp="distributed", noise_multiplier=2.0)
    n = 10
    update = np.zeros(config.vector_len())
    update[-1] = 1.0
    total = sum(config.add_trainer_noise(update, clip=0.5, n_trainers=n) for _ in range(n))
    assert total[-1] == n  # the weights add up untouched
    assert np.std(total[:-1]) == pytest.approx(2.0 * 0.5, rel=0.06)


@pytest.mark.parametrize("mode", [None, "central"])
def test_only_a_distributed_job_noises_at_the_trainer(mode: str | None):
    config = JobConfig(n_features=64, n_classes=10, dp=mode)
    update = _update(config)
    assert config.add_trainer_noise(update, clip=2.0, n_trainers=4) is update


def test_the_aggregator_s_central_noise_has_the_promised_scale():
    config = JobConfig(n_features=64, n_classes=10, dp="central", noise_multiplier=1.2)
    noise = config.central_noise(200_000, 3.0)
    assert np.std(noise) == pytest.approx(1.2 * 3.0, rel=0.01)
    for other in (BASE, JobConfig(n_features=64, n_classes=10, dp="distributed")):
        assert not other.central_noise(100, 3.0).any()


def test_the_secagg_range_leaves_room_for_the_trainers_noise():
    clip, n = 10.0, 4
    assert BASE.secagg_bound(clip, n) == clip + 1.0
    central = JobConfig(n_features=64, n_classes=10, dp="central", noise_multiplier=3.0)
    assert central.secagg_bound(clip, n) == clip + 1.0  # the noise is added after the sum
    config = JobConfig(n_features=64, n_classes=10, dp="distributed", noise_multiplier=3.0)
    bound = config.secagg_bound(clip, n)
    update = np.append(np.full(config.vector_len() - 1, clip / math.sqrt(4810)), 1.0)
    norms = [
        np.linalg.norm(config.add_trainer_noise(update, clip=clip, n_trainers=n)) for _ in range(50)
    ]
    assert max(norms) < bound  # SecAgg+ will not clip (and so bias) a noisy update
    assert bound < 1.5 * max(norms)  # and the headroom costs little precision
    assert fixedpoint.fraction_bits(n, bound) >= 16  # the sum of n such inputs fits in 32 bits


def _textbook_epsilon(multipliers: list[float], delta: float) -> float:
    """Mironov's Gaussian RDP summed over rounds, Balle et al. 2020's conversion."""
    best = math.inf
    for a in privacy.ORDERS:
        rdp = sum(a / (2 * z * z) for z in multipliers)
        best = min(best, rdp + math.log((a - 1) / a) - (math.log(delta) + math.log(a)) / (a - 1))
    return best


def test_the_job_s_epsilon_is_the_accountant_s_textbook_value():
    central = JobConfig(n_features=4, n_classes=2, dp="central", noise_multiplier=1.1)
    assert central.round_multiplier(3, 4) == 1.1
    eps = central.epsilon([1.1] * 5)
    assert eps == pytest.approx(_textbook_epsilon([1.1] * 5, 1e-5), rel=1e-12)
    assert 0 < central.epsilon([1.1]) < eps < central.epsilon([1.1] * 6)

    distributed = JobConfig(
        n_features=4, n_classes=2, dp="distributed", noise_multiplier=2.0, dp_delta=1e-6
    )
    assert distributed.round_multiplier(4, 4) == 2.0
    dropped = distributed.round_multiplier(3, 4)  # one share of the noise missing
    assert dropped == pytest.approx(2.0 * math.sqrt(3 / 4))
    charged = [2.0, dropped]
    assert distributed.epsilon(charged) == pytest.approx(
        _textbook_epsilon(charged, 1e-6), rel=1e-12
    )
    assert distributed.epsilon(charged) > distributed.epsilon([2.0, 2.0])
    assert BASE.round_multiplier(4, 4) is None


def test_secure_rng_is_not_a_fixed_seed():
    a, b = privacy.secure_rng(), privacy.secure_rng()
    assert a.integers(0, 2**63, size=4).tolist() != b.integers(0, 2**63, size=4).tolist()


def test_what_a_job_records_on_chain_for_its_dp():
    assert JobConfig(n_features=4, n_classes=2).chain_dp() == (0, 0)
    central = JobConfig(n_features=4, n_classes=2, dp="central", noise_multiplier=1.25)
    assert central.chain_dp() == (1250, 5)
    tight = JobConfig(
        n_features=4, n_classes=2, dp="distributed", noise_multiplier=0.7, dp_delta=1e-9
    )
    assert tight.chain_dp() == (700, 9)


@pytest.mark.parametrize("hidden", [(64,), (16, 8), ()])
def test_the_vector_length_is_the_model_s_parameters_and_the_weight(hidden):
    config = JobConfig(n_features=13, n_classes=3, hidden=hidden)
    assert config.vector_len() == flatten(config.initial_model().params).size + 1
