"""The robust rules by name, as a robust-aggregation job names them, and the plaintext
update message of such a job."""

from __future__ import annotations

import numpy as np
import pytest

from chainml.node.rounds import PlainUpdate
from chainml.training import robust
from chainml.training.errors import TrainingError
from chainml.training.job import JobConfig
from chainml.training.secagg import ProtocolViolation


@pytest.mark.parametrize("rule", robust.RULES)
def test_each_rule_resists_three_of_ten_poisoners(rule):
    rng = np.random.default_rng(0)
    honest = rng.normal(1.0, 0.1, size=(7, 50))
    poison = np.full((3, 50), -100.0)
    aggregate = robust.aggregate(rule, np.vstack([honest, poison]))
    assert np.abs(aggregate - 1.0).max() < 0.3  # a plain mean would be about -29
    assert np.vstack([honest, poison]).mean(axis=0).max() < -20


def test_unknown_rules_and_configurations_are_refused():
    with pytest.raises(TrainingError):
        robust.aggregate("mean", np.ones((4, 3)))
    raw = JobConfig(n_features=4, n_classes=2).encode().replace(b'"secagg"', b'"average"')
    with pytest.raises(TrainingError):
        JobConfig.decode(raw)


def test_a_plain_update_round_trips_and_malformed_ones_are_refused():
    update = PlainUpdate(np.arange(5, dtype=np.float32), b"\x01" * 65)
    back = PlainUpdate.decode(update.encode())
    assert np.array_equal(back.update, update.update) and back.commitment == update.commitment
    for bad in (b"", b"{}", update.encode().replace(b"plain-update/1", b"plain-update/2")):
        with pytest.raises(ProtocolViolation):
            PlainUpdate.decode(bad)


def test_the_aggregator_takes_only_updates_within_the_job_s_bounds():
    from chainml.node.rounds import _within_bounds

    step = np.full(8, 0.5)  # L2 norm 1.414
    honest = np.append(step * 0.3, 0.3).astype(np.float32)
    assert _within_bounds(honest, 9, clip=1.5)
    assert not _within_bounds(honest, 9, clip=1.4)  # the step is over the job's bound
    for weight in (0.0, -0.3, 1.5):
        assert not _within_bounds(np.append(step * 0.3, weight).astype(np.float32), 9, 10.0)
    nan = honest.copy()
    nan[2] = np.nan
    assert not _within_bounds(nan, 9, 10.0)
    assert not _within_bounds(honest[:-1], 9, 10.0)
