"""One node per party: configuration, the ledger-backed peer directory, and the process.

``chainml node init`` writes a keystore and a ``node.toml``; ``chainml node run --config
node.toml`` serves the API until SIGTERM or SIGINT, then stops cleanly (uvicorn finishes
the requests in flight, the state database is closed).  The keystore password comes from
the environment variable named in the config (``CHAINML_PASSWORD`` by default), never
from the config file or the command line.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chainml.crypto import Identity
from chainml.errors import ChainmlError
from chainml.ledger.bindings import Chainml
from chainml.ledger.client import LedgerClient
from chainml.ledger.deploy import Deployment
from chainml.node import keystore
from chainml.node.access import LedgerChainView
from chainml.node.chaincache import CachingLedgerClient
from chainml.node.envelope import DEFAULT_MAX_PAYLOAD, DEFAULT_MAX_SKEW, EnvelopeReceiver, Peer
from chainml.node.ids import HttpLimits
from chainml.node.state import NodeState, SqliteReplayCache
from chainml.storage.access import Guardian
from chainml.storage.factory import StoreConfig, StoreConfigError, close_store, open_store
from chainml.storage.store import BlobStore

log = logging.getLogger("chainml.node")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message.  Messages are written by
    chainml's code, which never formats a secret into one."""

    def format(self, record: logging.LogRecord) -> str:
        import json

        doc = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            doc["error"] = record.exc_info[0].__name__  # the type only: no traceback text
        return json.dumps(doc)


class ConfigError(ChainmlError):
    """node.toml is missing a field or has a wrong one."""


def _optional(base: Path, value: object) -> Path | None:
    return base / str(value) if value else None


@dataclass(frozen=True)
class NodeConfig:
    name: str
    keystore: Path
    state: Path
    host: str
    port: int
    rpc_url: str
    deployment: Path
    password_env: str = "CHAINML_PASSWORD"  # noqa: S105 (the variable's name, not a password)
    min_stake: int = 1
    max_payload: int = DEFAULT_MAX_PAYLOAD
    max_skew: int = DEFAULT_MAX_SKEW
    rate_per_peer: float = 50.0
    rate_overall: float = 500.0
    ban_after_refusals: int = 20  # hostile refusals (forged, replayed, ...) before a ban
    endpoints: tuple[str, ...] = ()  # more RPC URLs of the same chain, to detect an eclipse
    monitor_interval: float = 5.0
    worker_interval: float = 1.0
    confirmations: int = 0
    storage: StoreConfig = field(default_factory=StoreConfig)  # [storage]: the blob store
    training_data: Path | None = None  # a trainer's own data: .npz with x and y
    validation: Path | None = None  # an aggregator's held-out data, for accuracy per round
    jobs_dir: Path = Path("jobs")  # job configurations this aggregator serves, by hash
    stage_timeout: float = 10.0  # seconds a secure-aggregation stage waits for stragglers
    price: int = 10**12  # wei per plain row or encrypted query, as an inference provider
    batch_price: int = 10**14  # wei per encrypted batch (throughput mode)
    receipt_batch: int = 100  # receipts per posted batch at most
    receipt_age: float = 60.0  # seconds before a client's unposted receipts are posted
    model_version: int = 0  # the version to serve; 0: the newest granted to this node
    http: HttpLimits = field(default_factory=HttpLimits)  # [http]: timeouts, limits, proxies

    @classmethod
    def load(cls, path: Path) -> NodeConfig:
        path = Path(path)
        try:
            doc = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"no config at {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        base = path.parent
        try:
            node, chain = doc["node"], doc["chain"]
            limits = doc.get("limits", {})
            training = doc.get("training", {})
            inference = doc.get("inference", {})
            host, _, port = str(node["listen"]).rpartition(":")
            return cls(
                name=str(node["name"]),
                keystore=base / node["keystore"],
                state=base / node.get("state", "state.db"),
                host=host,
                port=int(port),
                rpc_url=str(chain["rpc"]),
                deployment=base / chain["deployment"],
                password_env=str(node.get("password_env", "CHAINML_PASSWORD")),
                min_stake=int(limits.get("min_stake", 1)),
                max_payload=int(limits.get("max_payload", DEFAULT_MAX_PAYLOAD)),
                max_skew=int(limits.get("max_skew", DEFAULT_MAX_SKEW)),
                rate_per_peer=float(limits.get("rate_per_peer", 50)),
                rate_overall=float(limits.get("rate_overall", 500)),
                ban_after_refusals=int(limits.get("ban_after_refusals", 20)),
                endpoints=tuple(str(u) for u in doc.get("monitor", {}).get("endpoints", [])),
                monitor_interval=float(doc.get("monitor", {}).get("interval", 5.0)),
                worker_interval=float(doc.get("workers", {}).get("interval", 1.0)),
                confirmations=int(chain.get("confirmations", 0)),
                storage=StoreConfig.from_table(doc.get("storage", {}), base),
                training_data=_optional(base, training.get("data")),
                validation=_optional(base, training.get("validation")),
                jobs_dir=base / training.get("jobs_dir", "jobs"),
                stage_timeout=float(training.get("stage_timeout", 10.0)),
                price=int(inference.get("price", 10**12)),
                batch_price=int(inference.get("batch_price", 10**14)),
                receipt_batch=int(inference.get("receipt_batch", 100)),
                receipt_age=float(inference.get("receipt_age", 60.0)),
                model_version=int(inference.get("model_version", 0)),
                http=HttpLimits.from_doc(doc.get("http", {})),
            )
        except StoreConfigError as exc:
            raise ConfigError(f"{path}: [storage] {exc}") from exc
        except (KeyError, ValueError, TypeError) as exc:
            raise ConfigError(f"{path}: missing or bad field {exc}") from None

    @property
    def store(self) -> Path:
        """The store's directory (the local store's blocks, the engine's repository)."""
        return self.storage.dir

    def password(self) -> str:
        value = os.environ.get(self.password_env)
        if not value:
            raise ConfigError(f"set the keystore password in ${self.password_env}")
        return value


