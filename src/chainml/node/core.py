"""The composition root's data: a node's configuration (``node.toml``) and its parts.

``NodeConfig`` is the parsed ``node.toml``; ``build`` makes a ``Node`` of it: identity,
chain clients (one reading the chain as it is now, one through the per-block cache), state,
the envelope receiver and, opened on first use, the configured blob store.  Nothing here
knows a role: the roles (``chainml.node.roles``) take a ``Node`` and plug their workers,
routes and message handlers into the process that ``chainml.node.daemon.run`` assembles.
"""

from __future__ import annotations

import os
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
from chainml.ledger.settle import Settlement
from chainml.node import keystore
from chainml.node.chaincache import CachingLedgerClient
from chainml.node.envelope import DEFAULT_MAX_PAYLOAD, DEFAULT_MAX_SKEW, EnvelopeReceiver, Peer
from chainml.node.ids import HttpLimits
from chainml.node.state import NodeState, SqliteReplayCache
from chainml.storage.factory import StoreConfig, StoreConfigError, close_store, open_store
from chainml.storage.store import BlobStore


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
    finality_stall: float = 900.0  # seconds the finalized block may stand while the head moves
    worker_interval: float = 1.0
    confirmations: int = 0
    settle: str = ""  # [chain] settle: "finalized" | "safe" | a depth; "": confirmations
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
        _check_keys(path, doc)
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
                finality_stall=float(doc.get("monitor", {}).get("finality_stall", 900.0)),
                worker_interval=float(doc.get("workers", {}).get("interval", 1.0)),
                confirmations=int(chain.get("confirmations", 0)),
                settle=str(
                    Settlement.parse(chain.get("settle"), int(chain.get("confirmations", 0))).mode
                ),
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


# Every table node.toml may hold and the keys each takes ([http] and [storage] check their
# own): a misspelt setting is refused by name rather than silently left at its default.
SECTIONS: dict[str, frozenset[str]] = {
    "node": frozenset({"name", "keystore", "state", "listen", "password_env"}),
    "chain": frozenset({"rpc", "deployment", "confirmations", "settle"}),
    "limits": frozenset(
        {
            "min_stake",
            "max_payload",
            "max_skew",
            "rate_per_peer",
            "rate_overall",
            "ban_after_refusals",
        }
    ),
    "training": frozenset({"data", "validation", "jobs_dir", "stage_timeout"}),
    "inference": frozenset(
        {"price", "batch_price", "receipt_batch", "receipt_age", "model_version"}
    ),
    "monitor": frozenset({"interval", "endpoints", "finality_stall"}),
    "workers": frozenset({"interval"}),
    "http": frozenset(),
    "storage": frozenset(),
}


def _check_keys(path: Path, doc: dict[str, Any]) -> None:
    for section, table in doc.items():
        if section not in SECTIONS:
            raise ConfigError(
                f"{path}: no table [{section}] (the tables: {', '.join(sorted(SECTIONS))})"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: {section} must be a table")
        unknown = sorted(set(table) - SECTIONS[section]) if SECTIONS[section] else []
        if unknown:
            raise ConfigError(
                f"{path}: [{section}] takes no {', '.join(map(repr, unknown))} "
                f"(it takes {', '.join(sorted(SECTIONS[section]))})"
            )


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
# settle = "finalized"  # or "safe", or a depth: when a step counts (default: confirmations)

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
finality_stall = 900  # seconds the finalized block may stand still while the head moves

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
    settlement: Settlement = field(default_factory=Settlement)  # when a step counts
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
    # one policy: when steps settle, and whether the node's chain view is trusted at all
    # (while the monitor holds it, neither client sends a transaction)
    settlement = Settlement.parse(config.settle, config.confirmations)
    client = LedgerClient(config.rpc_url, settlement=settlement)
    deployment = Deployment.load(config.deployment)
    cm = Chainml.connect(client, deployment)
    # facts are re-read once the head moves, looked for at most every half second (and at
    # once after this node's own transaction): a round's hot path finds them cached
    cached = CachingLedgerClient(
        config.rpc_url, head_ttl=max(config.worker_interval, 0.5), settlement=settlement
    )
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
    return Node(config, identity, client, cm, state, receiver, facts, settlement)
