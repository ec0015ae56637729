"""docs/protocol/vectors/sealed-v1.json against the code: each suite's ciphertext opens
under its key and associated data to its plaintext; the header carries the suite, the chunk
size and the salt, and its key commitment is the one HKDF derives; the suite-1 artifact's
manifest is canonical, names the ciphertext by its CID and checks the plaintext's length and
commitment when opened from a store; each refused variant raises the error it names, and
another key raises WrongKey before any chunk is decrypted."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chainml.crypto import errors
from chainml.crypto.stream import SUITES, StreamHeader, key_commitment, open_sealed
from chainml.storage.local import LocalBlobStore
from chainml.storage.sealed import Manifest, associated_data, open_artifact
from chainml.storage.unixfs import cid_v1

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "docs/protocol/vectors/sealed-v1.json").read_text()
)["vectors"]


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: SUITES[v["suite"]])
def test_each_suite_opens_to_its_plaintext(v: dict[str, Any], tmp_path: Path) -> None:
    key, ciphertext = bytes.fromhex(v["key"]), bytes.fromhex(v["ciphertext"])
    aad = associated_data(v["artifact_id"], v["version"])
    assert aad.hex() == v["aad"]
    assert open_sealed(key, ciphertext, aad) == bytes.fromhex(v["plaintext"])
    header = StreamHeader.decode(ciphertext[: v["header_length"]])
    assert (header.suite, header.chunk_size) == (v["suite"], v["chunk_size"])
    assert header.key_commitment == key_commitment(key, header.salt, aad)
    if v["manifest"]:
        manifest = Manifest.decode(v["manifest"].encode())
        assert manifest.encode() == v["manifest"].encode()  # the canonical form
        assert manifest.salt == header.salt.hex() and manifest.suite == SUITES[v["suite"]]
        store = LocalBlobStore(tmp_path)
        assert store.put(ciphertext) == cid_v1(ciphertext) == manifest.ciphertext_cid
        assert open_artifact(store, key, manifest) == bytes.fromhex(v["plaintext"])


@pytest.mark.parametrize("v", VECTORS, ids=lambda v: SUITES[v["suite"]])
def test_each_refused_variant_raises_the_error_it_names(v: dict[str, Any]) -> None:
    key = bytes.fromhex(v["key"])
    aad = associated_data(v["artifact_id"], v["version"])
    for refused in v["refused"]:
        with pytest.raises(getattr(errors, refused["error"])):
            open_sealed(key, bytes.fromhex(refused["ciphertext"]), aad)
    with pytest.raises(errors.WrongKey):
        open_sealed(bytes.fromhex(v["wrong_key"]), bytes.fromhex(v["ciphertext"]), aad)
    with pytest.raises(errors.WrongKey):  # the right key for another version
        open_sealed(key, bytes.fromhex(v["ciphertext"]), associated_data(v["artifact_id"], 9))
