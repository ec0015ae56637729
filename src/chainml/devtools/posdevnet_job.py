"""chainml's nodes on the proof-of-stake devnet: a job, a partitioned chain node, Sybils.

On a started ``chainml.devtools.posdevnet.Devnet`` (three validator pairs on the hosts
``pos-1..3``), each chainml node runs inside a devnet host and talks to that host's own
execution client (``[chain] rpc``), with ``settle = "finalized"`` and the other two hosts'
execution RPCs as ``[monitor] endpoints``; its blob store is the embedded IPFS peer on its
host's bridge address, peered with the aggregator's.  The aggregator and one trainer share
``pos-1``; ``pos-2`` and ``pos-3`` hold a trainer each (ports told apart by ``PLACES``).

- ``deploy``: chainml's contracts compiled for the devnet's EVM (Paris; the committed
  artifacts target Prague) and deployed through ``pos-1`` as ``deploy_system`` does;
- ``prepare`` / ``running_nodes``: the node homes, funded each from a funder of its own
  (so the monitor's Sybil check sees honest parties as separate), registered; the node
  processes started on their hosts;
- ``run_job``: the job posted and run, with the times a node waits for finality (the job's
  creation settled before the trainers join) and each round's record until finalized;
- ``sybils``: one funder registers identities holding the majority of the stake: every
  node's monitor raises ``common_funder`` and ``stake_majority`` (on hosts other than the
  funder's);
- ``partition_alerts``: a chain node's peer-to-peer links cut (its RPC still reachable,
  as for a node whose chain client lost its peers), the alerts of the chainml node on that
  host: its own endpoint lagging / disagreeing (``endpoint_behind``,
  ``endpoints_disagree``, ``acting_stopped``), then after the heal ``deep_reorg`` where it
  had built blocks of its own, and its view released.

``python -m chainml.devtools.posdevnet_job`` runs them all once on a fresh devnet (about
15 minutes; needs root and ``make posdevnet``) and prints the figures as JSON;
``benchmarks/posdevnet.py`` measures them in ``make bench``.
"""

from __future__ import annotations

import atexit
import itertools
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from chainml.devtools import hostjob
from chainml.devtools.hosts import Host, Network
from chainml.devtools.posdevnet import (
    EL_RPC_PORT,
    FUNDED_KEY,
    SECONDS_PER_SLOT,
    SLOTS_PER_EPOCH,
    Devnet,
    DevnetError,
)
from chainml.ledger.anvil import stop_process
from chainml.ledger.bindings import Chainml, JobParams, Role
from chainml.ledger.client import LedgerClient, LocalSigner
from chainml.ledger.deploy import Deployment
from chainml.node import daemon, localnet
from chainml.training.data import dirichlet_partition, load

__all__ = [
    "PLACES",
    "DevnetJob",
    "deploy",
    "paris_contracts",
    "partition_alerts",
    "prepare",
    "run_job",
    "running_nodes",
    "sybils",
]

ETHER = 10**18
EPOCH_S = SECONDS_PER_SLOT * SLOTS_PER_EPOCH
# node -> (host, API port, IPFS swarm port): each node beside its host's chain node
PLACES: dict[str, tuple[str, int, int]] = {
    "aggregator": ("pos-1", 8701, 4001),
    "trainer-1": ("pos-2", 8701, 4001),
    "trainer-2": ("pos-3", 8701, 4001),
    "trainer-3": ("pos-1", 8702, 4002),
}
TRAINERS = [n for n in PLACES if n.startswith("trainer-")]
P2P_CUT_KEEPS = (EL_RPC_PORT,)  # a chain node partitioned: its peers cut, its RPC not


class DevnetJobError(DevnetError):
    """chainml's nodes did not do on the devnet what was asked of them in time."""


Compiled = dict[str, tuple[list[dict[str, Any]], bytes]]


