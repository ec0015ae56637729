"""What every BlobStore promises: one test class, subclassed once per store.

A subclass provides ``store`` (and, for stores that are peers, ``reader``: another handle
that fetches what ``store`` put; by default the same store).
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import pytest

from chainml.storage.cid import parse_cid
from chainml.storage.errors import BlobNotFound, InvalidCid
from chainml.storage.store import BlobStore
from chainml.storage.unixfs import CHUNK, cid_v0, cid_v1

SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 17]


class BlobStoreContract:
    @pytest.fixture
    def reader(self, store: BlobStore) -> BlobStore:
        return store

    def test_is_a_blob_store(self, store: BlobStore):
        assert isinstance(store, BlobStore)

    @pytest.mark.parametrize("size", SIZES)
    def test_round_trip_with_ipfs_cid(self, store: BlobStore, reader: BlobStore, size: int):
        data = random.Random(size).randbytes(size)
        cid = store.put(data)
        assert cid == cid_v1(data)
        assert reader.get(cid) == data
        assert reader.get(cid_v0(data)) == data  # either form names the same blob

    def test_every_source_gives_the_same_cid(self, store: BlobStore, tmp_path: Path):
        data = random.Random(1).randbytes(2 * CHUNK + 5)
        path = tmp_path / "artifact.bin"
        path.write_bytes(data)
        pieces = [data[i : i + 1000] for i in range(0, len(data), 1000)]
        cids = {store.put(data), store.put(path), store.put(io.BytesIO(data)), store.put(pieces)}
        assert cids == {cid_v1(data)}

    def test_open_streams_in_pieces(self, store: BlobStore, reader: BlobStore):
        data = random.Random(2).randbytes(2 * CHUNK + 1)
        pieces = list(reader.open(store.put(data)))
        assert len(pieces) > 1 and b"".join(pieces) == data

    def test_has(self, store: BlobStore, reader: BlobStore):
        cid = store.put(b"present")
        assert store.has(cid)
        assert not store.has(cid_v1(b"never stored anywhere " + random.randbytes(16)))

    def test_unknown_cid(self, reader: BlobStore):
        with pytest.raises(BlobNotFound):
            reader.get(cid_v1(b"never stored anywhere " + random.randbytes(16)))

    @pytest.mark.parametrize("bad", ["", "Qm123", "b" + "a" * 58, "../../etc/passwd", "bafy!!"])
    def test_malformed_cid(self, reader: BlobStore, bad: str):
        with pytest.raises(InvalidCid):
            reader.get(bad)
        with pytest.raises(InvalidCid):
            reader.has(bad)

    def test_cid_forms_parse(self):
        data = b"hello"
        assert parse_cid(cid_v0(data)) == parse_cid(cid_v1(data))
