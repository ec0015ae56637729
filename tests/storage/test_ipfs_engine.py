"""The embedded kubo engine as a BlobStore: real IPFS peers talking over loopback.

Two engines run in this process (``provider`` adds, ``fetcher`` connects and reads over
libp2p/bitswap), a third is opened and closed on its own, and two more run as child
processes (``python -m chainml.storage.ipfs_engine serve``).
"""

from __future__ import annotations

import io
import json
import os
import platform
import random
import selectors
import signal
import subprocess
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from chainml.storage import ipfs_engine
from chainml.storage.cid import RAW, Cid, sha256_multihash
from chainml.storage.errors import BlobNotFound, CorruptBlob, InvalidCid, MalformedBlock
from chainml.storage.ipfs_engine import (
    EngineClosed,
    EngineError,
    InvalidPeerAddress,
    IpfsEngineStore,
    PeerUnreachable,
)
from chainml.storage.store import BlobStore
from chainml.storage.unixfs import CHUNK, cid_v0, cid_v1
from tests.storage.conformance import BlobStoreContract

try:
    ipfs_engine._lib()
except ipfs_engine.EngineUnavailable as exc:
    if sys.platform == "linux" and platform.machine() == "x86_64":
        raise  # kubo-python is a dependency here: not loading it is a failure
    pytest.skip(
        f"the kubo engine of kubo-python cannot be loaded on {sys.platform}/"
        f"{platform.machine()}: {exc}",
        allow_module_level=True,
    )

SIZES = [0, 1, CHUNK, CHUNK + 1, 3_000_000]
SHORT = 1.5  # seconds: the timeout given where nothing can be found


def unknown_cid() -> str:
    return cid_v1(b"never stored anywhere " + random.randbytes(16))


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IpfsEngineStore]:
    with IpfsEngineStore(tmp_path_factory.mktemp("provider"), timeout=20) as store:
        yield store


@pytest.fixture(scope="module")
def fetcher(
    tmp_path_factory: pytest.TempPathFactory, provider: IpfsEngineStore
) -> Iterator[IpfsEngineStore]:
    root = tmp_path_factory.mktemp("fetcher")
    with IpfsEngineStore(root, peers=[provider.multiaddr], timeout=20) as store:
        yield store


def test_is_a_blob_store(provider: IpfsEngineStore):
    assert isinstance(provider, BlobStore)


class TestEngineContract(BlobStoreContract):
    """What every BlobStore promises, with the reads going to the other peer."""

    @pytest.fixture
    def store(self, provider: IpfsEngineStore) -> IpfsEngineStore:
        return provider

    @pytest.fixture
    def reader(self, fetcher: IpfsEngineStore, monkeypatch: pytest.MonkeyPatch) -> IpfsEngineStore:
        monkeypatch.setattr(fetcher, "timeout", 3.0)  # the contract's unknown CID waits this
        return fetcher


@pytest.mark.parametrize("size", SIZES)
def test_fetched_from_the_other_peer_byte_identical(
    provider: IpfsEngineStore, fetcher: IpfsEngineStore, size: int
):
    data = random.Random(size).randbytes(size)
    cid = provider.put(data)
    assert cid == cid_v1(data)
    assert not fetcher.has(cid)
    assert fetcher.get(cid) == data  # over libp2p from the provider
    assert fetcher.get(cid_v0(data)) == data  # either form names the same blob
    assert provider.get(cid) == data


def test_every_source_gives_the_same_cid(provider: IpfsEngineStore, tmp_path: Path):
    data = random.Random(1).randbytes(2 * CHUNK + 5)
    path = tmp_path / "artifact.bin"
    path.write_bytes(data)
    pieces = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    cids = {
        provider.put(data),
        provider.put(path),
        provider.put(io.BytesIO(data)),
        provider.put(pieces),
    }
    assert cids == {cid_v1(data)}


def temporary_files(store: IpfsEngineStore) -> set[Path]:
    """(Calls abandoned after a timeout keep theirs until they end.)"""
    return set((store.root / "tmp").iterdir())


def test_open_streams_verified_pieces(provider: IpfsEngineStore, fetcher: IpfsEngineStore):
    data = random.Random(2).randbytes(2 * CHUNK + 1)
    before = temporary_files(fetcher)
    pieces = list(fetcher.open(provider.put(data)))
    assert [len(p) for p in pieces] == [CHUNK, CHUNK, 1]
    assert b"".join(pieces) == data
    assert temporary_files(fetcher) == before  # the temporary file is gone