TEMPLATE = """\
# chainml node configuration (paths are relative to this file)
[node]
name = "{name}"
keystore = "keystore.json"
state = "state.db"
listen = "127.0.0.1:{port}"
password_env = "CHAINML_PASSWORD"

[chain]
rpc = "{rpc}"
deployment = "{deployment}"
confirmations = 0   # blocks an event must be under before the node acts on it

[limits]
min_stake = 1
max_payload = {max_payload}
max_skew = {max_skew}
rate_per_peer = 50   # requests per second from one address; a flooder is banned
rate_overall = 500
ban_after_refusals = 20   # forged, replayed, malformed or undecryptable envelopes

[http]
header_timeout = 10           # seconds for a request's line and headers
body_timeout = 30             # seconds for a whole request body
max_in_flight = 64            # uploads being read or answered at once, all peers
max_in_flight_per_peer = 8    # a peer: an address; a loopback client: each connection
max_buffered = 268435456      # request-body bytes held in memory at once
trusted_proxies = []          # e.g. ["127.0.0.1"] behind a reverse proxy on this host:
forwarded_header = "x-forwarded-for"  # then the client's address is read from this header

[storage]             # content-addressed blobs: sealed artifacts, key bundles, round records
backend = "local"     # "local" (blocks under dir) | "ipfs" (an embedded IPFS peer) | "kubo"
dir = "store"         # see docs/node.md for the keys of "ipfs" and "kubo"

[training]
# data = "data.npz"             # a trainer's own records (x, y); never leaves this node
# validation = "validation.npz" # an aggregator's held-out records: accuracy per round
jobs_dir = "jobs"               # job configurations this node aggregates, named by hash
stage_timeout = 10              # seconds a secure-aggregation stage waits for stragglers

[inference]   # as an inference provider (role INFERENCE_PROVIDER)
price = 1000000000000           # wei per plain row or encrypted query
batch_price = 100000000000000   # wei per encrypted batch of up to 4,096 rows
receipt_batch = 100             # receipts per batch posted on chain, at most
receipt_age = 60                # seconds before a client's receipts are posted anyway
model_version = 0               # 0: serve the newest version granted to this node

[monitor]
interval = 5        # seconds between chain checks
endpoints = []      # other RPC URLs of the same chain: disagreement means an eclipse

[workers]
interval = 1        # seconds between passes over new events and open jobs
"""


