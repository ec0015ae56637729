"""Training across node processes: four trainer nodes and an aggregator node, every
message an envelope over loopback, SecAgg+ between them, one transaction per round.

Then the crashes: a trainer killed right after it recorded its commitment (the round
completes without it, and it never commits twice), and an aggregator killed in the middle
of a round (the round is aborted cleanly: nothing on chain, no trainer commits twice)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import requests

from chainml.ledger.anvil import stop_process
from chainml.ledger.bindings import JobParams, Role
from chainml.ledger.client import LedgerClient
from chainml.ledger.devchain import DevChainProcess
from chainml.node import daemon, localnet
from chainml.node.rounds import audit_round
from chainml.node.workers import CRASH_ENV
from chainml.storage.local import LocalBlobStore
from chainml.training.data import Dataset, dirichlet_partition, load, load_fashion_mnist
from chainml.training.job import JobConfig
from tests.cli import chainml
from tests.protocol.schemas import RECORD

ETHER = 10**18
PASSWORD = "rounds test"
TRAINERS = 4
CONFIG = JobConfig(n_features=64, n_classes=10, hidden=(16,), epochs=2)


def _state(node: localnet.NodeDir, key: str) -> str | None:
    db = sqlite3.connect(node.config.parent / "state.db")
    try:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    finally:
        db.close()
    return row[0] if row else None


def _network(
    tmp: Path,
    chain_url: str,
    config: JobConfig = CONFIG,
    trainers: int = TRAINERS,
    sybils: int = 0,
    stage_timeout: int = 4,
    data: Dataset | None = None,
):
    """``trainers`` trainer nodes (the last ``sybils`` of them one attacker's: the same
    records with flipped labels) and an aggregator node serving ``config``; the records
    are ``data``'s (the digits by default)."""
    client = LedgerClient(chain_url)
    cm, dev = localnet.deploy(client, tmp)
    data = data or load("digits", seed=0)
    shards = dirichlet_partition(data.y_train, trainers, 0.5, seed=0)
    store = tmp / "store"
    nodes = []
    for i in range(trainers + 1):
        name = f"trainer-{i}" if i < trainers else "aggregator"
        node = localnet.init_node(tmp, name, PASSWORD, rpc=chain_url, work=1 << 10)
        text = node.config.read_text().replace("interval = 1 ", "interval = 0.2 ")
        text = text.replace('dir = "store"', f'dir = "{store}"').replace(
            "stage_timeout = 10", f"stage_timeout = {stage_timeout}"
        )
        if i < trainers:
            shard = shards[i]
            x, y = data.x_train[shard], data.y_train[shard]
            if i >= trainers - sybils:  # one attacker, several identities, one objective
                x, y = data.x_train[:300], (data.y_train[:300] + 1) % 10
            np.savez(node.config.parent / "data.npz", x=x, y=y)
            text = text.replace('# data = "data.npz"', 'data = "data.npz"')
            roles = Role.TRAINER | Role.DATA_OWNER
        else:
            np.savez(node.config.parent / "validation.npz", x=data.x_test, y=data.y_test)
            text = text.replace('# validation = "validation.npz"', 'validation = "validation.npz"')
            (node.config.parent / "jobs").mkdir()
            (node.config.parent / "jobs" / f"{config.config_hash.hex()}.json").write_bytes(
                config.encode()
            )
            roles = Role.AGGREGATOR | Role.REQUESTER
        node.config.write_text(text)
        client.transact(dev, to=node.identity.address, value=5 * ETHER)
        cm.registry.register_identity(node.identity, roles, node.url, ETHER)
        nodes.append(node)
    return client, cm, nodes, LocalBlobStore(store)