def test_unknown_cid_is_not_found_within_the_timeout(fetcher: IpfsEngineStore):
    for read in (fetcher.get, lambda cid, timeout: list(fetcher.open(cid, timeout=timeout))):
        started = time.monotonic()
        with pytest.raises(BlobNotFound):
            read(unknown_cid(), timeout=SHORT)
        assert time.monotonic() - started < SHORT + 1.5


def test_has_pin_unpin(provider: IpfsEngineStore, fetcher: IpfsEngineStore):
    data = random.Random(3).randbytes(CHUNK * 3)
    cid = provider.put(data)
    assert provider.has(cid)  # put pins
    assert fetcher.get(cid) == data
    assert not fetcher.has(cid)  # read, cached, not pinned
    fetcher.pin(cid)
    assert fetcher.has(cid) and fetcher.has(cid_v0(data))
    assert fetcher.unpin(cid) is True
    assert not fetcher.has(cid)
    assert fetcher.unpin(cid) is False  # nothing to do
    started = time.monotonic()
    assert not fetcher.has(unknown_cid())  # local only: no waiting on the network
    assert time.monotonic() - started < 1


def test_pin_fetches_from_the_peer(provider: IpfsEngineStore, fetcher: IpfsEngineStore):
    data = random.Random(4).randbytes(CHUNK + 7)
    cid = provider.put(data)
    fetcher.pin(cid)
    assert fetcher.has(cid)
    assert fetcher.unpin(cid)


def test_pin_of_unknown_cid_times_out(fetcher: IpfsEngineStore):
    started = time.monotonic()
    with pytest.raises(BlobNotFound):
        fetcher.pin(unknown_cid(), timeout=SHORT)
    assert time.monotonic() - started < SHORT + 1.5


@pytest.mark.parametrize("bad", ["", "Qm123", "b" + "a" * 58, "../../etc/passwd", "bafy!!"])
def test_malformed_cid(fetcher: IpfsEngineStore, bad: str):
    for call in (fetcher.get, fetcher.open, fetcher.has, fetcher.pin, fetcher.unpin):
        with pytest.raises(InvalidCid):
            call(bad)


def test_directory_cid_is_refused_before_anything_is_written(
    provider: IpfsEngineStore, fetcher: IpfsEngineStore, tmp_path: Path
):
    # a directory can only be added through the library itself: this store adds files only
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    (folder / "sub" / "escape.txt").write_bytes(b"written by whoever built the DAG")
    lib = ipfs_engine._lib()
    answer = lib.take_string(lib.kubo.AddFile(provider._repo, os.fsencode(folder), False))
    assert answer
    before = temporary_files(fetcher)
    with pytest.raises(MalformedBlock):
        fetcher.get(answer)
    assert temporary_files(fetcher) == before
    assert not any(p.name == "escape.txt" for p in fetcher.root.rglob("*"))


class _Tampering:
    """The real library, except that ``Download`` replaces the bytes it wrote."""

    def __init__(self, real: object) -> None:
        self._real = real

    def __getattr__(self, name: str) -> object:
        return getattr(self._real, name)

    def Download(self, repo: bytes, cid: bytes, dest: bytes) -> int:
        rc: int = self._real.Download(repo, cid, dest)  # type: ignore[attr-defined]
        with open(dest, "r+b") as fh:
            fh.seek(CHUNK + 3)
            fh.write(b"\xff")
        return rc


def test_bytes_that_do_not_rebuild_to_the_cid_are_never_released(
    provider: IpfsEngineStore, fetcher: IpfsEngineStore, monkeypatch: pytest.MonkeyPatch
):
    cid = provider.put(random.Random(5).randbytes(2 * CHUNK))
    real = ipfs_engine._lib()
    before = temporary_files(fetcher)
    monkeypatch.setattr(
        fetcher,
        "_lib",
        types.SimpleNamespace(kubo=_Tampering(real.kubo), take_string=real.take_string),
    )
    with pytest.raises(CorruptBlob):
        fetcher.open(cid)  # raised before a single byte is handed out
    assert temporary_files(fetcher) == before


def test_an_engine_that_names_another_cid_is_refused(
    provider: IpfsEngineStore, monkeypatch: pytest.MonkeyPatch
):
    real = ipfs_engine._lib()
    other = cid_v0(b"something else")
    monkeypatch.setattr(
        provider, "_lib", types.SimpleNamespace(kubo=real.kubo, take_string=lambda _p: other)
    )
    with pytest.raises(CorruptBlob):
        provider.put(b"these bytes")