def init(
    directory: Path,
    name: str,
    password: str,
    *,
    rpc: str,
    deployment: str,
    port: int,
    work: int = keystore.SCRYPT_N,
    identity: Identity | None = None,
) -> Identity:
    """Create a party's identity (or keep ``identity``) and its config in ``directory``."""
    directory = Path(directory)
    identity = identity or Identity.generate()
    keystore.save(identity, directory / "keystore.json", password, work=work)
    (directory / "node.toml").write_text(
        TEMPLATE.format(
            name=name,
            port=port,
            rpc=rpc,
            deployment=deployment,
            max_payload=DEFAULT_MAX_PAYLOAD,
            max_skew=DEFAULT_MAX_SKEW,
        )
    )
    return identity


class LedgerPeers:
    """Peers as the Registry knows them, cached for ``ttl`` seconds; at most ``max_entries``
    are kept (senders with valid signatures cost nothing to invent)."""

    def __init__(
        self,
        cm: Chainml,
        *,
        ttl: float = 5.0,
        clock: Any = time.monotonic,
        max_entries: int = 10_000,
    ) -> None:
        self.cm = cm
        self.ttl = ttl
        self.clock = clock
        self.max_entries = max_entries
        self._cache: dict[str, tuple[float, Peer | None]] = {}

    def lookup(self, address: str) -> Peer | None:
        hit = self._cache.get(address)
        now = self.clock()
        if hit and now - hit[0] < self.ttl:
            return hit[1]
        peer = None
        if self.cm.registry.is_registered(address):
            info = self.cm.registry.party(address)
            peer = Peer(address, info.x25519_key, self.cm.registry.stake_of(address))
        self._cache.pop(address, None)
        self._cache[address] = (now, peer)  # newest last
        while len(self._cache) > self.max_entries:
            del self._cache[next(iter(self._cache))]
        return peer


@dataclass
class Node:
    """A node's parts.  ``cm`` reads the chain as it is now (key release, serving, the
    command line); ``facts`` reads it through the per-block cache (``chaincache``): the
    workers, the chain monitor, the peer directory and the training rounds, which read the
    same facts over and over and act on their own writes."""

    config: NodeConfig
    identity: Identity
    client: LedgerClient
    cm: Chainml
    state: NodeState
    receiver: EnvelopeReceiver
    facts: Chainml | None = None
    _store: BlobStore | None = field(default=None, repr=False)

    @property
    def cached(self) -> Chainml:
        return self.facts or self.cm

    @property
    def store(self) -> BlobStore:
        """The configured blob store, opened on first use (``storage.factory``): open it
        first on the main thread if the backend is the embedded engine."""
        if self._store is None:
            self._store = open_store(self.config.storage)
        return self._store

    def close(self) -> None:
        """Close the store (if opened) and the state database."""
        if self._store is not None:
            close_store(self._store)
            self._store = None
        self.state.close()


def build(config: NodeConfig, password: str) -> Node:
    identity = keystore.load(config.keystore, password)
    client = LedgerClient(config.rpc_url)
    deployment = Deployment.load(config.deployment)
    cm = Chainml.connect(client, deployment)
    # facts are re-read once the head moves, looked for at most every half second (and at
    # once after this node's own transaction): a round's hot path finds them cached
    cached = CachingLedgerClient(config.rpc_url, head_ttl=max(config.worker_interval, 0.5))
    facts = Chainml.connect(cached, deployment)
    # a job's participants never change once they joined: read each once
    participant_at = facts.jobs.contract.abi.encode_call("participant_at", [0, 0])[:4]
    cached.cache_policy(registry=deployment.registry, forever=[(deployment.jobs, participant_at)])
    state = NodeState(config.state)
    receiver = EnvelopeReceiver(
        identity,
        chain_id=client.chain_id,
        registry=deployment.registry,
        peers=LedgerPeers(facts),
        replays=SqliteReplayCache(state, horizon=config.max_skew),
        clock=time.time,
        min_stake=config.min_stake,
        max_skew=config.max_skew,
        max_payload=config.max_payload,
    )
    return Node(config, identity, client, cm, state, receiver, facts)


