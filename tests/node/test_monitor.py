"""The chain watch against real chains: the embedded chain and Anvil, in processes."""

from __future__ import annotations

import time

from chainml.crypto import Identity
from chainml.ledger.anvil import AnvilProcess
from chainml.ledger.bindings import Chainml, Role
from chainml.ledger.client import LedgerClient, LocalSigner
from chainml.ledger.deploy import deploy_system
from chainml.ledger.devchain import DEV_KEY, DevChainProcess
from chainml.node.ids import Alerts
from chainml.node.monitor import ChainMonitor

ETHER = 10**18


def test_sybil_cluster_majority_and_an_eclipse_are_alerted(tmp_path):
    with DevChainProcess(tmp_path / "chain") as chain, AnvilProcess() as anvil:
        client = LedgerClient(chain.url)
        dev = LocalSigner.from_key(DEV_KEY)
        cm = Chainml.connect(client, deploy_system(client, dev))

        def join(ident: Identity, funder, stake: int) -> None:
            client.transact(funder, to=ident.address, value=stake + ETHER // 10)
            cm.registry.register_identity(ident, Role.VALIDATOR, "x", stake)

        alerts = Alerts(time.time, once=True)
        monitor = ChainMonitor(cm, alerts, endpoints={"embedded": client})

        def funder() -> LocalSigner:
            signer = LocalSigner.generate()
            client.transact(dev, to=signer.address, value=3 * ETHER)
            return signer

        for _ in range(4):  # four parties, each with its own source of funds
            join(Identity.generate(), funder(), ETHER)
        assert monitor.tick() == []  # nothing to say

        whale = LocalSigner.generate()
        client.transact(dev, to=whale.address, value=10 * ETHER)
        for _ in range(5):
            join(Identity.generate(), whale, ETHER)
        kinds = {a.kind: a for a in monitor.tick()}
        assert set(kinds) == {"common_funder", "stake_majority"}
        assert kinds["common_funder"].subject == whale.address.lower()
        assert monitor.tick() == []  # raised once

        # a second endpoint that serves another chain: the node is being eclipsed
        monitor.endpoints["other"] = LedgerClient(anvil.url)
        raised = monitor.tick()
        assert "endpoints_disagree" in {a.kind for a in raised}
        assert {a.kind for a in alerts.recent} >= {
            "common_funder",
            "stake_majority",
            "endpoints_disagree",
        }
