"""Rounds across node processes: a secure training round at the demo's size, ten trainer
node processes and one aggregator on loopback, against the same round in one process.

The network: chainml's embedded dev chain (its own process), ten trainer nodes holding
non-IID (Dirichlet 0.5) shards of the digits data and an aggregator node serving the
demo's job (an MLP 64-32-10 with the x² activation: 2,410 parameters, five local epochs,
SecAgg+), every node a ``chainml node run`` process configured as ``make demo``
configures it.  A job of ``ROUNDS`` rounds is posted once every node answers; measured:

- ``round_s``: wall time between consecutive rounds reaching the chain (the median over
  rounds 2..N: a round as a user waits for it, from the aggregator's decision to start it
  to its transaction mined), and the aggregator's own ``chainml_round_seconds`` (start to
  submission) as a mean;
- ``first_round_s``: from the job's last join to round 1 on chain;
- ``node_start_s``: the slowest node from spawn to answering ``/v1/status``;
- ``idle_cpu_percent``: each node's CPU share over a few idle seconds after the job
  (from ``/proc``), the largest and the mean.

Baseline, same run, same data: the same round in one process (each trainer's local
update, the SecAgg+ round through ``run_in_memory`` with the round parameters the node
derives, the new global model), the median of three (seven in a full run).  Ratios:
``round_s`` against it, and against the issue's target of 0.5 s.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import requests

from chainml.crypto import Identity
from chainml.ledger.anvil import stop_process
from chainml.ledger.bindings import Chainml, JobParams, Role
from chainml.ledger.client import LedgerClient
from chainml.ledger.devchain import DevChainProcess
from chainml.node import daemon, localnet
from chainml.node.demo import JOB as DEMO_JOB
from chainml.storage.local import LocalBlobStore
from chainml.training.data import dirichlet_partition, load
from chainml.training.job import JobConfig
from chainml.training.models import flatten, unflatten
from chainml.training.secagg import RoundParams, SecAggClient, run_in_memory

ETHER = 10**18
PASSWORD = "benchmark"
TRAINERS = 10
TARGET_ROUND_S = 0.5
TARGET_RATIO = 10.0
CLIP = 10.0

# the demo's model and job, its rounds without norm proofs (benchmarks zk times those)
JOB = replace(DEMO_JOB, norm_proofs=False)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _shards(trainers: int = TRAINERS) -> tuple[Any, list[np.ndarray]]:
    data = load("digits", seed=0)
    return data, dirichlet_partition(data.y_train, trainers, alpha=0.5, seed=0)


def in_process_round(
    round_no: int = 1, job: JobConfig = JOB, trainers: int = TRAINERS, clip: float = CLIP
) -> float:
    """Seconds for one secure round of ``job`` (the demo's) in one process, ``trainers``
    Dirichlet(0.5) shards of the digits."""
    data, shards = _shards(trainers)
    ids = [Identity.generate() for _ in range(trainers)]
    roster = {i + 1: a.address for i, a in enumerate(ids)}
    keys = {i + 1: a.x25519.public_bytes for i, a in enumerate(ids)}
    global_params = job.initial_model().params
    started = time.perf_counter()
    params = RoundParams.derive(
        roster,
        keys,
        job.vector_len(),
        chain_id=1,
        jobs="0x" + "11" * 20,
        job_id=1,
        round=round_no,
        attempt=1,
        clip=job.secagg_bound(clip, trainers),
        verifiable=job.verifiable,
    )
    clients = {}
    for i, shard in enumerate(shards, start=1):
        update = job.local_update(
            global_params, data.x_train[shard], data.y_train[shard], round_no=round_no, clip=clip
        )
        clients[i] = SecAggClient(params, i, ids[i - 1], update)
    result = run_in_memory(params, clients)
    total = result.total[:-1] / float(result.total[-1])
    unflatten((flatten(global_params).astype(np.float64) + total).astype(np.float32), global_params)
    return time.perf_counter() - started


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def _network(tmp: Path, url: str, rounds_interval: str) -> tuple[Chainml, list[localnet.NodeDir]]:
    client = LedgerClient(url)
    cm, dev = localnet.deploy(client, tmp)
    data, shards = _shards()
    store = tmp / "store"
    nodes = []
    for i in range(TRAINERS + 1):
        name = f"trainer-{i}" if i < TRAINERS else "aggregator"
        node = localnet.init_node(tmp, name, PASSWORD, rpc=url, work=1 << 10)
        text = node.config.read_text().replace("interval = 1 ", f"interval = {rounds_interval} ")
        text = text.replace('dir = "store"', f'dir = "{store}"')
        home = node.config.parent
        if i < TRAINERS:
            np.savez(home / "data.npz", x=data.x_train[shards[i]], y=data.y_train[shards[i]])
            text = text.replace('# data = "data.npz"', 'data = "data.npz"')
            roles = Role.TRAINER | Role.DATA_OWNER
        else:
            (home / "jobs").mkdir()
            (home / "jobs" / f"{JOB.config_hash.hex()}.json").write_bytes(JOB.encode())
            roles = Role.AGGREGATOR | Role.REQUESTER
        node.config.write_text(text)
        client.transact(dev, to=node.identity.address, value=5 * ETHER)
        cm.registry.register_identity(node.identity, roles, node.url, ETHER)
        nodes.append(node)
    return cm, nodes


def _spawn(config: Path) -> subprocess.Popen[bytes]:
    """``chainml node run`` with its output in node.log beside its config (spawned here,
    not through ``daemon.spawn``, so an older checkout on PYTHONPATH can be measured)."""
    with (config.parent / "node.log").open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "chainml.cli.main", "node", "run", "--config", str(config)],
            env=dict(os.environ, CHAINML_PASSWORD=PASSWORD),
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _metric(text: str, name: str) -> float | None:
    match = re.search(rf"^{re.escape(name)} ([0-9.e+-]+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else None


def across_processes(rounds: int, workdir: str | None = None) -> dict[str, Any]:
    with (
        tempfile.TemporaryDirectory() if workdir is None else _kept(workdir) as tmp_name,
        DevChainProcess(Path(tmp_name) / "chain") as chain,
        ExitStack() as running,
    ):
        tmp = Path(tmp_name)
        cm, nodes = _network(tmp, chain.url, "0.2")
        trainers, aggregator = nodes[:TRAINERS], nodes[TRAINERS]
        log(f"starting {len(nodes)} node processes")
        t0 = time.perf_counter()
        procs = []
        for node in nodes:
            proc = _spawn(node.config)
            running.callback(stop_process, proc, 20)
            procs.append(proc)
        for node, proc in zip(nodes, procs, strict=True):
            daemon.wait_ready(node.url, proc, 180, address=node.identity.address)
        start_s = time.perf_counter() - t0
        params = JobParams(
            aggregator=aggregator.identity.address,
            rounds=rounds,
            min_participants=TRAINERS * 7 // 10,
            max_participants=TRAINERS,
            min_stake=ETHER,
            challenge_window=3600,
            clip_bound=int(CLIP * 1000),
            config_hash=JOB.config_hash,
            config_cid=LocalBlobStore(tmp / "store").put(JOB.encode()),
        )
        job_id = cm.jobs.create_job(aggregator.identity.account, params, ETHER)
        _poll(lambda: cm.jobs.job(job_id).participant_count == TRAINERS, 60)
        joined = time.perf_counter()
        chain_pid = chain.proc.pid if chain.proc else 0
        cpu_before = [_cpu_ticks(p.pid) for p in procs] + [_cpu_ticks(chain_pid)]
        log(f"{TRAINERS} trainers joined; {rounds} rounds")
        done_at = []
        for r in range(1, rounds + 1):
            _poll(lambda r=r: cm.jobs.job(job_id).rounds_done >= r, 120, cm.jobs.client)
            done_at.append(time.perf_counter())
            log(f"round {r} on chain after {done_at[-1] - joined:.2f} s")
        cpu_after = [_cpu_ticks(p.pid) for p in procs] + [_cpu_ticks(chain_pid)]
        hz = os.sysconf("SC_CLK_TCK")
        spent = [(b - a) / hz / rounds for a, b in zip(cpu_before, cpu_after, strict=True)]
        counted = bin(cm.jobs.round(job_id, rounds).bitmap).count("1")
        metrics = requests.get(aggregator.url + "/metrics", timeout=10).text
        agg_sum = _metric(metrics, 'chainml_round_seconds_sum{outcome="done",role="aggregator"}')
        agg_count = _metric(
            metrics, 'chainml_round_seconds_count{outcome="done",role="aggregator"}'
        )
        time.sleep(1.0)  # let the last round's stragglers settle before the idle window
        idle_window = 3.0
        before = [_cpu_ticks(p.pid) for p in procs]
        time.sleep(idle_window)
        after = [_cpu_ticks(p.pid) for p in procs]
        idle = [100.0 * (b - a) / hz / idle_window for a, b in zip(before, after, strict=True)]
        gaps = [b - a for a, b in itertools.pairwise(done_at)]
        return {
            "node_start_s": round(start_s, 2),
            "first_round_s": round(done_at[0] - joined, 3),
            "round_s": round(statistics.median(gaps), 3) if gaps else None,
            "round_s_each": [round(g, 3) for g in gaps],
            "aggregator_round_s_mean": round(agg_sum / agg_count, 3)
            if agg_sum and agg_count
            else None,
            "trainers_counted_last_round": counted,
            # CPU seconds per round (the job's wall time over its rounds, so the rounds'
            # own work and the idle ticks between them): where the two cores went
            "cpu_s_per_round": {
                "aggregator": round(spent[TRAINERS], 3),
                "trainers": round(sum(spent[:TRAINERS]), 3),
                "chain": round(spent[-1], 3),
            },
            "idle_cpu_percent_max": round(max(idle), 2),
            "idle_cpu_percent_mean": round(statistics.mean(idle), 2),
            "trainer_nodes": len(trainers),
        }


@contextlib.contextmanager
def _kept(path: str) -> Iterator[str]:
    """A work directory left in place (to read the nodes' logs after a run)."""
    Path(path).mkdir(parents=True, exist_ok=True)
    yield path


def _poll(probe: Any, timeout: float, client: LedgerClient | None = None) -> None:
    """Until ``probe()`` holds, looked at every 20 ms; with ``client``, only when the chain's
    head has moved (the probe reads the chain: 50 contract calls a second would be load on
    the dev chain that the rounds measured share, a block number costs it next to nothing)."""
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline:
        head = client.block_number() if client is not None else seen + 1
        if head != seen and probe():
            return
        seen = head
        time.sleep(0.02)
    raise TimeoutError("benchmark: timed out")


def run(quick: bool) -> dict[str, Any]:
    rounds = 4 if quick else 10
    log("baseline: the same round in one process")
    baseline = statistics.median(in_process_round(r) for r in range(1, 4 if quick else 8))
    log(f"  {baseline * 1e3:.1f} ms")
    measured = across_processes(rounds)
    per_round = measured["round_s"]
    return {
        "benchmark": "rounds",
        "baseline": "the same secure round (10 trainers' local updates, SecAgg+, new model) "
        "in one process, same run",
        "model_parameters": JOB.vector_len() - 1,
        "rounds": rounds,
        "in_process_round_s": round(baseline, 4),
        **measured,
        "ratio_to_in_process": round(per_round / baseline, 1) if per_round else None,
        "ratio_to_target_0_5_s": round(per_round / TARGET_ROUND_S, 2) if per_round else None,
        "meets_target": bool(
            per_round and per_round <= TARGET_ROUND_S and per_round / baseline <= TARGET_RATIO
        ),
    }
