"""One way to open a node's blob store: from the ``[storage]`` table of its configuration.

``backend`` chooses the store; each backend takes only its own keys, and a key another
backend owns, a key nobody owns, a missing required key or an unknown backend is refused
with a ``StoreConfigError`` naming it (before anything is opened)::

    [storage]
    backend = "local"                  # the default: blocks under dir
    dir = "store"

    [storage]
    backend = "ipfs"                   # kubo embedded in the node's process: an IPFS peer
    dir = "ipfs"                       # its repository
    swarm_port = 4011                  # 0 (default): any free port
    swarm_address = "127.0.0.1/8"      # or a private network's address/prefix, e.g. "10.0.0.2/24"
    peers = ["/ip4/127.0.0.1/tcp/4012/p2p/12D3Koo…"]
    timeout = 30                       # seconds a network fetch waits
    keep = true                        # pin the blobs of this node's jobs and grants
                                       # (chainml.node.keeper); false: only what it puts

    [storage]
    backend = "kubo"                   # a kubo daemon the user runs, over its RPC API
    api = "http://127.0.0.1:5001"      # required
    timeout = 30
    fetch_from_network = false         # true: reads may ask the daemon to fetch from peers

Relative paths are taken from the configuration file's directory.  ``open_store`` opens
the store (the embedded engine starts its IPFS node there); ``close_store`` closes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from chainml.storage.errors import StorageError
from chainml.storage.store import BlobStore

BACKENDS: Final = ("local", "ipfs", "kubo")
_DEFAULT_DIR: Final = {"local": "store", "ipfs": "ipfs"}
_KEYS: Final = {
    "local": {"dir"},
    "ipfs": {"dir", "swarm_port", "swarm_address", "peers", "timeout", "keep"},
    "kubo": {"api", "timeout", "fetch_from_network", "keep"},
}
_REQUIRED: Final = {"kubo": ("api",)}
LOOPBACK: Final = "127.0.0.1/8"


class StoreConfigError(StorageError, ValueError):
    """The ``[storage]`` table names no usable store."""


class UnknownBackend(StoreConfigError):
    """``backend`` is not one of ``local``, ``ipfs``, ``kubo``."""


class MissingOption(StoreConfigError):
    """The backend needs a key the table lacks."""


class UnknownOption(StoreConfigError):
    """A key the chosen backend does not take (misspelt, or another backend's)."""


@dataclass(frozen=True)
class StoreConfig:
    """A parsed ``[storage]`` table.  Build it with ``from_table``, which checks it."""

    backend: str = "local"
    dir: Path = Path("store")  # local: its blocks; ipfs: the engine's repository
    swarm_port: int = 0
    swarm_address: str = LOOPBACK
    peers: tuple[str, ...] = ()
    api: str = ""
    timeout: float = 30.0
    fetch_from_network: bool = False
    keep: bool = True  # ipfs, kubo: the node pins what its jobs and grants name

    @classmethod
    def from_table(cls, table: Mapping[str, object], base: Path = Path()) -> StoreConfig:
        """The store a ``[storage]`` table describes, paths relative to ``base``; raises
        ``UnknownBackend``, ``UnknownOption``, ``MissingOption`` or ``StoreConfigError``
        (a value of the wrong type)."""
        backend = table.get("backend", "local")
        if backend not in BACKENDS:
            raise UnknownBackend(
                f"storage backend {backend!r} is not one of {', '.join(map(repr, BACKENDS))}"
            )
        extra = sorted(set(table) - _KEYS[backend] - {"backend"})
        if extra:
            raise UnknownOption(
                f"storage backend {backend!r} takes no {', '.join(map(repr, extra))} "
                f"(it takes {', '.join(sorted(_KEYS[backend]))})"
            )
        for key in _REQUIRED.get(backend, ()):
            if not table.get(key):
                raise MissingOption(f"storage backend {backend!r} needs {key!r}")
        try:
            return cls(
                backend=backend,
                dir=Path(base) / _text(table, "dir", _DEFAULT_DIR.get(backend, "store")),
                swarm_port=_port(table.get("swarm_port", 0)),
                swarm_address=_text(table, "swarm_address", LOOPBACK),
                peers=_peers(table.get("peers", [])),
                api=_text(table, "api", ""),
                timeout=_positive(table.get("timeout", 30.0)),
                fetch_from_network=_flag(table, "fetch_from_network", False),
                keep=_flag(table, "keep", True),
            )
        except (TypeError, ValueError) as exc:
            raise StoreConfigError(f"storage backend {backend!r}: {exc}") from None


def _text(table: Mapping[str, object], key: str, default: str) -> str:
    if key not in table:
        return default
    value = table[key]
    if not isinstance(value, str) or not value:
        raise TypeError(f"{key!r} must be a non-empty string")
    return value


def _port(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 65535:
        raise ValueError("'swarm_port' must be an integer 0..65535")
    return value


def _peers(value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise TypeError("'peers' must be a list of multiaddr strings")
    return tuple(value)


def _positive(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError("'timeout' must be a positive number of seconds")
    return float(value)


def _flag(table: Mapping[str, object], key: str, default: bool) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise TypeError(f"{key!r} must be true or false")
    return value


def open_store(config: StoreConfig) -> BlobStore:
    """Open the configured store.  The embedded engine starts its IPFS node and connects
    to the peers (``EngineUnavailable``, ``InvalidPeerAddress``, ``PeerUnreachable``);
    open it on the main thread, where it can give SIGTERM back to Python."""
    if config.backend == "local":
        from chainml.storage.local import LocalBlobStore

        return LocalBlobStore(config.dir)
    if config.backend == "ipfs":
        from chainml.storage.ipfs_engine import IpfsEngineStore

        extra: dict[str, Any] = {}
        if config.swarm_address != LOOPBACK:  # a private network (engines that know it)
            extra["swarm_address"] = config.swarm_address
        return IpfsEngineStore(
            config.dir,
            swarm_port=config.swarm_port,
            peers=config.peers,
            timeout=config.timeout,
            **extra,
        )
    if config.backend == "kubo":
        from chainml.storage.kubo_rpc import KuboRpcStore

        try:
            return KuboRpcStore(
                config.api, timeout=config.timeout, fetch_from_network=config.fetch_from_network
            )
        except ValueError as exc:
            raise StoreConfigError(f"storage backend 'kubo': {exc}") from None
    raise UnknownBackend(f"storage backend {config.backend!r}")


def close_store(store: BlobStore) -> None:
    """Close a store ``open_store`` returned (the local store holds nothing open)."""
    close = getattr(store, "close", None)
    if close is not None:
        close()