def _post_job(
    cm,
    store: LocalBlobStore,
    aggregator: localnet.NodeDir,
    rounds: int,
    config: JobConfig = CONFIG,
    trainers=TRAINERS,
) -> int:
    """Post a job whose configuration is published in ``store`` (its CID on chain)."""
    params = JobParams(
        aggregator=aggregator.identity.address,
        rounds=rounds,
        min_participants=trainers - 1,  # a round counts with one trainer missing
        max_participants=trainers,
        min_stake=ETHER,
        challenge_window=3600,
        clip_bound=10_000,
        config_hash=config.config_hash,
        config_cid=store.put(config.encode()),
    )
    return cm.jobs.create_job(aggregator.identity.account, params, ETHER)


def _start(node: localnet.NodeDir, crash_at: str | None = None):
    env = dict(os.environ, CHAINML_PASSWORD=PASSWORD)
    env.pop(CRASH_ENV, None)
    if crash_at:
        env[CRASH_ENV] = crash_at
    log = (node.config.parent / "node.log").open("ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "chainml.cli.main", "node", "run", "--config", str(node.config)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    daemon.wait_ready(node.url, proc, address=node.identity.address)
    return proc


def _wait(probe, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("timed out")


def test_rounds_across_processes_and_a_trainer_killed_mid_round(tmp_path: Path):
    with DevChainProcess(tmp_path / "chain") as chain:
        # round 1 waits for the killed trainer's masked input long enough for it to come
        # back (a process start, several seconds on a loaded machine): round 2, which
        # starts the moment round 1 is on chain, then finds it running
        client, cm, nodes, store = _network(tmp_path, chain.url, stage_timeout=15)
        trainers, aggregator = nodes[:TRAINERS], nodes[TRAINERS]
        with ExitStack() as running:
            procs = {}
            for i, node in enumerate(trainers):
                # trainer 1 dies right after recording its round-1 commitment
                procs[node.name] = _start(node, "secagg:after-commit" if i == 1 else None)
                running.callback(stop_process, procs[node.name], 20)
            job_id = _post_job(cm, store, aggregator, rounds=2)
            _wait(lambda: cm.jobs.job(job_id).participant_count == TRAINERS)
            agg = _start(aggregator)
            running.callback(stop_process, agg, 20)
            _wait(lambda: procs["trainer-1"].poll() is not None, 60)
            assert procs["trainer-1"].returncode == -signal.SIGKILL
            committed = _state(trainers[1], f"secagg:{job_id}:1")
            assert committed is not None and committed.startswith("committed:")
            # back at once, without the crash: round 1 waits out its stage timeout meanwhile
            procs["trainer-1"] = _start(trainers[1])
            running.callback(stop_process, procs["trainer-1"], 20)
            _wait(lambda: cm.jobs.job(job_id).rounds_done >= 1)
            first = audit_round(cm, store, job_id, 1)
            slot = int(cm.jobs.functions.participant_of(job_id, trainers[1].identity.address))
            assert slot not in first and len(first) == TRAINERS - 1
            _wait(lambda: cm.jobs.job(job_id).rounds_done == 2)
            second = audit_round(cm, store, job_id, 2)
            assert len(second) == TRAINERS
            # any auditor, from the command line, with no keystore: both rounds check out
            audit = chainml("job", "audit", str(job_id), "--config", str(aggregator.config))
            assert audit.returncode == 0, audit.stdout + audit.stderr
            assert audit.stdout.count("checks out") == 2
            status = chainml("job", "status", str(job_id), "--config", str(trainers[0].config))
            assert status.returncode == 0 and "2 of 2" in status.stdout
            # the restarted trainer kept its one round-1 commitment and made no other
            assert _state(trainers[1], f"secagg:{job_id}:1") == committed
            accuracy = _state(aggregator, f"accuracy:{job_id}:2")
            assert accuracy is not None and float(accuracy) > 0.5
            metrics = requests.get(aggregator.url + "/metrics", timeout=5).text
            assert 'chainml_round_seconds_count{outcome="done",role="aggregator"} 2.0' in metrics
            assert 'chainml_secagg_stage_seconds_count{stage="masked"}' in metrics
            page = requests.get(aggregator.url + "/", timeout=10).text
            chart = page[page.index(f'id="accuracy-chart-{job_id}"') :]
            assert chart[: chart.index("</svg>")].count("<circle") == 2


def test_an_aggregator_killed_mid_round_aborts_it_cleanly(tmp_path: Path):
    with DevChainProcess(tmp_path / "chain") as chain:
        client, cm, nodes, store = _network(tmp_path, chain.url)
        trainers, aggregator = nodes[:TRAINERS], nodes[TRAINERS]
        with ExitStack() as running:
            for node in trainers:
                running.callback(stop_process, _start(node), 20)
            job_id = _post_job(cm, store, aggregator, rounds=1)
            _wait(lambda: cm.jobs.job(job_id).participant_count == TRAINERS)
            agg = _start(aggregator, "aggregator:masked")  # dies holding every masked input
            _wait(lambda: agg.poll() is not None, 60)
            assert _state(aggregator, f"round:{job_id}:1") == "running:1"
            agg = _start(aggregator)
            running.callback(stop_process, agg, 20)
            # the interrupted attempt is void; every trainer already committed in it, so the
            # retries find no one willing to sign a second commitment, and abort
            _wait(
                lambda: (_state(aggregator, f"round:{job_id}:1") or "").startswith("aborted:3"), 90
            )
            assert cm.jobs.job(job_id).rounds_done == 0
            for node in trainers:
                assert (_state(node, f"secagg:{job_id}:1") or "").startswith("committed:")


def test_below_the_threshold_a_round_aborts_and_nothing_reaches_the_chain(tmp_path: Path):
    """Two of four trainers are gone when the round starts: with two key adverts the round
    is under SecAgg+'s quorum of three and aborts (so do its retries, which the two that
    keyed in join again with fresh keys); the job stays at zero rounds, and the two
    trainers that answered never committed to an input."""
    with DevChainProcess(tmp_path / "chain") as chain:
        client, cm, nodes, store = _network(tmp_path, chain.url)
        trainers, aggregator = nodes[:TRAINERS], nodes[TRAINERS]
        with ExitStack() as running:
            procs = [_start(node) for node in trainers]
            for proc in procs:
                running.callback(stop_process, proc, 20)
            job_id = _post_job(cm, store, aggregator, rounds=1)
            _wait(lambda: cm.jobs.job(job_id).participant_count == TRAINERS)
            for proc in procs[:2]:
                stop_process(proc, 20)
            running.callback(stop_process, _start(aggregator), 20)
            _wait(
                lambda: (_state(aggregator, f"round:{job_id}:1") or "").startswith("aborted:3"), 90
            )
            assert cm.jobs.job(job_id).rounds_done == 0
            log = (aggregator.config.parent / "node.log").read_text()
            assert "(attempt 1) aborted: 2 clients sent keys, 3 needed" in log
            assert log.count(") aborted: ") == 3  # each retry has the same two trainers
            for node in trainers[2:]:  # they keyed in, last in attempt 3; no input sent
                assert _state(node, f"secagg:{job_id}:1") == "keys:3"


def test_a_robust_job_flags_one_attacker_s_sybil_trainers(tmp_path):
    """Plaintext updates to the aggregator, Multi-Krum over them, FoolsGold over the job:
    two trainer nodes run by one attacker (same records, flipped labels) are flagged as
    Sybil poisoners on the aggregator's /v1/alerts; no honest trainer is; each round's
    record checks out against the signed commitments on chain."""
    config = JobConfig(n_features=64, n_classes=10, hidden=(32,), epochs=5, aggregation="krum")
    with DevChainProcess(tmp_path / "chain") as chain, ExitStack() as running:
        client, cm, nodes, store = _network(tmp_path, chain.url, config, trainers=6, sybils=2)
        trainers, aggregator = nodes[:-1], nodes[-1]
        for node in nodes:
            running.callback(stop_process, _start(node), 20)
        job_id = _post_job(cm, store, aggregator, rounds=2, config=config, trainers=6)
        _wait(lambda: cm.jobs.job(job_id).rounds_done == 2, timeout=180)
        for r in (1, 2):
            assert len(audit_round(cm, store, job_id, r)) == 6
            RECORD.validate(json.loads(store.get(cm.jobs.round(job_id, r).aggregate_cid)))
        alerts = requests.get(aggregator.url + "/v1/alerts", timeout=5).json()
        flagged = {a["subject"].lower() for a in alerts if a["kind"] == "sybil_poisoner"}
        sybils = {n.identity.address.lower() for n in trainers[-2:]}
        assert flagged == sybils
        accuracy = _state(aggregator, f"accuracy:{job_id}:2")
        assert accuracy is not None and float(accuracy) > 0.5


def test_a_cnn_job_trains_across_node_processes(tmp_path):
    """A convolutional network (the Fashion-MNIST CNN CKKS serves: 4 filters 7×7 stride 3,
    ReLU's degree-2 fit, 2×2 average pooling, dense) trained by four trainer nodes on
    their own images under SecAgg+ with lattice commitments: both rounds check out from
    the chain and the public blobs, and the model the aggregator holds classifies the
    held-out images far better than chance."""
    config = JobConfig(
        n_features=784,
        n_classes=10,
        hidden=(),
        model="cnn",
        activation="relu_poly",
        image=(1, 28, 28),
        epochs=3,
        lr=0.05,
    )
    full = load_fashion_mnist()
    data = Dataset(
        full.name, full.x_train[:4000], full.y_train[:4000], full.x_test[:500], full.y_test[:500]
    )
    with DevChainProcess(tmp_path / "chain") as chain, ExitStack() as running:
        client, cm, nodes, store = _network(tmp_path, chain.url, config, data=data)
        aggregator = nodes[-1]
        for node in nodes:
            running.callback(stop_process, _start(node), 20)
        job_id = _post_job(cm, store, aggregator, rounds=2, config=config)
        _wait(lambda: cm.jobs.job(job_id).rounds_done == 2, timeout=180)
        for r in (1, 2):
            assert audit_round(cm, store, job_id, r) == tuple(range(1, TRAINERS + 1))
        accuracy = _state(aggregator, f"accuracy:{job_id}:2")
        # chance is 0.1; two rounds on 1,000 non-IID images each reached 0.53-0.56 here
        assert accuracy is not None and float(accuracy) > 0.35, accuracy


def test_trainers_join_only_a_job_whose_published_configuration_fits_their_records(tmp_path):
    """Each trainer node fetches a new job's published configuration, checks it against
    the job's hash and its own records, and joins only if both hold: a job for 32-feature
    records, and a job whose published blob is not the hashed configuration, get no one;
    the fitting job posted after them gets every trainer."""
    with DevChainProcess(tmp_path / "chain") as chain, ExitStack() as running:
        client, cm, nodes, store = _network(tmp_path, chain.url)
        trainers, aggregator = nodes[:TRAINERS], nodes[TRAINERS]
        for node in trainers:
            running.callback(stop_process, _start(node), 20)
        misfit = _post_job(
            cm,
            store,
            aggregator,
            rounds=1,
            config=JobConfig(n_features=32, n_classes=10, hidden=(8,), epochs=1),
        )
        params = JobParams(
            aggregator=aggregator.identity.address,
            rounds=1,
            min_participants=TRAINERS - 1,
            max_participants=TRAINERS,
            min_stake=ETHER,
            challenge_window=3600,
            clip_bound=10_000,
            config_hash=CONFIG.config_hash,
            config_cid=store.put(b"not the configuration that hashes to config_hash"),
        )
        forged = cm.jobs.create_job(aggregator.identity.account, params, ETHER)
        fitting = _post_job(cm, store, aggregator, rounds=1)
        _wait(lambda: cm.jobs.job(fitting).participant_count == TRAINERS)
        assert cm.jobs.job(misfit).participant_count == 0
        assert cm.jobs.job(forged).participant_count == 0
        log = (trainers[0].config.parent / "node.log").read_text()
        assert f"job {misfit}: not joined: job {misfit} wants 32 features" in log
        assert f"job {forged}: not joined" in log and "not the hashed one" in log
