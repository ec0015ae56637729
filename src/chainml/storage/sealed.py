"""Sealed artifacts: a model or data shard encrypted before it touches any store.

``seal_artifact`` streams the plaintext through ``chainml.crypto.stream`` into a store and
then stores a small JSON manifest beside it; the manifest's CID is what the Models
contract references (with the ciphertext CID and the plaintext commitment).  The
associated data binds the artifact id and version, so a ciphertext cannot be passed off as
another model or another version.  ``open_artifact`` checks the key against the manifest's
key commitment before reading a byte, and the length and plaintext commitment after the
last; written to a file, the plaintext appears under its name only once all of it checked.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from chainml.crypto.errors import DecryptionFailed, WrongKey
from chainml.crypto.stream import (
    DEFAULT_CHUNK,
    SUITES,
    StreamOpener,
    StreamSealer,
    key_commitment,
)
from chainml.storage.cid import parse_cid
from chainml.storage.errors import StorageError
from chainml.storage.store import BlobStore, Source, atomic_file, iter_source

FORMAT = 1
MAX_MANIFEST = 4096


class MalformedManifest(StorageError, ValueError):
    """A manifest that is not valid JSON of the known format."""


class CommitmentMismatch(DecryptionFailed):
    """The plaintext opened but does not match the manifest's length or commitment."""


@dataclass(frozen=True)
class Manifest:
    artifact_id: str
    version: int
    media_type: str
    suite: str
    chunk_size: int
    plaintext_length: int
    plaintext_commitment: str  # hex, keyed BLAKE3 (see chainml.crypto.stream)
    key_commitment: str  # hex
    salt: str  # hex, the stream's HKDF salt (public)
    ciphertext_cid: str
    format: int = FORMAT
    # the CID of the public bundle that verifies proofs of inference with this model
    # (``chainml.inference.zkml``); written only when set, so other manifests keep their CID
    zk_bundle: str = ""

    @property
    def aad(self) -> bytes:
        return associated_data(self.artifact_id, self.version)

    def check_key(self, key: bytes) -> None:
        """Raises ``WrongKey`` unless ``key`` opens this artifact."""
        expected = bytes.fromhex(self.key_commitment)
        if not hmac.compare_digest(
            key_commitment(key, bytes.fromhex(self.salt), self.aad), expected
        ):
            raise WrongKey("the key does not match the artifact's key commitment")

    def encode(self) -> bytes:
        doc = asdict(self)
        if not self.zk_bundle:
            del doc["zk_bundle"]
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, data: bytes) -> Manifest:
        if len(data) > MAX_MANIFEST:
            raise MalformedManifest("manifest too large")
        try:
            raw = json.loads(data)
            manifest = cls(**raw)
        except (ValueError, TypeError) as exc:
            raise MalformedManifest("not a chainml manifest") from exc
        manifest.validate()
        return manifest

    def validate(self) -> None:
        checks = [
            self.format == FORMAT,
            isinstance(self.artifact_id, str) and 0 < len(self.artifact_id) <= 128,
            isinstance(self.version, int) and self.version >= 0,
            self.suite in SUITES.values(),
            isinstance(self.chunk_size, int) and self.chunk_size > 0,
            isinstance(self.plaintext_length, int) and self.plaintext_length >= 0,
            all(_is_hex32(v) for v in (self.plaintext_commitment, self.key_commitment, self.salt)),
        ]
        if not all(checks):
            raise MalformedManifest("manifest fields out of range")
        parse_cid(self.ciphertext_cid)
        if not isinstance(self.zk_bundle, str):
            raise MalformedManifest("zk_bundle is a CID")
        if self.zk_bundle:
            parse_cid(self.zk_bundle)


def _is_hex32(value: object) -> bool:
    try:
        return isinstance(value, str) and len(bytes.fromhex(value)) == 32
    except ValueError:
        return False


def associated_data(artifact_id: str, version: int) -> bytes:
    name = artifact_id.encode()
    return b"chainml/artifact/v1" + len(name).to_bytes(2, "big") + name + version.to_bytes(8, "big")


@dataclass(frozen=True)
class SealedArtifact:
    manifest: Manifest
    manifest_cid: str

    @property
    def plaintext_commitment(self) -> bytes:
        return bytes.fromhex(self.manifest.plaintext_commitment)


def seal_artifact(
    store: BlobStore,
    key: bytes,
    source: Source,
    *,
    artifact_id: str,
    version: int,
    media_type: str = "application/octet-stream",
    chunk_size: int = DEFAULT_CHUNK,
    zk_bundle: str = "",
) -> SealedArtifact:
    """Encrypt ``source`` under ``key`` into ``store``; the manifest is stored too (naming
    ``zk_bundle``, the CID of a model's proof-verification bundle, if given)."""
    sealer = StreamSealer(key, associated_data(artifact_id, version), chunk_size=chunk_size)

    def ciphertext() -> Iterator[bytes]:
        for piece in iter_source(source, chunk_size):
            yield from sealer.update(piece)
        yield from sealer.finalize()

    ciphertext_cid = store.put(ciphertext())
    assert sealer.plaintext_commitment is not None
    manifest = Manifest(
        artifact_id=artifact_id,
        version=version,
        media_type=media_type,
        suite=SUITES[sealer.header.suite],
        chunk_size=chunk_size,
        plaintext_length=sealer.plaintext_length,
        plaintext_commitment=sealer.plaintext_commitment.hex(),
        key_commitment=sealer.header.key_commitment.hex(),
        salt=sealer.header.salt.hex(),
        ciphertext_cid=ciphertext_cid,
        zk_bundle=zk_bundle,
    )
    return SealedArtifact(manifest, store.put(manifest.encode()))


def load_manifest(store: BlobStore, manifest_cid: str) -> Manifest:
    return Manifest.decode(store.get(manifest_cid))


def open_stream(store: BlobStore, key: bytes, manifest: Manifest) -> Iterator[bytes]:
    """The plaintext, piece by piece; the last step raises if the whole does not match the
    manifest, so only a caller that reads to the end knows the artifact was intact."""
    opener = StreamOpener(key, manifest.aad, manifest.plaintext_length)
    for piece in store.open(manifest.ciphertext_cid):
        yield from opener.update(piece)
    yield from opener.finalize()
    assert opener.header is not None and opener.plaintext_commitment is not None
    if (
        opener.header.key_commitment.hex() != manifest.key_commitment
        or opener.plaintext_commitment.hex() != manifest.plaintext_commitment
        or opener.plaintext_length != manifest.plaintext_length
    ):
        raise CommitmentMismatch("the artifact does not match its manifest")


def open_artifact(store: BlobStore, key: bytes, manifest: Manifest) -> bytes:
    return b"".join(list(open_stream(store, key, manifest)))


def open_to_file(store: BlobStore, key: bytes, manifest: Manifest, dest: Path) -> None:
    """Write the plaintext to ``dest`` atomically: on any error nothing appears there."""
    with atomic_file(Path(dest), prefix=".open-") as fh:
        for piece in open_stream(store, key, manifest):
            fh.write(piece)
