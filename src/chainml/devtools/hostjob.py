"""A training job across hosts: each party on its own network namespace (``hosts``).

The hosts: ``chain`` (chainml's embedded dev chain, serving JSON-RPC on its bridge
address), ``aggregator`` (the requester's node: aggregates, holds the job configuration
and a held-out set) and ``trainer-1..N`` (a node each, holding its own Dirichlet shard of
the digits data).  Every node is a ``chainml node run`` process inside its host, its API
bound to its bridge address and registered on chain under that URL, its chain the chain
host's URL, and its blob store the embedded kubo engine (``[storage] backend = "ipfs"``)
listening on its bridge address, connected explicitly to the aggregator's engine (no
bootstrap, no MDNS, no DHT beyond the peers named).  No directory is shared: each node has
its own home, and what the aggregator publishes (sealed aggregates, round records,
transcripts, masked inputs) reaches anyone else only by CID over the bridge.

The driver (this process) deploys the contracts and posts the job from a thread inside the
aggregator's host (``Host.call``): the requester's own tools, on the requester's machine.
An auditor on ``trainer-1``'s host (``chainml.devtools.hostpeer``, an IPFS peer of its
own) then audits every round from the chain and the blobs it fetched by CID from the
aggregator's host, and pins what it read; another peer on ``trainer-2``'s host times the
fetch of a round record.

Used by ``tests/hosts``, ``benchmarks/hosts.py`` and ``make demo-hosts``.
"""

from __future__ import annotations

import itertools
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from chainml.devtools.hosts import Host, LinkBytes, Network
from chainml.ledger.anvil import stop_process
from chainml.ledger.bindings import Chainml, JobParams, Role
from chainml.ledger.client import LedgerClient
from chainml.node import daemon, localnet
from chainml.training.data import dirichlet_partition, load
from chainml.training.job import JobConfig

ETHER = 10**18
PASSWORD = "hosts"  # noqa: S105 (throw-away keystores of a test network)
CHAIN_PORT = 8545
NODE_PORT = 8701
SWARM_PORT = 4001
THROTTLE_KBIT = 128  # a masked input of the test job takes a second or two at this rate
RELAY_OFFSET = 10_000  # with latency: each service's delay relay listens on port + this
CONFIG = JobConfig(n_features=64, n_classes=10, hidden=(16,), epochs=2)

T = TypeVar("T")


def host_names(trainers: int) -> list[str]:
    return ["chain", "aggregator", *(f"trainer-{i}" for i in range(1, trainers + 1))]


