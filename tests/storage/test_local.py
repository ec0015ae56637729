"""The local store passes the contract, catches bad blocks, and never shows half a blob."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from chainml.storage.cid import parse_cid, raw_cid
from chainml.storage.errors import CorruptBlob, MalformedBlock
from chainml.storage.local import LocalBlobStore
from chainml.storage.unixfs import CHUNK, cid_v1
from tests.storage.conformance import BlobStoreContract


class TestLocalStore(BlobStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> LocalBlobStore:
        return LocalBlobStore(tmp_path / "store")


def _block_files(store: LocalBlobStore) -> list[Path]:
    return sorted(p for p in (store.root / "blocks").rglob("b*") if p.is_file())


def test_raw_cid_known_answer():
    # `echo 'hello world' | ipfs add --cid-version 1 --raw-leaves`
    assert (
        raw_cid(b"hello world\n") == "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
    )


def test_a_changed_block_is_named(tmp_path: Path):
    store = LocalBlobStore(tmp_path)
    data = random.Random(5).randbytes(3 * CHUNK)
    cid = store.put(data)
    leaf = next(p for p in _block_files(store) if p.name != cid)
    raw = bytearray(leaf.read_bytes())
    raw[100] ^= 1
    leaf.write_bytes(bytes(raw))
    with pytest.raises(CorruptBlob, match=leaf.name):
        store.get(cid)


def test_a_well_hashed_block_that_is_not_unixfs(tmp_path: Path):
    store = LocalBlobStore(tmp_path)
    junk = b"\x0a\x03abc\xff"  # hashes to its own CID but is no UnixFS node
    cid = parse_cid(raw_cid(junk))
    dag_pb_cid = type(cid)(0x70, cid.multihash)
    path = store.root / "blocks" / dag_pb_cid.v1[-2:] / dag_pb_cid.v1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(junk)
    with pytest.raises(MalformedBlock):
        store.get(dag_pb_cid.v1)


_WRITER = """
import sys
from pathlib import Path
from chainml.storage.local import LocalBlobStore
store = LocalBlobStore(Path(sys.argv[1]))
def pieces():
    import random
    rng = random.Random(11)
    for i in range(400):
        if i == 3:
            print("writing", flush=True)
        yield rng.randbytes(256 * 1024)
store.put(pieces())
print("done", flush=True)
"""


def test_a_writer_killed_mid_write_leaves_no_blob(tmp_path: Path):
    root = tmp_path / "store"
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(root)], stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "writing"
    deadline = time.monotonic() + 30
    store = LocalBlobStore(root)
    while len(_block_files(store)) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    rng = random.Random(11)
    data = b"".join(rng.randbytes(256 * 1024) for _ in range(400))
    cid = cid_v1(data)
    assert len(_block_files(store)) >= 20  # it was killed mid-blob, not before
    assert not store.has(cid)
    assert store.put(data) == cid and store.get(cid) == data  # the next put completes it


def test_blocks_are_written_with_fsync(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    LocalBlobStore(tmp_path).put(random.randbytes(2 * CHUNK + 1))
    assert len(synced) >= 4  # three blocks and at least one directory
