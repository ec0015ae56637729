"""A trainer's job workers with ``settle = "finalized"`` on the dev chain, whose finality the
test drives: a job is joined only once its creation block is finalized, the join counts
only once its own block is, and a join reorganised away is not counted but sent again."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chainml.crypto import Identity
from chainml.ledger.bindings import Chainml, JobParams, Role
from chainml.ledger.client import LedgerClient
from chainml.ledger.deploy import Deployment
from chainml.ledger.devchain import DevChainProcess
from chainml.ledger.errors import ViewDistrusted
from chainml.ledger.settle import Settlement
from chainml.node import daemon, localnet
from chainml.node.core import build
from chainml.node.roles import load_config
from chainml.node.state import NodeState
from chainml.node.workers import JobWorkers

ETHER = 10**18
DEPTH = 3


@pytest.fixture
def world(tmp_path: Path) -> Iterator[dict[str, Any]]:
    with DevChainProcess(tmp_path / "chain", finality_depth=DEPTH) as chain:
        client = LedgerClient(chain.url, timeout=20)
        cm, dev = localnet.deploy(client, tmp_path)
        trainer, aggregator = Identity.generate(), Identity.generate()
        for ident, roles in ((trainer, Role.TRAINER), (aggregator, Role.AGGREGATOR)):
            client.transact(dev, to=ident.address, value=3 * ETHER)
            cm.registry.register_identity(ident, roles, "x", ETHER)
        state = NodeState(tmp_path / "state.db")
        node_client = LedgerClient(chain.url, timeout=20)
        workers = JobWorkers(
            Chainml.connect(node_client, Deployment.load(tmp_path / "deployment.json")),
            trainer,
            state,
            roles=Role.TRAINER,
            settlement=Settlement("finalized"),
        )
        workers.actions.receipt_timeout = 0.5  # a join reorganised away is looked for briefly
        try:
            yield {
                "client": client,
                "cm": cm,
                "dev": dev,
                "trainer": trainer,
                "aggregator": aggregator,
                "workers": workers,
                "state": state,
            }
        finally:
            state.close()
            node_client.close()
            client.close()


def _mine(client: LedgerClient, n: int) -> None:
    for _ in range(n):
        client.rpc("evm_mine")


def _finalized(client: LedgerClient) -> int:
    return int(str(client.block("finalized")["number"]), 16)


def _joined(cm: Chainml, job_id: int, who: str, block: int | str = "latest") -> bool:
    return bool(cm.jobs.contract.call("participant_of", job_id, who, block=block))


def _new_job(w: dict[str, Any]) -> tuple[int, int]:
    cm = w["cm"]
    job_id = cm.jobs.create_job(
        w["dev"], JobParams(w["aggregator"].address, 1, 1, 4, ETHER, 60), ETHER
    )
    return job_id, w["client"].block_number()


def test_a_job_is_joined_once_its_creation_is_finalized_and_counted_once_the_join_is(world):
    w = world
    client, cm, workers, me = w["client"], w["cm"], w["workers"], w["trainer"].address
    client.rpc("chainml_setFinality", [{"frozen": True}])  # consensus stalls
    job_id, created = _new_job(w)
    assert _finalized(client) < created
    _mine(client, DEPTH + 2)  # deep enough for any depth, but not finalized
    for _ in range(2):
        workers.tick()
    assert workers.actions.get(f"join:{job_id}") is None  # not even an intent
    assert not _joined(cm, job_id, me)

    client.rpc("chainml_setFinality", [{"frozen": False}])  # finality resumes
    assert _finalized(client) >= created
    workers.tick()
    action = workers.actions.get(f"join:{job_id}")
    assert action is not None and action.status == "sent"  # mined, not yet finalized
    assert _joined(cm, job_id, me)
    assert w["state"].get(f"job:{job_id}") is None
    workers.tick()  # nothing new settled: the join is neither counted nor sent again
    assert workers.actions.get(f"join:{job_id}") == action

    _mine(client, DEPTH)
    workers.tick()
    assert workers.actions.get(f"join:{job_id}").status == "done"
    assert w["state"].get(f"job:{job_id}") == "joined"
    assert len(cm.jobs.contract.past_events("Joined")) == 1


def test_a_join_reorganised_away_is_not_settled_and_is_sent_again(world):
    w = world
    client, cm, workers, me = w["client"], w["cm"], w["workers"], w["trainer"].address
    job_id, created = _new_job(w)
    _mine(client, DEPTH)
    workers.tick()
    first = workers.actions.get(f"join:{job_id}")
    assert first is not None and first.status == "sent"
    mined_in = int(str(client.rpc("eth_getTransactionReceipt", [first.tx_hash])["blockNumber"]), 16)

    # the block holding the join is replaced by a longer branch without it
    client.rpc("chainml_reorg", [hex(client.block_number() - mined_in + 1)])
    assert not _joined(cm, job_id, me)
    workers.tick()  # not found again: the settled chain says not joined, so join again
    again = workers.actions.get(f"join:{job_id}")
    assert again is not None and again.status == "sent" and again.tx_hash != first.tx_hash
    assert w["state"].get(f"job:{job_id}") is None

    _mine(client, DEPTH)
    workers.tick()
    assert workers.actions.get(f"join:{job_id}").status == "done"
    assert w["state"].get(f"job:{job_id}") == "joined"
    assert _joined(cm, job_id, me, block=_finalized(client))


def test_node_toml_settle_is_read_and_a_bad_one_refused(tmp_path: Path):
    from chainml.node.core import ConfigError
    from chainml.node.roles import init, load_config

    init(tmp_path, "n", "pw", rpc="http://127.0.0.1:1", deployment="d.json", port=1, work=1 << 10)
    path = tmp_path / "node.toml"
    text = path.read_text()
    assert load_config(path).settle == "0"  # absent: the confirmation depth, as before
    for value, mode in (('"finalized"', "finalized"), ('"safe"', "safe"), ("6", "6")):
        path.write_text(text.replace("[limits]", f"settle = {value}\n\n[limits]"))
        assert load_config(path).settle == mode
        assert Settlement.parse(load_config(path).settle).mode == Settlement.parse(mode).mode
    path.write_text(text.replace("[limits]", 'settle = "final"\n\n[limits]'))
    with pytest.raises(ConfigError, match="settle"):
        load_config(path)


def test_a_node_process_with_settle_finalized_joins_only_once_the_job_is_final(tmp_path: Path):
    """The setting end to end: node.toml says ``settle = "finalized"``; the node process
    does not join a job while the chain's finality is frozen below its creation, and joins
    (and records the join done) once finality passes it."""
    with DevChainProcess(tmp_path / "chain", finality_depth=DEPTH) as chain:
        client = LedgerClient(chain.url)
        cm, dev = localnet.deploy(client, tmp_path)
        node = localnet.init_node(tmp_path, "trainer", "pw", rpc=chain.url, work=1 << 10)
        text = node.config.read_text().replace("interval = 1 ", "interval = 0.1 ")
        node.config.write_text(text.replace("[limits]", 'settle = "finalized"\n\n[limits]'))
        aggregator = Identity.generate()
        for ident, roles in ((node.identity, Role.TRAINER), (aggregator, Role.AGGREGATOR)):
            client.transact(dev, to=ident.address, value=3 * ETHER)
            cm.registry.register_identity(ident, roles, "x", ETHER)
        client.rpc("chainml_setFinality", [{"frozen": True}])
        job_id = cm.jobs.create_job(dev, JobParams(aggregator.address, 1, 1, 4, ETHER, 60), ETHER)
        me = node.identity.address
        built = build(load_config(node.config), "pw")  # the parts the process will run
        try:
            assert built.settlement.mode == "finalized"
            assert built.cached.jobs.client.settlement is built.settlement
            built.settlement.hold("a test's eclipse")
            for c in (built.client, built.cached.jobs.client):  # no transaction leaves
                with pytest.raises(ViewDistrusted):
                    c.transact(node.identity.account, to=dev.address, value=1)
            with pytest.raises(ViewDistrusted):  # the head workers act from is refused
                built.cached.jobs.client.block_number()
            assert built.client.block_number() == client.block_number()  # facts still read
            assert built.cached.registry.is_registered(me)
        finally:
            built.close()
        proc = daemon.spawn(node.config, "pw", log=tmp_path / "node.log")
        try:
            daemon.wait_ready(node.url, proc, 60, address=me)
            _mine(client, DEPTH + 1)  # deep enough, but not final
            time.sleep(2)  # twenty worker passes
            assert not _joined(cm, job_id, me)
            client.rpc("chainml_setFinality", [{"frozen": False}])
            deadline = time.monotonic() + 30
            while not _joined(cm, job_id, me) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert _joined(cm, job_id, me)
            _mine(client, DEPTH)  # the join's own block is finalized: counted done

            def status() -> str | None:
                db = sqlite3.connect(node.config.parent / "state.db")
                try:
                    rows = db.execute(
                        "SELECT status FROM actions WHERE key = ?", (f"join:{job_id}",)
                    ).fetchall()
                finally:
                    db.close()
                return rows[0][0] if rows else None

            deadline = time.monotonic() + 30
            while status() != "done" and time.monotonic() < deadline:
                time.sleep(0.1)
            assert status() == "done"
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0
            client.close()


def test_an_aggregator_starts_a_round_on_settled_joins_and_counts_its_record_once_settled(
    world, tmp_path: Path
):
    """With ``settle = "finalized"``: a job whose joins are mined but not final is not
    served yet; a round record mined but not final stays ``submitting`` (the next round
    waits) and counts as done once its block is final."""
    from chainml.node.rounds import AggregatorRole, Courier
    from chainml.storage.local import LocalBlobStore
    from chainml.training.job import JobConfig

    w, client, cm = world, world["client"], world["cm"]
    config = JobConfig(n_features=4, n_classes=2, hidden=(2,))
    jobs = tmp_path / "jobs"
    jobs.mkdir()
    (jobs / f"{config.config_hash.hex()}.json").write_bytes(config.encode())
    params = JobParams(w["aggregator"].address, 1, 1, 1, ETHER, 60, config_hash=config.config_hash)
    job_id = cm.jobs.create_job(w["dev"], params, ETHER)
    cm.jobs.join(w["trainer"].account, job_id)
    node_cm = w["workers"].cm
    state = NodeState(tmp_path / "aggregator.db")
    role = AggregatorRole(
        w["aggregator"], node_cm, state, Courier(w["aggregator"], node_cm),
        LocalBlobStore(tmp_path / "blobs"), jobs_dir=jobs,
        settlement=Settlement("finalized"),
    )  # fmt: skip
    role.actions.receipt_timeout = 0.5
    try:
        assert role._my_open_jobs(role._at()) == []  # mined, not final: not served yet
        _mine(client, DEPTH + 1)
        assert role._my_open_jobs(role._at()) == [job_id]
        # the round's record is ready to submit (as after run_round's masked stages)
        state.put(f"record:{job_id}:1", json.dumps({"root": "00" * 32, "bitmap": 1}))
        state.put(f"round:{job_id}:1", "submitting:1")
        role.tick()
        assert cm.jobs.job(job_id).rounds_done == 1  # mined
        assert cm.jobs.job(job_id, block=_finalized(client)).rounds_done == 0
        assert state.get(f"round:{job_id}:1") == "submitting:1"  # not counted yet
        _mine(client, 1)
        role.tick()  # still not final: not sent again, not counted
        assert state.get(f"round:{job_id}:1") == "submitting:1"
        assert cm.jobs.job(job_id).rounds_done == 1
        _mine(client, DEPTH)
        role.tick()
        assert state.get(f"round:{job_id}:1") == "done:1"
        assert role._my_open_jobs(role._at()) == []  # its one round is recorded and final
    finally:
        state.close()