def paris_contracts() -> Compiled:
    """chainml's contracts compiled for the Paris EVM the devnet runs (its genesis has no
    Shanghai, and Lodestar 1.5.1 predates Deneb): the committed artifacts target Prague
    and their deployment runs out of gas there.  Same sources, same ABI (checked)."""
    from vyper.compiler import compile_from_file_input
    from vyper.compiler.input_bundle import FilesystemInputBundle
    from vyper.compiler.settings import Settings

    from chainml.ledger import artifacts

    bundle = FilesystemInputBundle([artifacts.CONTRACTS_DIR])
    compiled = {}
    for name in artifacts.CONTRACTS:
        out = compile_from_file_input(
            bundle.load_file(artifacts.CONTRACTS_DIR / f"{name}.vy"),
            input_bundle=bundle,
            output_formats=["abi", "bytecode"],
            settings=Settings(evm_version="paris"),
        )
        if out["abi"] != artifacts.load(name).abi:
            raise RuntimeError(f"{name}: the Paris build has another ABI")
        compiled[name] = (out["abi"], bytes.fromhex(out["bytecode"].removeprefix("0x")))
    return compiled


def deploy(
    devnet: Devnet, compiled: Compiled, host: str = "pos-1"
) -> tuple[Deployment, float, int]:
    """The contracts deployed through ``host``'s execution RPC as ``deploy_system`` does
    (each with its constructor arguments, then Jobs set as the Registry's slasher): the
    deployment, the seconds it took and the block of the last transaction."""
    from eth_utils.address import to_checksum_address

    from chainml.ledger.abi import ContractABI
    from chainml.ledger.client import BoundContract
    from chainml.ledger.deploy import SystemParameters, constructor_args

    signer = LocalSigner.from_key(FUNDED_KEY)

    def run() -> tuple[Deployment, float, int]:
        client = LedgerClient(devnet.rpc_url(host), timeout=120, poll_interval=0.5)
        try:
            started = time.monotonic()
            start_block = client.block_number()
            deployed: dict[str, str] = {}
            for name, (abi, code) in compiled.items():
                args = constructor_args(name, SystemParameters(), deployed)
                address, _ = client.deploy(signer, ContractABI(abi), code, args)
                deployed[name] = to_checksum_address(address)
            registry = BoundContract(
                client, deployed["Registry"], ContractABI(compiled["Registry"][0])
            )
            receipt = registry.transact(signer, "set_slasher", deployed["Jobs"])
            deployment = Deployment(chain_id=client.chain_id, block=start_block, addresses=deployed)
            return deployment, time.monotonic() - started, receipt.block_number
        finally:
            client.close()

    return devnet.pairs[host].host.call(run, timeout=900)


@dataclass
class DevnetJob:
    """The nodes of a job on the devnet, prepared (homes written, funded, registered)."""

    devnet: Devnet
    root: Path
    deployment: Deployment
    nodes: dict[str, localnet.NodeDir]
    aggregator_peer: str
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def host(self, node: str) -> Host:
        return self.devnet.pairs[PLACES[node][0]].host

    def cm(self, node: str) -> Chainml:
        """Bindings through ``node``'s own host's execution RPC (call on that host)."""
        client = LedgerClient(self.devnet.rpc_url(PLACES[node][0]), timeout=60, poll_interval=0.5)
        return Chainml.connect(client, self.deployment)

    def alerts(self, node: str) -> list[dict[str, Any]]:
        """``node``'s ``GET /v1/alerts``, from its own host."""
        import requests

        url = self.nodes[node].url
        return list(
            self.host(node).call(lambda: requests.get(url + "/v1/alerts", timeout=10).json())
        )

    def log(self, node: str) -> str:
        return (self.nodes[node].config.parent / "node.log").read_text(errors="replace")


def _configure(
    node: localnet.NodeDir, devnet: Devnet, name: str, peers: Sequence[str]
) -> localnet.NodeDir:
    """The node's config for its place: API and IPFS peer on its host's bridge address,
    ``settle = "finalized"``, the other hosts' execution RPCs as monitor endpoints."""
    host_name, port, swarm = PLACES[name]
    host = devnet.pairs[host_name].host
    others = [devnet.rpc_url(h) for h in devnet.pairs if h != host_name]
    text = node.config.read_text()
    text = re.sub(r'listen = "127\.0\.0\.1:\d+"', f'listen = "{host.address}:{port}"', text)
    text = text.replace('# settle = "finalized"', 'settle = "finalized"')
    text = text.replace(
        "endpoints = []", "endpoints = [" + ", ".join(f'"{u}"' for u in others) + "]"
    )
    text = text.replace("interval = 1 ", "interval = 0.5 ").replace(
        "interval = 5 ", "interval = 2 "
    )
    listed = ", ".join(f'"{p}"' for p in peers)
    storage = (
        '[storage]\nbackend = "ipfs"\ndir = "ipfs"\n'
        f"swarm_port = {swarm}\n"
        f'swarm_address = "{host.address}/{host.network.prefixlen}"\n'
        f"peers = [{listed}]\ntimeout = 30\n\n"
    )
    text = re.sub(r"\[storage\][^\[]*", storage, text, count=1)
    node.config.write_text(text)
    return replace(node, url=f"http://{host.address}:{port}")


