"""The finality stall alarm against the dev chain, whose finality the test freezes: the
monitor raises ``finality_stalled`` once the finalized block stood still for the configured
time while the head moved, not before, not on an idle chain, and exports the lag."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from chainml.ledger.client import LedgerClient
from chainml.ledger.devchain import DevChainProcess
from chainml.node import localnet
from chainml.node.ids import Alerts
from chainml.node.monitor import ChainMonitor

STALL = 60.0


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _mine(client: LedgerClient, n: int) -> None:
    for _ in range(n):
        client.rpc("evm_mine")


def _kinds(raised) -> list[str]:
    return [a.kind for a in raised]


def test_a_stalled_finality_is_alarmed_while_the_head_moves(tmp_path: Path):
    with DevChainProcess(tmp_path / "chain", finality_depth=2) as chain:
        client = LedgerClient(chain.url)
        cm, _ = localnet.deploy(client, tmp_path)
        clock = FakeClock()
        alerts = Alerts(time.time, once=True)
        monitor = ChainMonitor(cm, alerts, finality_stall=STALL, clock=clock)
        registry = CollectorRegistry()
        monitor.bind_metrics(registry)

        def gauge(name: str) -> float | None:
            return registry.get_sample_value(name)

        assert monitor.tick() == []
        assert gauge("chainml_chain_finality_lag_blocks") == 2
        for _ in range(3):  # finality follows the head: however long, no alarm
            _mine(client, 1)
            clock.now += 2 * STALL
            assert "finality_stalled" not in _kinds(monitor.tick())

        frozen = int(str(client.rpc("chainml_setFinality", [{"frozen": True}])), 16)
        assert monitor.tick() == []
        clock.now += 5 * STALL  # an idle chain: the head did not move either
        assert "finality_stalled" not in _kinds(monitor.tick())
        _mine(client, 3)
        clock.now += 1
        raised = [a for a in monitor.tick() if a.kind == "finality_stalled"]
        assert len(raised) == 1
        assert raised[0].subject == f"finalized {frozen}"
        assert "has not advanced" in raised[0].detail
        assert gauge("chainml_chain_finality_lag_blocks") == client.block_number() - frozen
        assert gauge("chainml_chain_finalized_age_seconds") >= 5 * STALL
        assert gauge("chainml_chain_view_held") == 0

        client.rpc("chainml_setFinality", [{"frozen": False}])
        clock.now += 1
        assert "finality_stalled" not in _kinds(monitor.tick())
        assert gauge("chainml_chain_finalized_age_seconds") == 0
        assert gauge("chainml_chain_finality_lag_blocks") == 2

        # a second stall, at another finalized block, is a second alarm
        client.rpc("chainml_setFinality", [{"frozen": True}])
        monitor.tick()
        _mine(client, 1)
        clock.now += STALL - 1
        assert "finality_stalled" not in _kinds(monitor.tick())  # not long enough yet
        clock.now += 1
        assert _kinds(monitor.tick()) == ["finality_stalled"]
        assert alerts.counts["finality_stalled"] == 2
        client.close()
