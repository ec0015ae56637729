"""An eclipse on loopback: the node's endpoint is the stale-head proxy, its monitor also
reads the honest chain.  Once the proxy falls behind, the monitor holds the node's view and
its workers stop acting (no join, no transaction, no envelope handled) and say why; once
the proxy tells the truth again, the view is released and the node joins the job."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from chainml.crypto import Identity
from chainml.devtools.staleproxy import StaleProxy
from chainml.ledger.anvil import AnvilProcess
from chainml.ledger.bindings import Chainml, JobParams, Role
from chainml.ledger.client import LedgerClient
from chainml.ledger.deploy import Deployment
from chainml.ledger.devchain import DevChainProcess
from chainml.ledger.errors import ViewDistrusted
from chainml.ledger.settle import Settlement
from chainml.node import localnet
from chainml.node.chaincache import CachingLedgerClient
from chainml.node.ids import Alerts
from chainml.node.monitor import ChainMonitor
from chainml.node.state import NodeState
from chainml.node.workers import JobWorkers, gated

ETHER = 10**18
VIEW = {"endpoint_behind", "endpoints_disagree", "acting_stopped"}  # not the stake checks


def _view(raised) -> dict:
    return {a.kind: a for a in raised if a.kind in VIEW}


def test_workers_stop_on_a_stale_view_and_resume_when_it_agrees(tmp_path: Path, caplog):
    caplog.set_level(logging.WARNING)
    with DevChainProcess(tmp_path / "chain") as chain:
        honest = LedgerClient(chain.url)
        cm, dev = localnet.deploy(honest, tmp_path)
        trainer, aggregator = Identity.generate(), Identity.generate()
        for ident, roles in ((trainer, Role.TRAINER), (aggregator, Role.AGGREGATOR)):
            honest.transact(dev, to=ident.address, value=3 * ETHER)
            cm.registry.register_identity(ident, roles, "x", ETHER)

        proxy = StaleProxy(("127.0.0.1", 0), chain.url)
        server = threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.05})
        server.start()
        state = NodeState(tmp_path / "state.db")
        lying = f"http://127.0.0.1:{proxy.server_address[1]}"
        policy = Settlement(0)
        acting = CachingLedgerClient(lying, head_ttl=0, settlement=policy)
        plain = LedgerClient(lying)
        deployment = Deployment.load(tmp_path / "deployment.json")
        try:
            workers = JobWorkers(
                Chainml.connect(acting, deployment),
                trainer,
                state,
                roles=Role.TRAINER,
                settlement=policy,
            )
            alerts = Alerts(time.time, once=True)
            monitor = ChainMonitor(
                Chainml.connect(acting, deployment),  # as the daemon wires it
                alerts,
                endpoints={lying: plain, chain.url: honest},
                settlement=policy,
                own=lying,
                max_lag=3,
            )
            handled: list[object] = []
            handler = gated(handled.append, policy, "round/start")
            envelope = SimpleNamespace(header=SimpleNamespace(sender="0xabc"))
            assert _view(monitor.tick()) == {} and policy.held is None
            workers.tick()
            handler(envelope)
            assert handled == [envelope]

            for _ in range(4):  # the chain moves on; the proxy still serves its old head
                honest.transact(dev, to=Identity.generate().address, value=1)
            kinds = _view(monitor.tick())
            assert set(kinds) == {"endpoint_behind", "acting_stopped"}
            assert kinds["endpoint_behind"].subject == lying
            assert policy.held == f"{lying} is 4 blocks behind {chain.url}"

            # a job appears; the proxy shows its block, then lags again as the chain moves
            job_id = cm.jobs.create_job(
                dev, JobParams(aggregator.address, 1, 1, 4, ETHER, 60), ETHER
            )
            proxy.frozen = honest.block_number()
            assert _view(monitor.tick()) == {} and policy.held is None  # agrees: released
            for _ in range(4):
                honest.transact(dev, to=Identity.generate().address, value=1)
            assert set(_view(monitor.tick())) == {"acting_stopped"}  # endpoint_behind: once
            assert policy.held is not None
            assert workers.tick() == 0
            assert workers.actions.get(f"join:{job_id}") is None  # no join, not even intent
            with pytest.raises(ViewDistrusted):
                acting.block_number()  # what an aggregator's or validator's tick starts with
            with pytest.raises(ViewDistrusted):
                acting.transact(trainer.account, to=dev.address, value=1)
            handler(envelope)
            assert handled == [envelope]  # dropped while held
            text = caplog.text
            assert "the node stops acting" in text and "4 blocks behind" in text
            assert "workers: not acting" in text and "round/start from 0xabc dropped" in text

            proxy.heal()
            assert _view(monitor.tick()) == {} and policy.held is None
            assert "acts again" in caplog.text
            workers.tick()
            assert workers.actions.get(f"join:{job_id}").status == "done"
            assert cm.jobs.contract.call("participant_of", job_id, trainer.address)
            handler(envelope)
            assert handled == [envelope, envelope]
        finally:
            proxy.shutdown()
            server.join()
            proxy.server_close()
            state.close()
            for c in (acting, plain, honest):
                c.close()


def test_a_private_fork_holds_the_view_too(tmp_path: Path):
    """The node's endpoint serves another chain (Anvil) at about the same height as the
    honest one: not behind, but its blocks differ: the view is held as well."""
    with DevChainProcess(tmp_path / "chain") as chain, AnvilProcess() as anvil:
        honest, fork = LedgerClient(chain.url), LedgerClient(anvil.url)
        cm, _ = localnet.deploy(fork, tmp_path)
        policy = Settlement(0)
        monitor = ChainMonitor(
            cm,
            Alerts(time.time, once=True),
            endpoints={anvil.url: fork, chain.url: honest},
            settlement=policy,
            max_lag=10**6,  # heads never count as behind here: only the hashes differ
        )
        try:
            kinds = _view(monitor.tick())
            assert set(kinds) == {"endpoints_disagree", "acting_stopped"}
            assert policy.held is not None
            assert policy.held.startswith(f"{anvil.url} disagrees with {chain.url} on block")
            with pytest.raises(ViewDistrusted):
                policy.settled_head(fork)
        finally:
            honest.close()
            fork.close()
