"""A real node process killed with SIGKILL at 13 points of a job, then restarted: it
finishes what it started, loses nothing, and does nothing twice."""

from __future__ import annotations

import signal
import sqlite3
import time

import pytest

from chainml.crypto import Identity
from chainml.ledger.bindings import JobParams, JobState, Role
from chainml.ledger.client import LedgerClient
from chainml.ledger.devchain import DevChainProcess
from chainml.node import daemon, localnet
from chainml.node.workers import CRASH_ENV

ETHER = 10**18
PASSWORD = "crash test"
WINDOW = 60

POINTS = [
    "join:after-intent",
    "join:after-send",
    "join:after-record",
    "join:after-receipt",
    "events:before-ack",
    "finalize:after-intent",
    "finalize:after-send",
    "finalize:after-record",
    "finalize:after-receipt",
    "claim:after-intent",
    "claim:after-send",
    "claim:after-record",
    "claim:after-receipt",
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("crash")
    with DevChainProcess(tmp / "chain") as chain:
        client = LedgerClient(chain.url)
        cm, dev = localnet.deploy(client, tmp)
        node = localnet.init_node(tmp, "trainer", PASSWORD, rpc=chain.url, work=1 << 10)
        config = node.config
        config.write_text(config.read_text().replace("interval = 1 ", "interval = 0.1 "))
        trainer = node.identity
        aggregator = Identity.generate()
        for ident, roles in ((trainer, Role.TRAINER), (aggregator, Role.AGGREGATOR)):
            client.transact(dev, to=ident.address, value=3 * ETHER)
            cm.registry.register_identity(ident, roles, "x", ETHER)
        yield {
            "client": client,
            "cm": cm,
            "dev": dev,
            "config": config,
            "url": node.url,
            "trainer": trainer,
            "aggregator": aggregator,
        }


def _events(cm, name: str, job_id: int, who: str | None = None) -> int:
    return sum(
        1
        for e in cm.jobs.contract.past_events(name)
        if int(e.args["job_id"]) == job_id
        and (who is None or who in {str(v) for v in e.args.values()})
    )


@pytest.mark.parametrize("point", POINTS)
def test_killed_node_finishes_its_job_once(world, point, monkeypatch):
    w = world
    cm, client, me = w["cm"], w["client"], w["trainer"].address
    job_id = cm.jobs.create_job(
        w["dev"], JobParams(w["aggregator"].address, 1, 1, 4, ETHER, WINDOW), ETHER
    )
    monkeypatch.setenv(CRASH_ENV, point)
    proc = daemon.spawn(w["config"], PASSWORD)
    monkeypatch.delenv(CRASH_ENV)
    crashes, submitted = 0, False

    def restart_if_killed():
        nonlocal proc, crashes
        if proc.poll() is None:
            return
        output = proc.stdout.read().decode() if proc.stdout else ""
        assert proc.returncode == -signal.SIGKILL, output[-2000:]
        assert f"crash point {point}" in output
        crashes += 1
        assert crashes == 1
        proc = daemon.spawn(w["config"], PASSWORD)  # no crash this time

    def finished() -> bool:
        return cm.jobs.job(job_id).state == JobState.FINALIZED and bool(
            cm.jobs.functions.claimed(job_id, me)
        )

    deadline = time.monotonic() + 90
    # done when the chain shows the job finished and the node has crashed once (a crash
    # after the last transaction comes after the chain already shows it)
    while not (finished() and crashes == 1):
        if time.monotonic() > deadline:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
            tail = proc.stdout.read().decode()[-3000:] if proc.stdout else ""
            pytest.fail(f"job {job_id}: crashes={crashes} {cm.jobs.job(job_id)} {tail}")
        index = int(cm.jobs.functions.participant_of(job_id, me))
        if index and not submitted:
            cm.jobs.submit_round(
                w["aggregator"].account, job_id, 1, "bafkreiround", b"\1" * 32, 1 << (index - 1)
            )
            client.increase_time(WINDOW + 1)
            submitted = True
        restart_if_killed()
        time.sleep(0.1)
    daemon.wait_ready(w["url"], proc)
    # the restarted node settles its records from the chain, then stops cleanly
    db = sqlite3.connect(w["config"].parent / "state.db")
    keys = [f"join:{job_id}", f"finalize:{job_id}", f"claim:{job_id}"]
    deadline = time.monotonic() + 20
    statuses: dict[str, str] = {}
    while time.monotonic() < deadline:
        rows = db.execute(
            f"SELECT key, status FROM actions WHERE key IN ({','.join('?' * len(keys))})", keys
        ).fetchall()
        statuses = dict(rows)
        if statuses.get(keys[0]) == "done" and statuses.get(keys[2]) == "done":
            break
        time.sleep(0.1)
    db.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    assert statuses.get(keys[0]) == "done" and statuses.get(keys[2]) == "done", statuses
    # finalising is anyone's job; a node that began it saw it through
    if point.startswith("finalize"):
        assert statuses.get(keys[1]) == "done", statuses
    assert statuses.get(keys[1]) in ("done", None), statuses
    assert crashes == 1, f"the node never reached {point}"
    assert _events(cm, "Joined", job_id, me) == 1
    assert _events(cm, "JobFinalized", job_id) == 1
    assert _events(cm, "RewardClaimed", job_id, me) == 1
    assert cm.jobs.reward_of(job_id, me) == 0  # claimed, and the whole share paid