def prepare(devnet: Devnet, root: Path, deployment: Deployment) -> DevnetJob:
    """Every node's home, configured for its place, its account funded from a funder of
    its own and registered with 1 ether of stake."""
    root.mkdir(parents=True, exist_ok=True)
    deployment.save(root / "deployment.json")
    agg_host, _, agg_swarm = PLACES["aggregator"]
    peer = hostjob.BlobPeer(
        devnet.pairs[agg_host].host, root / "aggregator" / "ipfs", port=agg_swarm
    )
    aggregator_peer = peer.multiaddr
    peer.close()
    data = load("digits", seed=0)
    shards = dirichlet_partition(data.y_train, len(TRAINERS), 0.5, seed=0)
    nodes: dict[str, localnet.NodeDir] = {}
    for name, (host_name, _, _) in PLACES.items():
        node = localnet.init_node(
            root, name, hostjob.PASSWORD, rpc=devnet.rpc_url(host_name), work=1 << 10
        )
        home = node.config.parent
        text = node.config.read_text()
        if name == "aggregator":
            np.savez(home / "validation.npz", x=data.x_test, y=data.y_test)
            (home / "jobs").mkdir(exist_ok=True)
            config = hostjob.CONFIG
            (home / "jobs" / f"{config.config_hash.hex()}.json").write_bytes(config.encode())
            text = text.replace('# validation = "validation.npz"', 'validation = "validation.npz"')
            peers: list[str] = []
        else:
            shard = shards[TRAINERS.index(name)]
            np.savez(home / "data.npz", x=data.x_train[shard], y=data.y_train[shard])
            text = text.replace('# data = "data.npz"', 'data = "data.npz"')
            peers = [aggregator_peer]
        node.config.write_text(text)
        nodes[name] = _configure(node, devnet, name, peers)
    job = DevnetJob(devnet, root, deployment, nodes, aggregator_peer)
    dev = LocalSigner.from_key(FUNDED_KEY)

    def fund_and_register() -> None:
        cm = job.cm("aggregator")
        client = cm.registry.contract.client
        try:
            for name, node in nodes.items():
                funder = LocalSigner.generate()  # a source of funds of its own, as a party has
                client.transact(dev, to=funder.address, value=6 * ETHER)
                client.transact(funder, to=node.identity.address, value=5 * ETHER)
                roles = (
                    Role.AGGREGATOR | Role.REQUESTER
                    if name == "aggregator"
                    else Role.TRAINER | Role.DATA_OWNER
                )
                cm.registry.register_identity(node.identity, roles, node.url, ETHER)
        finally:
            client.close()

    job.host("aggregator").call(fund_and_register, timeout=900)
    return job


@contextmanager
def running_nodes(job: DevnetJob) -> Iterator[DevnetJob]:
    """Every node's ``chainml node run`` on its host (the aggregator's first: the others'
    IPFS peers dial it), each answering; all stopped at the end."""

    def start(name: str) -> None:
        node = job.nodes[name]
        job.procs[name] = hostjob.start_node(job.host(name), node, node.config.parent / "node.log")

    def ready(name: str) -> None:
        node = job.nodes[name]
        try:
            job.host(name).call(
                daemon.wait_ready, node.url, job.procs[name], 180, address=node.identity.address,
                timeout=200,
            )  # fmt: skip
        except daemon.NodeStartError as exc:
            raise DevnetJobError(
                f"{name}'s node did not start: {exc}\n{job.log(name)[-2000:]}"
            ) from exc

    try:
        start("aggregator")
        ready("aggregator")
        for name in TRAINERS:
            start(name)
        for name in TRAINERS:
            ready(name)
        yield job
    finally:
        for proc in job.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in job.procs.values():
            stop_process(proc, 20)


