"""The minimal local content-addressed store and raw CIDs."""

from __future__ import annotations

import pytest

from chainml.storage.cid import digest_of, raw_cid
from chainml.storage.errors import BlobNotFound, CorruptBlob, InvalidCid
from chainml.storage.local import LocalBlobStore


def test_raw_cid_known_answer():
    # `ipfs add --cid-version 1 --raw-leaves` of "hello world\n"
    assert (
        raw_cid(b"hello world\n") == "bafkreifjjcie6lypi6ny7amxnfftagclbuxndqonfipmb64f2km2devei4"
    )
    assert len(digest_of(raw_cid(b""))) == 32
    for bad in ["", "Qm123", "b" + "a" * 58, "bafkrei!!"]:
        with pytest.raises(InvalidCid):
            digest_of(bad)


def test_put_get_verify(tmp_path):
    store = LocalBlobStore(tmp_path)
    cid = store.put(b"model bytes")
    assert store.has(cid) and store.get(cid) == b"model bytes"
    assert store.put(b"model bytes") == cid
    (tmp_path / cid).write_bytes(b"model bytez")
    with pytest.raises(CorruptBlob):
        store.get(cid)
    with pytest.raises(BlobNotFound):
        store.get(raw_cid(b"absent"))
    with pytest.raises(InvalidCid):
        store.get("../../etc/passwd")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]
