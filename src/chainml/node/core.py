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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar, cast

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


class BadSetting(ConfigError):
    """A key of node.toml holds a value of the wrong kind or out of its range; ``table``
    and ``key`` name it."""

    def __init__(self, path: Path, table: str, key: str, why: str) -> None:
        super().__init__(f"{path}: [{table}] {key}: {why}")
        self.table, self.key = table, key


T = TypeVar("T")


class Table:
    """One table of node.toml, as a role reads it: each getter answers the key's value or
    its default, and raises ``BadSetting`` naming the key for a value of the wrong kind or
    out of range.  Paths are relative to the file."""

    def __init__(self, path: Path, name: str, values: Mapping[str, Any]) -> None:
        self.path, self.name, self.values = Path(path), name, values

    def bad(self, key: str, why: str) -> BadSetting:
        return BadSetting(self.path, self.name, key, why)

    def integer(self, key: str, default: int, *, minimum: int | None = None) -> int:
        value = self.values.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.bad(key, f"an integer, not {value!r}")
        if minimum is not None and value < minimum:
            raise self.bad(key, f"at least {minimum}, not {value}")
        return value

    def number(self, key: str, default: float, *, positive: bool = False) -> float:
        value = self.values.get(key, default)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise self.bad(key, f"a number, not {value!r}")
        if value != value or value in (float("inf"), float("-inf")):
            raise self.bad(key, f"a finite number, not {value}")
        if value < 0 or (positive and value == 0):
            raise self.bad(key, f"{'above' if positive else 'at least'} 0, not {value}")
        return float(value)

    def path_of(self, key: str, default: str | None = None) -> Path | None:
        """A path relative to the file (None: the key is absent, or empty, and no default)."""
        value = self.values.get(key, default)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            raise self.bad(key, f"a path, not {value!r}")
        return self.path.parent / value


@dataclass(frozen=True)
class Section(Generic[T]):
    """The keys of node.toml one part of the node reads: ``keys`` of the table ``table``
    (several parts may share a table, each with its own keys; ``None``: the parser checks
    them itself), parsed by ``parse`` into that part's settings.  ``template`` is what
    ``init`` writes into the table for it.  A role module declares its own; ``name`` (the
    role's) is how ``NodeConfig.settings`` finds them again."""

    name: str
    table: str
    keys: frozenset[str] | None
    parse: Callable[[Table], T]
    template: str = ""


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
    http: HttpLimits = field(default_factory=HttpLimits)  # [http]: timeouts, limits, proxies
    # each role's settings, parsed by its own ``Section`` (``settings`` reads them)
    sections: Mapping[str, Any] = field(default_factory=dict)

    def settings(self, section: Section[T]) -> T:
        """The settings ``section`` parsed from node.toml; its defaults if this config
        was loaded without that section."""
        if section.name in self.sections:
            return cast(T, self.sections[section.name])
        return section.parse(Table(Path("node.toml"), section.table, {}))

    @classmethod
    def load(cls, path: Path, sections: Sequence[Section[Any]]) -> NodeConfig:
        """Read ``path``: the node's own tables, then each of ``sections`` (the roles'
        declarations, ``chainml.node.roles.SECTIONS``).  A table or key none of them
        declares is refused by name (a misspelt setting is not silently left at its
        default), and so is a value of the wrong kind (``BadSetting``)."""
        path = Path(path)
        try:
            doc = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"no config at {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from None
        base = path.parent
        sections = (*SECTIONS, *sections)
        _check_keys(path, doc, sections)
        parsed: dict[str, Any] = {}
        for section in sections:
            if section.name in parsed:
                raise ValueError(f"two sections named {section.name!r}")
            parsed[section.name] = section.parse(
                Table(path, section.table, doc.get(section.table, {}))
            )
        try:
            node, chain = doc["node"], doc["chain"]
            limits = doc.get("limits", {})
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
                http=HttpLimits.from_doc(doc.get("http", {})),
                sections=parsed,
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


def _none(table: Table) -> None:
    return None  # parsed by ``NodeConfig.load`` itself


# The node's own tables ([http] and [storage] check their own keys); each role declares
# its own (``chainml.node.roles.SECTIONS``).
SECTIONS: tuple[Section[None], ...] = (
    Section(
        "node", "node", frozenset({"name", "keystore", "state", "listen", "password_env"}), _none
    ),
    Section("chain", "chain", frozenset({"rpc", "deployment", "confirmations", "settle"}), _none),
    Section(
        "limits",
        "limits",
        frozenset(
            {
                "min_stake",
                "max_payload",
                "max_skew",
                "rate_per_peer",
                "rate_overall",
                "ban_after_refusals",
            }
        ),
        _none,
    ),
    Section("monitor", "monitor", frozenset({"interval", "endpoints", "finality_stall"}), _none),
    Section("workers", "workers", frozenset({"interval"}), _none),
    Section("http", "http", None, _none),
    Section("storage", "storage", None, _none),
)


def known_keys(sections: Sequence[Section[Any]]) -> dict[str, frozenset[str] | None]:
    """Each table the sections declare, with the keys they read in it (None: its parser
    checks them)."""
    tables: dict[str, frozenset[str] | None] = {}
    for section in sections:
        if section.table in tables:
            had = tables[section.table]
            if had is None or section.keys is None:
                raise ValueError(f"[{section.table}] checks its own keys: it is not shared")
            tables[section.table] = had | section.keys
        else:
            tables[section.table] = section.keys
    return tables


def _check_keys(path: Path, doc: dict[str, Any], sections: Sequence[Section[Any]]) -> None:
    tables = known_keys(sections)
    for name, table in doc.items():
        if name not in tables:
            raise ConfigError(
                f"{path}: no table [{name}] (the tables: {', '.join(sorted(tables))})"
            )
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: {name} must be a table")
        keys = tables[name]
        unknown = sorted(set(table) - keys) if keys is not None else []
        if unknown and keys is not None:
            raise ConfigError(
                f"{path}: [{name}] takes no {', '.join(map(repr, unknown))} "
                f"(it takes {', '.join(sorted(keys))})"
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
    sections: Sequence[Section[Any]],
) -> Identity:
    """Create a party's identity (or keep ``identity``) and its config in ``directory``:
    the node's own tables, then each of ``sections``' template under its table."""
    directory = Path(directory)
    identity = identity or Identity.generate()
    keystore.save(identity, directory / "keystore.json", password, work=work)
    text = TEMPLATE.format(
        name=name,
        port=port,
        rpc=rpc,
        deployment=deployment,
        max_payload=DEFAULT_MAX_PAYLOAD,
        max_skew=DEFAULT_MAX_SKEW,
    )
    (directory / "node.toml").write_text(text + template_of(sections))
    return identity


def template_of(sections: Sequence[Section[Any]]) -> str:
    """The sections' templates, each table once, its sections' lines in their order."""
    lines: dict[str, list[str]] = {}
    for section in sections:
        if section.template:
            lines.setdefault(section.table, []).append(section.template.rstrip("\n"))
    return "".join(f"\n[{table}]\n" + "\n".join(body) + "\n" for table, body in lines.items())


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
        # a nonce is not flushed to the disk on its own: one flush per envelope was most
        # of a round's time across processes (``chainml.node.state``)
        replays=SqliteReplayCache(state, horizon=config.max_skew, sync=False),
        clock=time.time,
        min_stake=config.min_stake,
        max_skew=config.max_skew,
        max_payload=config.max_payload,
    )
    return Node(config, identity, client, cm, state, receiver, facts, settlement)
