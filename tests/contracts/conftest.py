"""Fixtures for contract tests run in process with titanoboa."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import boa
import pytest

from chainml.crypto import Identity
from chainml.ledger.artifacts import CONTRACTS_DIR

ETHER = 10**18
UNBONDING = 3600
MIN_VALIDATOR_STAKE = ETHER
WINDOW = 600


@cache
def deployer(name: str) -> Any:
    """A cached titanoboa deployer for ``contracts/name.vy`` (compiled once per session)."""
    return boa.load_partial(str(CONTRACTS_DIR / f"{name}.vy"))


@pytest.fixture(autouse=True)
def _isolated_chain() -> Iterator[None]:
    """Each test runs inside a snapshot of the in-process chain, rolled back after it."""
    with boa.env.anchor():
        yield


@dataclass
class System:
    registry: Any
    jobs: Any
    datasets: Any
    models: Any
    receipts: Any
    owner: str


def deploy_system() -> System:
    owner = boa.env.generate_address("deployer")
    with boa.env.prank(owner):
        registry = deployer("Registry").deploy(UNBONDING, MIN_VALIDATOR_STAKE)
        jobs = deployer("Jobs").deploy(registry.address)
        registry.set_slasher(jobs.address)
        datasets = deployer("Datasets").deploy()
        models = deployer("Models").deploy()
        receipts = deployer("Receipts").deploy(WINDOW, WINDOW)
    return System(registry, jobs, datasets, models, receipts, owner)


@pytest.fixture
def system() -> System:
    return deploy_system()


def funded(ether: int = 100) -> Identity:
    ident = Identity.generate()
    boa.env.set_balance(ident.address, ether * ETHER)
    return ident


def register(registry: Any, ident: Identity, roles: int = 2 | 8, stake: int = 5 * ETHER) -> None:
    digest = registry.pop_digest(ident.address, ident.x25519.public_bytes)
    pop = ident.account.sign_digest(digest)
    with boa.env.prank(ident.address):
        registry.register(ident.x25519.public_bytes, pop, roles, "http://127.0.0.1:1", value=stake)
