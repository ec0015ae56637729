"""Fixtures several test packages share."""

from __future__ import annotations

import pytest

from chainml.training.data import Dataset, load
from chainml.training.models import MLP


@pytest.fixture(scope="session")
def digits() -> Dataset:
    return load("digits", seed=0)


@pytest.fixture(scope="session")
def x2_mlp(digits: Dataset) -> MLP:
    """The digits MLP 64→32→10 trained with the x² activation from the start, so that the
    model evaluated under CKKS is the trained one."""
    model = MLP(64, 10, (32,), activation="square", seed=0)
    for epoch in range(30):
        model.fit(digits.x_train, digits.y_train, epochs=1, lr=0.02, seed=epoch)
    return model
