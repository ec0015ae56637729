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