def run(config: NodeConfig) -> None:
    """Serve until SIGTERM/SIGINT (uvicorn's handlers), then close the state."""
    import uvicorn

    from chainml.node.api import Guard, Metrics, create_app

    node = build(config, config.password())
    try:
        store = node.store  # on the main thread: the embedded engine hands SIGTERM back here
    except BaseException:
        node.close()
        raise
    if hasattr(store, "multiaddr"):
        log.info("store: IPFS peer %s", store.multiaddr)
    guard = Guard.create(
        time.time,  # alerts carry wall-clock times, like the chain monitor's
        per_peer=config.rate_per_peer,
        overall=config.rate_overall,
        ban_after_refusals=config.ban_after_refusals,
    )
    from chainml.node.ids import Alerts
    from chainml.node.monitor import ChainMonitor

    chain_alerts = Alerts(time.time, once=True)
    guard.others.append(chain_alerts)
    endpoints = {config.rpc_url: node.cached.jobs.client} | {
        url: LedgerClient(url) for url in config.endpoints
    }
    monitor = ChainMonitor(node.cached, chain_alerts, endpoints=endpoints)
    stop = threading.Event()
    watcher = threading.Thread(
        target=monitor.run, args=(stop, config.monitor_interval), name="chain-monitor", daemon=True
    )
    watcher.start()
    from chainml.ledger.bindings import Role
    from chainml.node.workers import JobWorkers

    me = node.identity.address
    roles = node.cm.registry.party(me).roles if node.cm.registry.is_registered(me) else Role(0)
    workers = JobWorkers(
        node.cached, node.identity, node.state, roles=roles, confirmations=config.confirmations
    )
    worker = threading.Thread(
        target=workers.run, args=(stop, config.worker_interval), name="workers", daemon=True
    )
    worker.start()
    from chainml.node.dashboard import collect, render

    info = {
        "name": config.name,
        "account": node.identity.address,
        "chain": str(node.client.chain_id),
        "rpc": config.rpc_url,
    }

    def dashboard() -> str:
        measured: dict[int, dict[int, float]] = {}
        spent: dict[int, dict[int, float]] = {}  # DP jobs: ε through each round
        for key, value in node.state.query(
            "SELECT key, value FROM meta WHERE key LIKE 'accuracy:%' OR key LIKE 'epsilon:%'"
        ):
            kind, job_id, round_no = str(key).split(":")
            into = measured if kind == "accuracy" else spent
            into.setdefault(int(job_id), {})[int(round_no)] = float(value)
        accounts = list(monitor.registered)
        return render(collect(node.cached, info, accounts, guard.all_alerts(), measured, spent))

    def on_scrape(metrics: Any) -> None:
        metrics.peers.set(len(monitor.registered))
        cursor = workers.stream.store.load(workers.stream.name)
        head = node.cached.jobs.client.block_number()
        metrics.head_lag.set(head - cursor.block_number if cursor else head)

    guardian = Guardian(
        node.identity,
        LedgerChainView(node.cm),
        store,
        replay=SqliteReplayCache(node.state, horizon=3600),
    )
    metrics = Metrics()
    dispatcher = _round_roles(config, node, roles, store, metrics, stop, guard.alerts)
    provider = None
    if roles & Role.INFERENCE_PROVIDER:
        from chainml.node.inference import ProviderRole

        provider = ProviderRole(
            node,
            price=config.price,
            batch_price=config.batch_price,
            max_receipts=config.receipt_batch,
            max_age=config.receipt_age,
            model_version=config.model_version,
            clock=time.time,
        )
        threading.Thread(
            target=provider.run, args=(stop, config.worker_interval), name="provider", daemon=True
        ).start()
    app = create_app(
        node.receiver,
        limits=config.http,
        guard=guard,
        dashboard=dashboard,
        on_scrape=on_scrape,
        guardian=guardian,
        metrics=metrics,
        on_message=dispatcher.put,
        provider=provider,
    )
    log.info(
        "node %s (%s) on http://%s:%d", config.name, node.identity.address, config.host, config.port
    )
    from chainml.node.api import guarded_h11

    # the event loop waits for the interpreter lock while the worker pool parses and
    # verifies: hand it over every 0.2 ms rather than every 5 ms
    sys.setswitchinterval(0.0002)
    limits = config.http
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level="warning",
            access_log=False,
            log_config=None,  # uvicorn's records go through the node's JSON lines
            http=guarded_h11(limits.header_timeout, 4 * limits.max_in_flight),
            timeout_keep_alive=5,
            h11_max_incomplete_event_size=16 * 1024,  # request line and headers
        )
    )
    # uvicorn handles SIGTERM/SIGINT while serving, then re-raises the signal to the handler
    # that was in place before: make that one a no-op, so that the process ends normally
    # (state closed, exit status 0) instead of dying by the signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: None)
    try:
        server.run()
    finally:
        stop.set()
        watcher.join(timeout=10)
        worker.join(timeout=10)
        node.close()
        log.info("node %s stopped", config.name)