def test_raw_cid_is_checked_as_one_block(tmp_path: Path):
    data = b"a raw block"
    path = tmp_path / "raw"
    path.write_bytes(data)
    with path.open("rb") as fh:
        ipfs_engine._verify(fh, Cid(RAW, sha256_multihash(data)))
        fh.seek(0)
        with pytest.raises(CorruptBlob):
            ipfs_engine._verify(fh, Cid(RAW, sha256_multihash(b"other")))


@pytest.mark.parametrize(
    "address",
    [
        "/ip4/8.8.8.8/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
        "/ip4/10.0.0.1/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
        "/dns4/localhost/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
        "/ip6/::1/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
        "/ip4/127.0.0.1/tcp/4001",
        "/ip4/127.0.0.999/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ",
        "/ip4/127.0.0.1/tcp/4001/p2p/QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ/x",
    ],
)
def test_connect_only_to_loopback_peers(fetcher: IpfsEngineStore, address: str):
    with pytest.raises(InvalidPeerAddress):
        fetcher.connect(address)


def test_unreachable_peer(fetcher: IpfsEngineStore):
    # port 1: nothing listens there (a peer not yet connected: for one that is, the
    # engine answers from its open connection)
    peer = "QmaCpDMGvV2BGHeYERUEnRQAwe3N8SzbUtfsmvsqQLuvuJ"
    with pytest.raises(PeerUnreachable):
        fetcher.connect(f"/ip4/127.0.0.1/tcp/1/p2p/{peer}", timeout=5)


def test_config_reaches_loopback_only(provider: IpfsEngineStore):
    config = json.loads((provider.root / "kubo" / "config").read_text())
    assert config["Bootstrap"] == []
    assert config["Addresses"]["Swarm"] == ["/ip4/127.0.0.1/tcp/0"]
    assert config["Discovery"]["MDNS"]["Enabled"] is False
    assert config["Swarm"]["DisableNatPortMap"] is True
    assert "/ip4/128.0.0.0/ipcidr/1" in config["Swarm"]["AddrFilters"]
    assert provider.multiaddr == (
        f"/ip4/127.0.0.1/tcp/{provider.swarm_port}/p2p/{provider.peer_id}"
    )
    assert 0 < provider.swarm_port < 65536


def test_one_store_per_repository_per_process(provider: IpfsEngineStore):
    with pytest.raises(EngineError):
        IpfsEngineStore(provider.root)


def test_close_interrupts_waiting_calls_and_reopen_keeps_the_blobs(tmp_path: Path):
    data = random.Random(6).randbytes(CHUNK + 1)
    store = IpfsEngineStore(tmp_path / "node")
    peer_id = store.peer_id
    cid = store.put(data)
    with pytest.raises(BlobNotFound):
        store.get(unknown_cid(), timeout=0.5)  # leaves a call waiting in the engine
    started = time.monotonic()
    store.close()
    assert time.monotonic() - started < 5
    store.close()  # idempotent
    assert list((tmp_path / "node" / "tmp").iterdir()) == []
    for call in (store.get, store.has, store.pin, store.put):
        with pytest.raises(EngineClosed):
            call(cid)
    with IpfsEngineStore(tmp_path / "node") as again:
        assert again.peer_id == peer_id
        assert again.has(cid)
        assert again.get(cid) == data


# -- peers in other processes ----------------------------------------------------------


def _serve(repo: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "chainml.storage.ipfs_engine", "serve", str(repo)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=repo.parent,
    )


def _readline(proc: subprocess.Popen[bytes], timeout: float = 20) -> str:
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            proc.kill()
            raise AssertionError("the engine process said nothing")
    return proc.stdout.readline().decode().strip()


def test_peer_in_another_process(fetcher: IpfsEngineStore, tmp_path: Path):
    data = random.Random(7).randbytes(3_000_000)
    (tmp_path / "blob").write_bytes(data)
    proc = _serve(tmp_path / "remote")
    try:
        assert proc.stdin is not None
        multiaddr = _readline(proc)
        proc.stdin.write(f"{tmp_path / 'blob'}\n".encode())
        proc.stdin.flush()
        cid = _readline(proc)
        assert cid == cid_v1(data)
        fetcher.connect(multiaddr)
        assert fetcher.get(cid) == data
        proc.stdin.close()  # serves until stdin closes
        assert proc.wait(timeout=15) == 0
        # the library's debug log, which it opens in the working directory, is discarded
        assert not (tmp_path / "kubo.log").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigterm_still_ends_an_engine_process(tmp_path: Path):
    # Go's runtime takes SIGTERM when a node starts; the store hands it back to Python
    proc = _serve(tmp_path / "remote")
    try:
        assert _readline(proc).startswith("/ip4/127.0.0.1/tcp/")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
