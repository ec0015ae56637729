"""Proof-of-inference fixtures: the SRS and the keys are made once per session (seconds
each), for the digits x² MLP and for another model of the same shape."""

from __future__ import annotations

import pytest

from chainml.inference import zkml
from chainml.training.models import MLP


@pytest.fixture(scope="session")
def zk_srs(tmp_path_factory):
    return zkml.SrsCache(tmp_path_factory.mktemp("srs"))


@pytest.fixture(scope="session")
def zk_digits(x2_mlp, zk_srs):
    """The digits x² MLP's bundle and prover."""
    bundle, prover = zkml.build_bundle(x2_mlp.params, "square", srs=zk_srs)
    yield bundle, prover
    prover.close()


@pytest.fixture(scope="session")
def other_model(digits):
    model = MLP(64, 10, (32,), activation="square", seed=7)
    model.fit(digits.x_train, digits.y_train, epochs=3, lr=0.02, seed=7)
    return model


@pytest.fixture(scope="session")
def zk_other(other_model, zk_srs):
    """Another model of the same shape, with its own bundle on the same SRS."""
    bundle, prover = zkml.build_bundle(other_model.params, "square", srs=zk_srs)
    yield bundle, prover
    prover.close()