class BlobPeer:
    """``chainml.devtools.hostpeer`` on a host: an IPFS peer driven line by line."""

    def __init__(self, host: Host, repo: Path, *, port: int = 0, peers: tuple[str, ...] = ()):
        argv = [sys.executable, "-m", "chainml.devtools.hostpeer", str(repo)]
        argv += ["--swarm-address", f"{host.address}/{host.network.prefixlen}"]
        argv += ["--port", str(port)]
        for peer in peers:
            argv += ["--peer", peer]
        self.proc = host.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.multiaddr = str(self._read()["multiaddr"])

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise HostJobError(f"the blob peer exited with {self.proc.wait(10)}")
        answer = dict(json.loads(line))
        if "error" in answer:
            raise HostJobError(f"blob peer: {answer['error']}: {answer.get('message')}")
        return answer

    def ask(self, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            stop_process(self.proc, 10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


class HostJobError(Exception):
    """The job across hosts did not complete."""


@dataclass
class HostJobResult:
    job_id: int
    rounds: int
    round_seconds: list[float]  # round 1 from the last join, then round to round
    audited: dict[int, list[int]]  # round -> trainer slots the auditor counted
    audit_seconds: float  # every round's blobs fetched by CID and checked
    record_fetch_seconds: float  # one round record, by CID, from another host
    record_cids: list[str]
    pinned: list[str]  # what the auditor pinned
    fetched: dict[str, int]  # what the auditor fetched by CID, by kind
    link_bytes: dict[str, LinkBytes]  # per host, over all rounds
    accuracy: float | None
    setup_seconds: float
    node_urls: dict[str, str] = field(default_factory=dict)
    leftovers: list[str] = field(default_factory=list)  # of the network, once it closed
    attempts: dict[int, int] = field(default_factory=dict)  # round -> the attempt recorded
    recorded: list[int] = field(default_factory=list)  # RoundRecorded events' rounds, in order
    link_bytes_at_switch: dict[str, LinkBytes] | None = None  # see run(rtt_from_round=...)


@dataclass
class _Nodes:
    cm: Chainml
    nodes: dict[str, localnet.NodeDir]
    chain_url: str
    root: Path
    aggregator_peer: str


def _wait(probe: Callable[[], T | None], what: str, timeout: float) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.1)
    raise HostJobError(f"timed out waiting for {what}")


def start_chain(
    net: Network, workdir: Path, *, probe_from: str = "aggregator"
) -> tuple[subprocess.Popen[bytes], str]:
    """The dev chain on the chain host's bridge address (answering ``probe_from``); its
    URL."""
    host = net["chain"]
    with (workdir / "chain.log").open("ab") as log:
        proc = host.popen(
            [
                *(sys.executable, "-m", "chainml.ledger.devchain", "serve"),
                *("--datadir", str(workdir / "chain"), "--host", host.address),
                *("--port", str(CHAIN_PORT), "--public"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    net[probe_from].wait_port(host.address, CHAIN_PORT, timeout=60)
    return proc, f"http://{host.address}:{CHAIN_PORT}"


def _storage(host: Host, peers: list[str]) -> str:
    listed = ", ".join(f'"{p}"' for p in peers)
    return (
        '[storage]\nbackend = "ipfs"\ndir = "ipfs"\n'
        f"swarm_port = {SWARM_PORT}\n"
        f'swarm_address = "{host.address}/{host.network.prefixlen}"\n'
        f"peers = [{listed}]\ntimeout = 30\n"
    )


def configure(
    node: localnet.NodeDir,
    host: Host,
    storage: str,
    stage_timeout: float,
    advertised: int = NODE_PORT,
) -> localnet.NodeDir:
    """The node's config for its host: its API on the host's address (``NODE_PORT``),
    reached by others at ``advertised`` (a delay relay's port, or the same), workers and
    monitor on short intervals, ``storage`` as its ``[storage]`` table."""
    text = node.config.read_text()
    text = re.sub(r'listen = "127\.0\.0\.1:\d+"', f'listen = "{host.address}:{NODE_PORT}"', text)
    text = text.replace("interval = 1 ", "interval = 0.2 ").replace(
        "interval = 5 ", "interval = 0.5 "
    )
    text = text.replace("stage_timeout = 10 ", f"stage_timeout = {stage_timeout:g} ")
    text = re.sub(r"\[storage\][^\[]*", storage + "\n", text, count=1)
    node.config.write_text(text)
    return replace(node, url=f"http://{host.address}:{advertised}")


def _relayed(url_or_addr: str, port: int) -> str:
    return url_or_addr.replace(f":{port}", f":{port + RELAY_OFFSET}").replace(
        f"/tcp/{port}/", f"/tcp/{port + RELAY_OFFSET}/"
    )


def start_relays(
    net: Network, delay_ms: float, *, paused: bool = False
) -> list[subprocess.Popen[bytes]]:
    """A delay relay on every host in front of each service there (chain RPC, node API,
    the aggregator's swarm): ``delay_ms`` each way (``paused``: from SIGUSR1 on)."""
    procs = []
    for host in net:
        ports = {"chain": [CHAIN_PORT], "aggregator": [NODE_PORT, SWARM_PORT]}.get(
            host.name, [NODE_PORT]
        )
        argv = [sys.executable, "-m", "chainml.devtools.delayrelay", "--delay-ms", str(delay_ms)]
        if paused:
            argv.append("--paused")
        for port in ports:
            argv += ["--route", f"{host.address}:{port + RELAY_OFFSET}={host.address}:{port}"]
        proc = host.popen(argv, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        if not proc.stdout.readline():
            raise HostJobError(f"the delay relay on {host.name} did not start")
        procs.append(proc)
    return procs


def prepare(
    net: Network,
    workdir: Path,
    chain_url: str,
    trainers: int,
    stage_timeout: float = 6,
    *,
    relayed: bool = False,
) -> _Nodes:
    """Deploy, make each party's node home (configured for its host), register them.
    ``relayed``: every node reaches the chain, the others' APIs and the aggregator's IPFS
    peer through the delay relays (``start_relays``)."""
    aggregator_host = net["aggregator"]
    # the aggregator's engine repository first, so that the others can name its peer ID
    repo = workdir / "aggregator" / "ipfs"
    first = BlobPeer(aggregator_host, repo, port=SWARM_PORT)
    aggregator_peer = first.multiaddr
    first.close()
    if relayed:
        aggregator_peer = _relayed(aggregator_peer, SWARM_PORT)
    node_rpc = _relayed(chain_url, CHAIN_PORT) if relayed else chain_url
    advertised = NODE_PORT + RELAY_OFFSET if relayed else NODE_PORT

    data = load("digits", seed=0)
    shards = dirichlet_partition(data.y_train, trainers, 0.5, seed=0)

    def setup() -> _Nodes:
        client = LedgerClient(chain_url)
        cm, dev = localnet.deploy(client, workdir)
        nodes: dict[str, localnet.NodeDir] = {}
        for name in ["aggregator", *(f"trainer-{i}" for i in range(1, trainers + 1))]:
            host = net[name]
            node = localnet.init_node(workdir, name, PASSWORD, rpc=node_rpc, work=1 << 10)
            home = node.config.parent
            if name == "aggregator":
                np.savez(home / "validation.npz", x=data.x_test, y=data.y_test)
                (home / "jobs").mkdir(exist_ok=True)
                (home / "jobs" / f"{CONFIG.config_hash.hex()}.json").write_bytes(CONFIG.encode())
                text = node.config.read_text().replace(
                    '# validation = "validation.npz"', 'validation = "validation.npz"'
                )
                roles = Role.AGGREGATOR | Role.REQUESTER
                storage = _storage(host, [])
            else:
                shard = shards[int(name.rsplit("-", 1)[1]) - 1]
                np.savez(home / "data.npz", x=data.x_train[shard], y=data.y_train[shard])
                text = node.config.read_text().replace('# data = "data.npz"', 'data = "data.npz"')
                roles = Role.TRAINER | Role.DATA_OWNER
                storage = _storage(host, [aggregator_peer])
            node.config.write_text(text)
            node = configure(node, host, storage, stage_timeout, advertised)
            client.transact(dev, to=node.identity.address, value=5 * ETHER)
            cm.registry.register_identity(node.identity, roles, node.url, ETHER)
            nodes[name] = node
        return _Nodes(cm, nodes, node_rpc, workdir, aggregator_peer)

    return aggregator_host.call(setup, timeout=180)


def start_node(host: Host, node: localnet.NodeDir, log: Path) -> subprocess.Popen[bytes]:
    """``chainml node run`` for ``node`` inside ``host``, its output appended to ``log``."""
    with log.open("ab") as out:
        return host.popen(
            [sys.executable, "-m", "chainml.cli.main", "node", "run", "--config", str(node.config)],
            env={"CHAINML_PASSWORD": PASSWORD},
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@contextmanager
def running_nodes(net: Network, prepared: _Nodes) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """Every node process started on its host (the aggregator's first, then the others
    side by side), each answering; stopped at the end."""
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(name: str) -> None:
        node = prepared.nodes[name]
        procs[name] = start_node(net[name], node, node.config.parent / "node.log")

    def ready(name: str) -> None:
        node = prepared.nodes[name]
        try:
            net[name].call(
                daemon.wait_ready, node.url, procs[name], 120, address=node.identity.address
            )
        except daemon.NodeStartError as exc:
            log_tail = (node.config.parent / "node.log").read_text(errors="replace")[-2000:]
            raise HostJobError(f"{name}'s node did not start: {exc}\n{log_tail}") from exc

    try:
        # the aggregator first: the others' IPFS peers dial its own when they start
        start("aggregator")
        ready("aggregator")
        others = [n for n in prepared.nodes if n != "aggregator"]
        for name in others:
            start(name)
        for name in others:
            ready(name)
        yield procs
    finally:  # all at once: each node takes a moment to stop
        for proc in procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in procs.values():
            stop_process(proc, 20)


def post_job(prepared: _Nodes, rounds: int, trainers: int) -> int:
    aggregator = prepared.nodes["aggregator"]
    params = JobParams(
        aggregator=aggregator.identity.address,
        rounds=rounds,
        min_participants=trainers - 1,
        max_participants=trainers,
        min_stake=ETHER,
        challenge_window=3600,
        clip_bound=10_000,
        config_hash=CONFIG.config_hash,
    )
    return prepared.cm.jobs.create_job(aggregator.identity.account, params, ETHER)


def run(
    workdir: Path,
    *,
    trainers: int = 3,
    rounds: int = 2,
    rtt_ms: float = 0,
    cut_aggregator_s: float = 0,
    cut_trainer_round: int = 0,
    rtt_from_round: int = 0,
    loss_percent: float = 0,
    stage_timeout: float = 6,
    say: Callable[[str], None] = lambda _: None,
) -> HostJobResult:
    """The job, start to end, on a network of its own; everything stopped and removed
    before it returns (or raises).  ``rtt_ms``: added to every exchange between hosts
    (delay relays in front of every service, half of it each way), from the start, or
    (``rtt_from_round``) from the moment the round before that one is on chain: the rounds
    before run through the relays at no delay, and ``link_bytes_at_switch`` is what each
    host moved until then.  ``loss_percent``: every host drops that share of the packets
    it sends, at random, from the job's posting on (``Host.lose``).  ``cut_aggregator_s``:
    the aggregator's host is cut off the network for that long as soon as its node starts
    round 2, then healed (a fault the job must survive: that attempt void, a retry).
    ``cut_trainer_round``: in that round, the last trainer's host is cut off while its
    masked input is on its way (its uploads to the aggregator are throttled from the
    start so that there is a moment to do it in), and healed and unthrottled once the
    masked stage closed without it: a dropout the others' shares recover from."""
    started = time.perf_counter()
    workdir.mkdir(parents=True, exist_ok=True)
    net = Network(host_names(trainers))
    with net, ExitStack() as stack:
        say(
            "hosts: "
            + ", ".join(f"{h.name} {h.address}" for h in net)
            + f" on bridge {net.bridge} ({net.subnet}), no route out"
        )
        chain, url = start_chain(net, workdir)
        stack.callback(stop_process, chain, 20)
        say(f"chain host: chainml's dev chain at {url}")
        relays: list[subprocess.Popen[bytes]] = []
        if rtt_ms > 0:
            relays = start_relays(net, rtt_ms / 2, paused=rtt_from_round > 1)
            for relay in relays:
                stack.callback(stop_process, relay, 10)
            when = f" from round {rtt_from_round} on" if rtt_from_round > 1 else ""
            say(f"a delay relay in front of every service: {rtt_ms:g} ms more per exchange{when}")
        prepared = prepare(net, workdir, url, trainers, stage_timeout, relayed=rtt_ms > 0)
        say(
            "deployed from the aggregator's host; registered "
            + ", ".join(f"{n} at {d.url}" for n, d in prepared.nodes.items())
        )
        say(f"aggregator's IPFS peer {prepared.aggregator_peer}; the trainers' engines dial it")
        stack.enter_context(running_nodes(net, prepared))
        say("every node answers on its bridge address")
        agg = net["aggregator"]
        cm = prepared.cm
        if loss_percent > 0:
            for host in net:
                host.lose(loss_percent)
            say(f"every host now drops {loss_percent:g}% of the packets it sends, at random")
        dropout = net[f"trainer-{trainers}"]
        if cut_trainer_round:
            dropout.throttle(THROTTLE_KBIT, net["aggregator"].address, NODE_PORT)
            stack.callback(dropout.unthrottle)
            say(f"{dropout.name}'s uploads to the aggregator limited to {THROTTLE_KBIT} kbit/s")
        job_id = agg.call(post_job, prepared, rounds, trainers)
        say(f"job {job_id} posted: {rounds} rounds, {trainers} trainers")
        _wait(
            lambda: agg.call(lambda: cm.jobs.job(job_id).participant_count) == trainers,
            "the trainers to join",
            60,
        )
        setup_seconds = time.perf_counter() - started
        before = {h.name: h.link_bytes() for h in net}
        at_switch: dict[str, LinkBytes] | None = None
        marks = [time.perf_counter()]

        def rounds_done() -> int:
            return int(cm.jobs.job(job_id).rounds_done)

        for r in range(1, rounds + 1):
            if r == 2 and cut_aggregator_s > 0:
                _cut_when_started(
                    net["aggregator"], prepared.nodes["aggregator"], job_id, cut_aggregator_s, say
                )
            if r == cut_trainer_round:
                _cut_in_masked_stage(dropout, prepared.nodes["aggregator"], job_id, r, say)
            _wait(partial(_at_least, agg, rounds_done, r), f"round {r}", 120)
            marks.append(time.perf_counter())
            say(f"round {r} on chain after {marks[-1] - marks[-2]:.2f} s")
            if relays and r == rtt_from_round - 1:
                at_switch = {h.name: h.link_bytes() - before[h.name] for h in net}
                for relay in relays:
                    relay.send_signal(signal.SIGUSR1)
                say(f"the relays now add {rtt_ms:g} ms to every exchange")
        moved = {h.name: h.link_bytes() - before[h.name] for h in net}
        record_cids = [
            str(agg.call(lambda n: cm.jobs.round(job_id, n).aggregate_cid, r))
            for r in range(1, rounds + 1)
        ]
        fetcher = BlobPeer(
            net["trainer-2"], workdir / "fetcher-ipfs", peers=(prepared.aggregator_peer,)
        )
        stack.callback(fetcher.close)
        fetched = fetcher.ask(op="get", cid=record_cids[-1])
        say(
            f"trainer-2's host fetched round {rounds}'s record {record_cids[-1][:16]}… "
            f"({fetched['size']} bytes) by CID in {fetched['seconds'] * 1e3:.0f} ms"
        )
        auditor = BlobPeer(
            net["trainer-1"], workdir / "auditor-ipfs", peers=(prepared.aggregator_peer,)
        )
        stack.callback(auditor.close)
        audit = auditor.ask(
            op="audit",
            rpc=prepared.chain_url,
            deployment=str(workdir / "deployment.json"),
            job=job_id,
            rounds=list(range(1, rounds + 1)),
        )
        audited = {int(r): list(v) for r, v in audit["counted"].items()}
        say(
            f"auditor on trainer-1's host: every round checks out (trainers counted: {audited}) "
            f"against the chain; fetched by CID from the aggregator's host and re-hashed: "
            f"{audit['fetched']} in {audit['seconds']:.2f} s, all pinned there"
        )
        aggregator_home = prepared.nodes["aggregator"].config.parent
        accuracy = _meta(aggregator_home, f"accuracy:{job_id}:{rounds}")
        attempts = {
            r: int(str(_meta(aggregator_home, f"round:{job_id}:{r}")).rsplit(":", 1)[-1])
            for r in range(1, rounds + 1)
        }
        recorded = agg.call(
            lambda: [
                int(e.args["round"])
                for e in cm.jobs.contract.past_events("RoundRecorded", where={"job_id": job_id})
            ]
        )
        result = HostJobResult(
            job_id=job_id,
            rounds=rounds,
            round_seconds=[b - a for a, b in itertools.pairwise(marks)],
            audited=audited,
            audit_seconds=float(audit["seconds"]),
            record_fetch_seconds=float(fetched["seconds"]),
            record_cids=record_cids,
            pinned=list(audit["pinned"]),
            fetched=dict(audit["fetched"]),
            link_bytes=moved,
            accuracy=float(accuracy) if accuracy is not None else None,
            setup_seconds=setup_seconds,
            attempts=attempts,
            recorded=recorded,
            link_bytes_at_switch=at_switch,
            node_urls={n: d.url for n, d in prepared.nodes.items()},
        )
    result.leftovers = net.leftovers()
    return result


def _at_least(host: Host, count: Callable[[], int], n: int) -> bool:
    return host.call(count) >= n


def _meta(home: Path, key: str) -> str | None:
    """One value of a node's state (SQLite in WAL mode: readers never block)."""
    import sqlite3

    db = sqlite3.connect(f"file:{home / 'state.db'}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    finally:
        db.close()
    return str(row[0]) if row else None


def _wait_log(node: localnet.NodeDir, mark: str, timeout: float = 60) -> None:
    log = node.config.parent / "node.log"
    deadline = time.monotonic() + timeout
    while mark not in log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise HostJobError(f"{node.name} never logged {mark!r}")
        time.sleep(0.01)


def _cut_in_masked_stage(
    host: Host, aggregator: localnet.NodeDir, job_id: int, round_no: int, say: Callable[[str], None]
) -> None:
    """Cut ``host`` off once the aggregator sent the masked stage's requests (its masked
    input is then on its way, slowly); heal it once that stage closed."""
    _wait_log(aggregator, f"job {job_id} round {round_no}: stage shares closed")
    host.cut()
    say(f"round {round_no}: {host.name}'s host cut off while its masked input is on its way")
    try:
        _wait_log(aggregator, f"job {job_id} round {round_no}: stage masked closed")
    finally:
        host.heal()
        host.unthrottle()
    say(f"the masked stage closed without it; {host.name}'s host is back, unthrottled")


def _cut_when_started(
    host: Host, node: localnet.NodeDir, job_id: int, seconds: float, say: Callable[[str], None]
) -> None:
    """Cut ``host`` off the moment its node logs that round 2 started, heal it after
    ``seconds``."""
    log = node.config.parent / "node.log"
    mark = f"job {job_id} round 2 (attempt 1): started"
    deadline = time.monotonic() + 60
    while mark not in log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise HostJobError("the aggregator never started round 2")
        time.sleep(0.01)
    host.cut()
    say(f"round 2 started: the aggregator's host is cut off the network for {seconds:g} s")
    try:
        time.sleep(seconds)
    finally:
        host.heal()
    say("the aggregator's host is back on the network")


def main(argv: list[str] | None = None) -> int:
    """``python -m chainml.devtools.hostjob [--trainers N] [--rounds R]`` (``make
    demo-hosts``): the job across hosts, each step printed, then what each host sent."""
    import argparse
    import tempfile

    from chainml.devtools.hosts import unavailable

    parser = argparse.ArgumentParser(prog="python -m chainml.devtools.hostjob")
    parser.add_argument("--trainers", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rtt-ms", type=float, default=0, help="added between hosts")
    parser.add_argument("--loss", type=float, default=0, help="percent of packets dropped")
    parser.add_argument(
        "--cut-aggregator", type=float, default=0, help="seconds off the network in round 2"
    )
    parser.add_argument(
        "--cut-trainer-round",
        type=int,
        default=0,
        help="the last trainer cut off in its masked stage",
    )
    args = parser.parse_args(argv)
    reason = unavailable()
    if reason:
        print(f"cannot put parties on separate hosts here: {reason}", file=sys.stderr)
        return 2
    step = itertools.count(1)

    def say(text: str) -> None:
        print(f"{next(step):>2}. {text}", flush=True)

    with tempfile.TemporaryDirectory(prefix="chainml-hosts-") as tmp:
        result = run(
            Path(tmp),
            trainers=args.trainers,
            rounds=args.rounds,
            rtt_ms=args.rtt_ms,
            loss_percent=args.loss,
            cut_aggregator_s=args.cut_aggregator,
            cut_trainer_round=args.cut_trainer_round,
            say=say,
        )
    print(f"\njob {result.job_id}: {result.rounds} rounds, accuracy {result.accuracy}")
    print(f"attempt recorded per round: {result.attempts}; rounds on chain: {result.recorded}")
    print(f"trainers counted per round (slots): {result.audited}")
    print("bytes on each host's link over the rounds (sent / received):")
    for name, moved in result.link_bytes.items():
        print(f"  {name:<12} {moved.sent:>12,} / {moved.received:>12,}")
    if result.leftovers:
        print(f"left behind: {result.leftovers}", file=sys.stderr)
        return 1
    print("every namespace, link and process of the run is gone")
    return 0


if __name__ == "__main__":
    sys.exit(main())
