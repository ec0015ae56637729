"""Salted commitments to private data sets.

A data owner commits to its records with one Merkle root on chain.  Each record's leaf is
``salt_i || sha256(record_i)`` where ``salt_i = HMAC-SHA256(master_salt, context || i)``:
without the salts the root reveals nothing about the records (no dictionary attack on
small records), and revealing one record with its salt reveals nothing about the others.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from chainml.crypto.errors import InvalidKey, InvalidProof
from chainml.crypto.hashing import sha256, tagged_hash
from chainml.crypto.merkle import MerkleTree, verify_inclusion

SALT_CONTEXT = b"chainml/dataset/salt/v1"
SCHEMA_CONTEXT = b"chainml/dataset/schema/v1"
RECORD_FORMAT = b"\x01"  # version of encode_float_records


def _salt(master: bytes, index: int) -> bytes:
    return hmac.new(master, SALT_CONTEXT + index.to_bytes(8, "big"), "sha256").digest()


@dataclass(frozen=True)
class RecordOpening:
    """What a data owner reveals to prove that ``record`` is record ``index`` of the set."""

    index: int
    record: bytes
    salt: bytes
    proof: list[bytes]


class DatasetCommitment:
    """The commitment to a list of records; keeps the master salt, which is secret."""

    def __init__(self, records: Sequence[bytes], master_salt: bytes) -> None:
        if len(master_salt) != 32:
            raise InvalidKey("the master salt is 32 bytes")
        self._records = list(records)
        self._master = master_salt
        self._tree = MerkleTree(
            [_salt(master_salt, i) + sha256(r) for i, r in enumerate(self._records)]
        )

    @classmethod
    def build(cls, records: Sequence[bytes], master_salt: bytes | None = None) -> DatasetCommitment:
        """Commit to ``records`` with a fresh random master salt unless one is given."""
        return cls(records, master_salt if master_salt is not None else secrets.token_bytes(32))

    @property
    def root(self) -> bytes:
        return self._tree.root

    @property
    def record_count(self) -> int:
        return len(self._records)

    def master_salt(self) -> bytes:
        return self._master

    def opening(self, index: int) -> RecordOpening:
        return RecordOpening(
            index, self._records[index], _salt(self._master, index), self._tree.proof(index)
        )

    def __repr__(self) -> str:
        return f"DatasetCommitment(root={self.root.hex()}, records={self.record_count})"


def verify_opening(root: bytes, opening: RecordOpening) -> None:
    """Raise ``InvalidProof`` unless the opening's record is committed under ``root``."""
    if len(opening.salt) != 32:
        raise InvalidProof("a record salt is 32 bytes")
    verify_inclusion(root, opening.salt + sha256(opening.record), opening.proof)


def encode_float_records(x: NDArray[np.floating], y: NDArray[np.integer]) -> list[bytes]:
    """Canonical bytes of numeric rows: format byte, float64 features, int64 label (LE)."""
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError("need a 2-D feature array and one label per row")
    feats = np.ascontiguousarray(x, dtype="<f8")
    labels = np.asarray(y, dtype="<i8")
    return [RECORD_FORMAT + feats[i].tobytes() + labels[i].tobytes() for i in range(len(feats))]


def schema_hash(description: str) -> bytes:
    """A 32-byte hash naming a data set's schema (features, types, label)."""
    return tagged_hash(SCHEMA_CONTEXT, description.encode())
