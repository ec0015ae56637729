"""Ledger fixtures: real chain nodes as subprocesses on loopback, one per backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from chainml.ledger.anvil import AnvilProcess
from chainml.ledger.client import LedgerClient, LocalSigner
from chainml.ledger.devchain import DEV_KEY

# Accounts 0-3 of the standard development mnemonic; both backends prefund them.
DEV_KEYS = [
    DEV_KEY,
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
]


def _devchain(tmp: Path) -> Iterator[str]:
    from chainml.ledger.devchain import DevChainProcess

    with DevChainProcess(tmp / "chain") as chain:
        yield chain.url


@pytest.fixture(scope="session")
def anvil_url() -> Iterator[str]:
    with AnvilProcess() as anvil:
        yield anvil.url


@pytest.fixture(scope="session")
def devchain_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from _devchain(tmp_path_factory.mktemp("devchain"))


@pytest.fixture(scope="session", params=["devchain", "anvil"])
def chain_url(request: pytest.FixtureRequest) -> str:
    """The URL of each backend in turn: every test using it runs on both."""
    return str(request.getfixturevalue(f"{request.param}_url"))


@pytest.fixture
def client(chain_url: str) -> Iterator[LedgerClient]:
    c = LedgerClient(chain_url, timeout=20)
    yield c
    c.close()


@pytest.fixture
def dev_signer() -> LocalSigner:
    return LocalSigner.from_key(DEV_KEY)
