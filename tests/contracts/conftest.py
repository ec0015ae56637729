"""Fixtures for contract tests run in process with titanoboa."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

import boa
import pytest

from chainml.ledger.artifacts import CONTRACTS_DIR


@cache
def deployer(name: str) -> Any:
    """A cached titanoboa deployer for ``contracts/name.vy`` (compiled once per session)."""
    return boa.load_partial(str(CONTRACTS_DIR / f"{name}.vy"))


@pytest.fixture(autouse=True)
def _isolated_chain() -> Iterator[None]:
    """Each test runs inside a snapshot of the in-process chain, rolled back after it."""
    with boa.env.anchor():
        yield
