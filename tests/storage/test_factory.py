"""storage.factory: each backend opened from a ``[storage]`` table, and every bad table refused
with a typed error before anything is opened."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from chainml.storage import ipfs_engine
from chainml.storage.factory import (
    MissingOption,
    StoreConfig,
    StoreConfigError,
    UnknownBackend,
    UnknownOption,
    close_store,
    open_store,
)
from chainml.storage.ipfs_engine import IpfsEngineStore
from chainml.storage.kubo_rpc import KuboRpcStore
from chainml.storage.local import LocalBlobStore
from chainml.storage.store import BlobStore
from chainml.storage.unixfs import cid_v1
from tests.storage.test_kubo_rpc import Kubo


def _table(text: str) -> dict[str, object]:
    return tomllib.loads(text)["storage"]


def test_local_is_the_default_and_its_dir_is_relative_to_the_config(tmp_path: Path):
    config = StoreConfig.from_table({}, tmp_path)
    assert (config.backend, config.dir) == ("local", tmp_path / "store")
    store = open_store(StoreConfig.from_table(_table('[storage]\ndir = "blobs"'), tmp_path))
    assert isinstance(store, LocalBlobStore)
    cid = store.put(b"a local blob")
    assert cid == cid_v1(b"a local blob")
    assert (tmp_path / "blobs" / "blocks").is_dir()
    assert LocalBlobStore(tmp_path / "blobs").get(cid) == b"a local blob"  # on that disk
    close_store(store)


def test_ipfs_backend_is_an_ipfs_peer_that_fetches_from_its_peers(tmp_path: Path):
    try:
        ipfs_engine._lib()
    except ipfs_engine.EngineUnavailable as exc:
        pytest.skip(f"no kubo engine here: {exc}")
    first = open_store(
        StoreConfig.from_table(_table('[storage]\nbackend = "ipfs"\ntimeout = 20'), tmp_path / "a")
    )
    try:
        assert isinstance(first, IpfsEngineStore)
        assert first.root == tmp_path / "a" / "ipfs"  # the default repository
        cid = first.put(b"held by the first peer only")
        table = f"""
            [storage]
            backend = "ipfs"
            dir = "repo"
            swarm_port = 0
            peers = ["{first.multiaddr}"]
            timeout = 20
        """
        second = open_store(StoreConfig.from_table(_table(table), tmp_path / "b"))
        try:
            assert isinstance(second, IpfsEngineStore)
            assert second.root == tmp_path / "b" / "repo"
            assert not second.has(cid)
            assert second.get(cid) == b"held by the first peer only"  # over the swarm
        finally:
            close_store(second)
        assert second.closed
    finally:
        close_store(first)


def test_kubo_backend_talks_to_the_daemon_named_by_api(tmp_path: Path):
    kubo = Kubo()
    try:
        table = f'[storage]\nbackend = "kubo"\napi = "{kubo.url}"\ntimeout = 5'
        store = open_store(StoreConfig.from_table(_table(table), tmp_path))
        assert isinstance(store, KuboRpcStore) and isinstance(store, BlobStore)
        assert (store.timeout, store.fetch_from_network) == (5.0, False)
        cid = store.put(b"kept by the daemon")
        assert store.get(cid) == b"kept by the daemon"
        assert "add" in kubo.commands() and "block/get" in kubo.commands()
        close_store(store)
        fetching = open_store(
            StoreConfig.from_table(
                {"backend": "kubo", "api": kubo.url, "fetch_from_network": True}, tmp_path
            )
        )
        assert isinstance(fetching, KuboRpcStore) and fetching.fetch_from_network
        close_store(fetching)
    finally:
        kubo.close()
    assert not (tmp_path / "store").exists()  # nothing written locally


@pytest.mark.parametrize(
    ("table", "error", "words"),
    [
        ({"backend": "s3"}, UnknownBackend, "'s3' is not one of 'local', 'ipfs', 'kubo'"),
        ({"backend": 3}, UnknownBackend, "3 is not one of"),
        ({"backend": "kubo"}, MissingOption, "'kubo' needs 'api'"),
        ({"backend": "kubo", "api": ""}, MissingOption, "needs 'api'"),
        ({"backend": "kubo", "api_url": "http://127.0.0.1:5001"}, UnknownOption, "'api_url'"),
        ({"peers": ["/ip4/127.0.0.1/tcp/1/p2p/x"]}, UnknownOption, "'local' takes no 'peers'"),
        ({"backend": "ipfs", "api": "http://x"}, UnknownOption, "'ipfs' takes no 'api'"),
        ({"backend": "ipfs", "swarm_port": 70000}, StoreConfigError, "swarm_port"),
        ({"backend": "ipfs", "swarm_port": "4001"}, StoreConfigError, "swarm_port"),
        ({"backend": "ipfs", "peers": "/ip4/127.0.0.1"}, StoreConfigError, "'peers' must be"),
        ({"backend": "ipfs", "timeout": 0}, StoreConfigError, "'timeout' must be a positive"),
        ({"backend": "ipfs", "timeout": True}, StoreConfigError, "'timeout'"),
        ({"backend": "local", "dir": 5}, StoreConfigError, "'dir' must be"),
        ({"backend": "kubo", "api": "x", "fetch_from_network": 1}, StoreConfigError, "true or"),
        ({"backend": "ipfs", "keep": "yes"}, StoreConfigError, "'keep' must be true or false"),
        ({"keep": False}, UnknownOption, "'local' takes no 'keep'"),  # it never drops a blob
    ],
)
def test_bad_tables_are_refused_with_a_typed_error(
    table: dict[str, object], error: type[Exception], words: str, tmp_path: Path
):
    with pytest.raises(error, match=words.replace("(", r"\(")) as caught:
        StoreConfig.from_table(table, tmp_path)
    assert isinstance(caught.value, StoreConfigError) and isinstance(caught.value, ValueError)
    assert list(tmp_path.iterdir()) == []  # refused before anything was opened


def test_a_kubo_api_that_is_not_a_url_is_a_config_error(tmp_path: Path):
    config = StoreConfig.from_table({"backend": "kubo", "api": "127.0.0.1:5001"}, tmp_path)
    with pytest.raises(StoreConfigError, match="http"):
        open_store(config)


def test_a_config_built_by_hand_with_an_unknown_backend_is_refused(tmp_path: Path):
    with pytest.raises(UnknownBackend):
        open_store(StoreConfig(backend="ftp", dir=tmp_path))
