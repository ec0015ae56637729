"""Sealed artifacts: nothing in the clear in the store, every kind of misuse refused."""

from __future__ import annotations

import dataclasses
import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from chainml.crypto.errors import DecryptionFailed, InvalidKey, WrongKey
from chainml.crypto.stream import generate_key
from chainml.storage.errors import BlobNotFound, InvalidCid
from chainml.storage.local import LocalBlobStore
from chainml.storage.sealed import (
    CommitmentMismatch,
    MalformedManifest,
    Manifest,
    load_manifest,
    open_artifact,
    open_to_file,
    seal_artifact,
)
from chainml.storage.unixfs import cid_v1
from chainml.training.errors import TrainingError
from chainml.training.models import from_safetensors, to_safetensors


@pytest.fixture
def store(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "store")


def _weights() -> bytes:
    rng = np.random.default_rng(0)
    return to_safetensors(
        {"w": rng.normal(size=(64, 10)).astype(np.float32), "b": np.zeros(10, np.float32)}
    )


def test_model_round_trip_and_nothing_in_the_clear(store: LocalBlobStore):
    key, blob = generate_key(), _weights()
    sealed = seal_artifact(
        store,
        key,
        blob,
        artifact_id="digits-mlp",
        version=1,
        media_type="application/vnd.safetensors",
    )
    manifest = load_manifest(store, sealed.manifest_cid)
    assert manifest == sealed.manifest and manifest.plaintext_length == len(blob)
    params = from_safetensors(open_artifact(store, key, manifest))
    assert set(params) == {"w", "b"}
    everything = b"".join(p.read_bytes() for p in store.root.rglob("*") if p.is_file())
    assert b"__metadata__" not in everything and b"float32" not in everything.lower()
    assert b'"F32"' not in everything and blob[100:164] not in everything
    assert key not in everything and key.hex().encode() not in everything


def test_wrong_key_and_wrong_version_are_refused(store: LocalBlobStore):
    key = generate_key()
    sealed = seal_artifact(store, key, os.urandom(5000), artifact_id="m", version=2)
    with pytest.raises(WrongKey):
        open_artifact(store, generate_key(), sealed.manifest)
    relabelled = dataclasses.replace(sealed.manifest, version=3)
    with pytest.raises(WrongKey):  # the same ciphertext claimed as another version
        open_artifact(store, key, relabelled)
    with pytest.raises(InvalidKey):
        open_artifact(store, b"short", sealed.manifest)


def test_a_manifest_that_lies_about_the_plaintext(store: LocalBlobStore):
    key = generate_key()
    sealed = seal_artifact(store, key, os.urandom(5000), artifact_id="m", version=1)
    lying = dataclasses.replace(sealed.manifest, plaintext_commitment="00" * 32)
    with pytest.raises(CommitmentMismatch):
        open_artifact(store, key, lying)
    short = dataclasses.replace(sealed.manifest, plaintext_length=4000)
    with pytest.raises(DecryptionFailed):
        open_artifact(store, key, short)


def test_open_to_file_writes_nothing_on_failure(store: LocalBlobStore, tmp_path: Path):
    key, data = generate_key(), os.urandom(3 * 1024 * 1024)
    sealed = seal_artifact(store, key, data, artifact_id="m", version=1)
    dest = tmp_path / "out.bin"
    with pytest.raises(WrongKey):
        open_to_file(store, generate_key(), sealed.manifest, dest)
    lying = dataclasses.replace(sealed.manifest, plaintext_commitment="11" * 32)
    with pytest.raises(CommitmentMismatch):  # fails only after the last byte
        open_to_file(store, key, lying, dest)
    assert not dest.exists() and not list(tmp_path.glob(".open-*"))
    open_to_file(store, key, sealed.manifest, dest)
    assert dest.read_bytes() == data


def test_unknown_and_malformed_references(store: LocalBlobStore):
    with pytest.raises(BlobNotFound):
        load_manifest(store, cid_v1(b"never stored"))
    with pytest.raises(InvalidCid):
        load_manifest(store, "not-a-cid")
    with pytest.raises(MalformedManifest):
        load_manifest(store, store.put(b'{"format": 1}'))
    with pytest.raises(MalformedManifest):
        load_manifest(store, store.put(b"\x80\x04 not json"))
    with pytest.raises(MalformedManifest):
        Manifest.decode(b"{" + b" " * 5000 + b"}")


class _Exploit:
    def __reduce__(self):  # what a malicious pickle-based "model" does on load
        return (os.system, (f"touch {os.environ['CHAINML_PWNED']}",))


def test_a_crafted_pickle_model_runs_no_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("CHAINML_PWNED", str(marker))
    payload = pickle.dumps(_Exploit())  # built here only to be refused, never loaded
    for crafted in [payload, b"\x08\x00\x00\x00\x00\x00\x00\x00" + payload[:8], _weights()[:40]]:
        with pytest.raises(TrainingError):
            from_safetensors(crafted)
    # a safetensors header whose offsets point past the data
    header = b'{"w":{"dtype":"F32","shape":[1000000],"data_offsets":[0,4000000]}}'
    with pytest.raises(TrainingError):
        from_safetensors(len(header).to_bytes(8, "little") + header + b"\0" * 16)
    assert not marker.exists()