def _round_roles(
    config: NodeConfig,
    node: Node,
    roles: Any,
    store: BlobStore,
    metrics: Any,
    stop: threading.Event,
    alerts: Any = None,
) -> Any:
    """The trainer role (if the node trains and has data) and the aggregator role (if it
    aggregates), fed by one dispatcher thread."""
    from chainml.ledger.bindings import Role
    from chainml.node.rounds import (
        AggregatorRole,
        Courier,
        Dispatcher,
        TrainerRole,
        load_npz,
        run_aggregator,
    )

    cm = node.cached  # the round's hot path reads the same facts again and again
    courier = Courier(node.identity, cm)
    trainer = aggregator = None
    if roles & Role.TRAINER and config.training_data is not None:
        trainer = TrainerRole(
            node.identity,
            cm,
            node.state,
            courier,
            load_npz(config.training_data),
            metrics=metrics,
        )
    if roles & Role.AGGREGATOR:
        validation = load_npz(config.validation) if config.validation else None
        aggregator = AggregatorRole(
            node.identity,
            cm,
            node.state,
            courier,
            store,
            jobs_dir=config.jobs_dir,
            validation=validation,
            stage_timeout=config.stage_timeout,
            metrics=metrics,
            alerts=alerts,
        )
        threading.Thread(
            target=run_aggregator,
            args=(aggregator, stop, config.worker_interval),
            name="aggregator",
            daemon=True,
        ).start()
    dispatcher = Dispatcher(trainer, aggregator)
    threading.Thread(target=dispatcher.run, args=(stop,), name="dispatcher", daemon=True).start()
    return dispatcher


def spawn(
    config: Path, password: str, *, quiet: bool = False, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """``chainml node run --config config`` as a child process, the password in its
    environment only; its output in a pipe, discarded (``quiet``) or appended to ``log``
    (which no reader has to keep draining)."""
    argv = [sys.executable, "-m", "chainml.cli.main", "node", "run", "--config", str(config)]
    env = dict(os.environ, CHAINML_PASSWORD=password)
    if log is not None:
        with Path(log).open("ab") as out:
            return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    pipe = subprocess.DEVNULL if quiet else subprocess.PIPE
    return subprocess.Popen(argv, env=env, stdout=pipe, stderr=subprocess.STDOUT)


def wait_ready(
    url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0, *, address: str = ""
) -> None:
    """Until the node at ``url`` answers (as ``address``, if given: not some other server
    that holds the port); raises ``NodeStartError`` if it exits first."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise NodeStartError(f"node exited with {proc.returncode}: {output[-2000:]}")
        try:
            answer = requests.get(url + "/v1/status", timeout=1)
        except requests.ConnectionError:
            time.sleep(0.1)
            continue
        if not address:
            return
        try:
            if str(answer.json()["address"]).lower() == address.lower():
                return
        except (ValueError, KeyError, TypeError):
            pass
        time.sleep(0.1)  # another server answers there: wait for ours, or for it to exit
    raise NodeStartError(f"node did not answer at {url} within {timeout:g} s")


class NodeStartError(ChainmlError):
    """A node process did not come up."""
