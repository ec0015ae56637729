"""The ledger-backed peer directory: cached, expiring, bounded."""

from __future__ import annotations

from types import SimpleNamespace

from chainml.ledger.bindings import Role
from chainml.node.daemon import LedgerPeers


class FakeRegistry:
    def __init__(self) -> None:
        self.calls = 0
        self.stakes = {"0xa": 5}

    def is_registered(self, account: str) -> bool:
        self.calls += 1
        return account in self.stakes

    def party(self, account: str):
        return SimpleNamespace(x25519_key=b"k" * 32, roles=Role.TRAINER)

    def stake_of(self, account: str) -> int:
        return self.stakes[account]


def test_cached_for_ttl_then_read_again_and_bounded():
    now = [0.0]
    registry = FakeRegistry()
    peers = LedgerPeers(
        SimpleNamespace(registry=registry), ttl=5, clock=lambda: now[0], max_entries=3
    )
    assert peers.lookup("0xa").stake == 5
    assert peers.lookup("0xa").stake == 5 and registry.calls == 1  # cached
    assert peers.lookup("0xunknown") is None
    registry.stakes["0xa"] = 7
    now[0] = 6
    assert peers.lookup("0xa").stake == 7 and registry.calls == 3  # expired, read again
    for i in range(10):
        peers.lookup(f"0xforged{i}")
    assert len(peers._cache) == 3 and "0xforged9" in peers._cache
