"""CIDs identical to `ipfs add` (kubo defaults), checked against Debian's ipfs_cid."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest

from chainml.storage.unixfs import CHUNK, MAX_LINKS, cid_v0, cid_v1

SIZES = [0, 1, 5, 1000, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17, 10 * CHUNK]


def _ipfs_cid(path: Path) -> dict[str, str]:
    done = subprocess.run(["ipfs_cid", str(path)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[0])


def test_known_answer():
    # `echo -n hello | ipfs add` with kubo's defaults
    assert cid_v0(b"hello") == "QmWfVY9y3xjsixTgbd9AorQxH7VtMpzfx2HaWtsoUYecaX"


@pytest.mark.parametrize("size", SIZES)
def test_same_cid_as_ipfs_add(tmp_path: Path, size: int):
    data = random.Random(size).randbytes(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    ref = _ipfs_cid(path)
    assert (cid_v0(data), cid_v1(data)) == (ref["CIDv0"], ref["CIDv1"])


def test_two_levels_of_links(tmp_path: Path):
    """Past 174 chunks the root links to inner nodes, not to chunks."""
    data = random.Random(7).randbytes(MAX_LINKS * CHUNK + 1)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    assert cid_v0(data) == _ipfs_cid(path)["CIDv0"]


def test_one_changed_byte_changes_the_cid():
    data = bytearray(random.Random(3).randbytes(2 * CHUNK))
    before = cid_v0(bytes(data))
    data[CHUNK + 5] ^= 1
    assert cid_v0(bytes(data)) != before


def _level_wise(data: bytes, links: int) -> bytes:
    """The reference shape: leaves, then parents of ``links`` children, level by level."""
    from chainml.storage import unixfs

    builder = unixfs.DagBuilder()
    leaves = [
        builder._emit(
            [],
            unixfs._unixfs(2, data[i : i + CHUNK], len(data[i : i + CHUNK])),
            len(data[i : i + CHUNK]),
        )
        for i in range(0, len(data), CHUNK)
    ]
    level = leaves
    while len(level) > 1:
        level = [builder._parent(level[i : i + links]) for i in range(0, len(level), links)]
    return level[0].multihash


@pytest.mark.parametrize("chunks", [2, 3, 4, 9, 10, 27, 28, 30])
def test_streaming_builder_matches_level_wise_shape(monkeypatch, chunks: int):
    """With 3 links per node, 28 chunks already need a four-level tree."""
    from chainml.storage import unixfs

    monkeypatch.setattr(unixfs, "MAX_LINKS", 3)
    data = random.Random(chunks).randbytes(chunks * CHUNK - 7)
    blocks: dict[bytes, bytes] = {}
    builder = unixfs.DagBuilder(blocks.__setitem__)
    for i in range(0, len(data), 100_000):
        builder.write(data[i : i + 100_000])
    root = builder.finish()
    assert root == _level_wise(data, 3)
    from chainml.storage.cid import DAG_PB, Cid

    assert b"".join(unixfs.read_file(Cid(DAG_PB, root), lambda c: blocks[c.multihash])) == data