def _poll(probe: Callable[[], Any], what: str, timeout: float, every: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DevnetJobError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


def run_job(job: DevnetJob, rounds: int = 2) -> dict[str, Any]:
    """Post the job from the aggregator's host and time it: until its creation is final
    (what the trainers' workers wait for with ``settle = "finalized"``), until every
    trainer joined, each round on chain, and each round's record until finalized."""
    agg = job.host("aggregator")
    cm = agg.call(job.cm, "aggregator")
    aggregator = job.nodes["aggregator"]
    params = JobParams(
        aggregator=aggregator.identity.address,
        rounds=rounds,
        min_participants=len(TRAINERS) - 1,
        max_participants=len(TRAINERS),
        min_stake=ETHER,
        challenge_window=3600,
        clip_bound=10_000,
        config_hash=hostjob.CONFIG.config_hash,
    )

    def on(fn: Callable[[], Any]) -> Any:
        return agg.call(fn, timeout=60)

    def finalized() -> int:
        return int(str(cm.registry.contract.client.block("finalized")["number"]), 16)

    started = time.monotonic()
    job_id = agg.call(cm.jobs.create_job, aggregator.identity.account, params, ETHER, timeout=300)
    posted = time.monotonic()
    created_block = on(
        lambda: max(
            e.block_number
            for e in cm.jobs.contract.past_events("JobCreated", where={"job_id": job_id})
        )
    )
    _poll(lambda: on(finalized) >= created_block, "the job's creation to be finalized", 8 * EPOCH_S)
    creation_final = time.monotonic()
    _poll(
        lambda: on(lambda: cm.jobs.job(job_id).participant_count) == len(TRAINERS),
        "every trainer to join",
        6 * EPOCH_S,
    )
    joined = time.monotonic()
    marks = [joined]
    recorded_at: list[float] = []
    for r in range(1, rounds + 1):
        _poll(
            lambda r=r: on(lambda: cm.jobs.job(job_id).rounds_done) >= r,  # type: ignore[misc]
            f"round {r} on chain",
            300,
            0.5,
        )
        marks.append(time.monotonic())
        recorded_at.append(marks[-1])
    blocks = on(
        lambda: {
            int(e.args["round"]): e.block_number
            for e in cm.jobs.contract.past_events("RoundRecorded", where={"job_id": job_id})
        }
    )
    to_final: list[float] = []
    for r in range(1, rounds + 1):
        _poll(lambda r=r: on(finalized) >= blocks[r], f"round {r}'s record finalized", 8 * EPOCH_S)  # type: ignore[misc]
        to_final.append(time.monotonic() - recorded_at[r - 1])
    round_s = [b - a for a, b in itertools.pairwise(marks)]
    attempts = {
        r: hostjob._meta(aggregator.config.parent, f"round:{job_id}:{r}")
        for r in range(1, rounds + 1)
    }
    accuracy = hostjob._meta(aggregator.config.parent, f"accuracy:{job_id}:{rounds}")
    # an honest chain whose head forks for a slot (a late block) holds a node's view too
    held = {n: sum(a["kind"] == "acting_stopped" for a in job.alerts(n)) for n in job.nodes}
    cm.registry.contract.client.close()
    return {
        "job_id": job_id,
        "nodes": {n: f"{PLACES[n][0]}:{PLACES[n][1]}" for n in PLACES},
        "settle": "finalized",
        "rounds": rounds,
        "trainers": len(TRAINERS),
        "post_s": round(posted - started, 1),
        "creation_to_finalized_s": round(creation_final - posted, 1),
        "joined_after_post_s": round(joined - posted, 1),
        "round_s": [round(x, 1) for x in round_s],
        "round_record_to_finalized_s": [round(x, 1) for x in to_final],
        "round_s_if_each_waited_for_its_record_finalized": [
            round(a + b, 1) for a, b in zip(round_s, to_final, strict=True)
        ],
        "rounds_recorded_in_blocks": blocks,
        "attempts": attempts,
        "accuracy": float(accuracy) if accuracy is not None else None,
        "acting_stopped_since_start": held,
    }


def sybils(job: DevnetJob, *, funder_host: str = "pos-2", count: int = 5) -> dict[str, Any]:
    """One funder on ``funder_host`` funds ``count`` identities that register with 1 ether
    of stake each (more than the honest parties' together); the alerts of every node's
    monitor after it, and how long until the last node raised them."""
    from chainml.crypto import Identity

    host = job.devnet.pairs[funder_host].host
    whale = LocalSigner.generate()
    dev = LocalSigner.from_key(FUNDED_KEY)

    def register() -> None:
        client = LedgerClient(job.devnet.rpc_url(funder_host), timeout=60, poll_interval=0.5)
        cm = Chainml.connect(client, job.deployment)
        try:
            client.transact(dev, to=whale.address, value=(count + 1) * 2 * ETHER)
            for _ in range(count):
                ident = Identity.generate()
                client.transact(whale, to=ident.address, value=ETHER + ETHER // 10)
                cm.registry.register_identity(ident, Role.VALIDATOR, "http://10.0.0.1", ETHER)
        finally:
            client.close()

    started = time.monotonic()
    host.call(register, timeout=900)
    registered = time.monotonic()
    subject = whale.address.lower()
    seen: dict[str, list[str]] = {}

    def raised() -> bool:
        for name in job.nodes:
            kinds = {a["kind"] for a in job.alerts(name) if a["subject"].lower() == subject}
            seen[name] = sorted(kinds)
        return all({"common_funder", "stake_majority"} <= set(k) for k in seen.values())

    try:
        _poll(raised, "every node's monitor to see the Sybils", 120, 2)
    except DevnetJobError:
        pass
    return {
        "funder_host": funder_host,
        "identities": count,
        "stake": f"{count} ether of {count + len(job.nodes)}",
        "register_s": round(registered - started, 1),
        "alerts_by_node": seen,
        "every_node_alerted": all(
            {"common_funder", "stake_majority"} <= set(k) for k in seen.values()
        ),
        "seconds_after_registering": round(time.monotonic() - registered, 1),
    }


def _since(alerts: list[dict[str, Any]], at: float) -> list[dict[str, Any]]:
    return [a for a in alerts if float(a.get("at", 0)) >= at]


def partition_alerts(job: DevnetJob, *, node: str = "trainer-2", epochs: int = 3) -> dict[str, Any]:
    """Cut ``node``'s host's chain node off its peers (its RPC port stays open, so the
    chainml nodes still compare endpoints) for ``epochs``; the alerts of the chainml node
    on that host and of the aggregator's (on another host), then heal, rejoin, and the
    reorganisation alert of the minority's node."""
    devnet = job.devnet
    lone = PLACES[node][0]
    others = [h for h in devnet.pairs if h != lone]
    watcher = "aggregator"
    start_heads = {h: devnet.head(h) for h in devnet.pairs}
    start_head = start_heads[lone]
    cut_at = time.time()
    devnet.partition([lone], keep_tcp_ports=P2P_CUT_KEEPS)
    first: dict[str, float] = {}
    lag_seen = 0
    series: list[tuple[int, int, int]] = []  # (seconds since the cut, its head, the others')
    try:
        deadline = time.monotonic() + epochs * EPOCH_S
        while time.monotonic() < deadline:
            time.sleep(3)
            for a in _since(job.alerts(node), cut_at):
                first.setdefault(a["kind"], float(a["at"]) - cut_at)
            heads = {h: devnet.head(h) for h in (lone, *others)}
            top = max(heads[o].latest for o in others)
            lag_seen = max(lag_seen, top - heads[lone].latest)
            series.append((round(time.time() - cut_at), heads[lone].latest, top))
        end_heads = {h: devnet.head(h) for h in devnet.pairs}
        lone_head = end_heads[lone]
        minority_alerts = _since(job.alerts(node), cut_at)
        watcher_alerts = _since(job.alerts(watcher), cut_at)
    finally:
        devnet.heal()
    healed_at = time.time()
    how, rejoin = devnet.rejoin(lone, timeout=5 * EPOCH_S)
    own = devnet.rpc_url(lone)

    def reorged() -> bool:
        return any(a["kind"] == "deep_reorg" for a in _since(job.alerts(node), healed_at))

    minority_built = lone_head.latest - start_head.latest
    try:
        _poll(reorged, f"{node}'s deep_reorg alert", 60, 2)
    except DevnetJobError:
        pass
    after = _since(job.alerts(node), healed_at)
    released = _poll(lambda: "the node acts again" in job.log(node), f"{node} acting again", 120, 2)
    return {
        "partitioned": f"{lone}'s chain node: its peer-to-peer links cut for {epochs} epochs"
        f" (its RPC port {EL_RPC_PORT} left open)",
        "node": f"{node} on {lone}, [chain] rpc {own}, monitor endpoints on {', '.join(others)}",
        "minority_blocks_alone": minority_built,
        "finalized_gained": {
            h: end_heads[h].finalized - start_heads[h].finalized for h in devnet.pairs
        },
        "majority_blocks": end_heads[others[0]].latest - start_heads[others[0]].latest,
        "max_head_lag_blocks": lag_seen,
        "heads_every_15_s": series[::5],
        "alerts_on_partitioned_host": sorted({a["kind"] for a in minority_alerts}),
        "first_alert_s": {k: round(v, 1) for k, v in sorted(first.items(), key=lambda kv: kv[1])},
        "own_endpoint_named": any(a["subject"].startswith(own) for a in minority_alerts),
        "alerts_on_aggregator_host": sorted({a["kind"] for a in watcher_alerts}),
        # from another host: pos-3's endpoint behind, or the endpoints on two forks (the
        # monitor cannot tell which fork is whose, and holds its own node's view too)
        "aggregator_names_the_cut_off_endpoint": any(
            (a["kind"] == "endpoint_behind" and a["subject"] == own)
            or (a["kind"] == "endpoints_disagree" and own in a["detail"])
            for a in watcher_alerts
        ),
        "reconnected_by": how,
        "rejoin_s": round(rejoin, 1),
        "alerts_after_heal": sorted({a["kind"] for a in after}),
        "deep_reorg": [a["subject"] for a in after if a["kind"] == "deep_reorg"],
        "acting_again": bool(released),
    }


def dev_chain_baseline(rounds: int = 2) -> dict[str, Any]:
    """The same job (the same three trainers' data, configuration and rounds) across hosts
    on chainml's dev chain, where every block is final at once: its round times."""
    with tempfile.TemporaryDirectory(prefix="chainml-hosts-") as tmp:
        result = hostjob.run(Path(tmp), trainers=len(TRAINERS), rounds=rounds, stage_timeout=10)
    return {
        "chain": "chainml's dev chain on its own host (a block per transaction, final at once)",
        "round_s": [round(x, 2) for x in result.round_seconds],  # as run_job's: from the joins
        "leftovers": result.leftovers,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Everything once on a fresh three-pair devnet, then the dev-chain baseline."""
    import argparse

    from chainml.devtools.hosts import unavailable
    from chainml.devtools.posdevnet import DEFAULT_DIR, installed

    parser = argparse.ArgumentParser(prog="python -m chainml.devtools.posdevnet_job")
    parser.add_argument("directory", nargs="?", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="keep the nodes' homes and logs here")
    args = parser.parse_args(argv)
    reason = unavailable()
    if reason or not installed(args.directory):
        print(f"cannot run: {reason or 'make posdevnet first'}", file=sys.stderr)
        return 2

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    out: dict[str, Any] = {}
    compiled = paris_contracts()
    root = args.keep or Path(tempfile.mkdtemp(prefix="chainml-posdevjob-"))
    names = ["pos-1", "pos-2", "pos-3"]
    keep = args.keep is not None
    if not keep:
        atexit.register(shutil.rmtree, root, ignore_errors=True)
    with Network(names) as net, Devnet(net, args.directory, log=say, keep_logs=keep) as devnet:
        devnet.start(timeout=180)
        devnet.wait_finalized(0, timeout=8 * EPOCH_S + 60)
        out["first_finality_s"] = round(time.time() - devnet.genesis_time, 1)
        say(f"finalized: {out['first_finality_s']} s after genesis")
        deployment, deploy_s, _ = deploy(devnet, compiled)
        out["deploy_s"] = round(deploy_s, 1)
        say(f"deployed in {deploy_s:.0f} s")
        prepared = prepare(devnet, root, deployment)
        with running_nodes(prepared) as job:
            say("every node answers on its host")
            out["job"] = run_job(job, args.rounds)
            say(json.dumps(out["job"]))
            out["sybils"] = sybils(job)
            say(json.dumps(out["sybils"]))
            out["partition"] = partition_alerts(job)
            say(json.dumps(out["partition"]))
    out["leftovers"] = net.leftovers()
    out["dev_chain"] = dev_chain_baseline(args.rounds)
    print(json.dumps(out))
    return 0 if not out["leftovers"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
