"""Hash functions with domain separation."""

from __future__ import annotations

import hashlib

from eth_hash.auto import keccak as _keccak


def keccak256(data: bytes) -> bytes:
    """Ethereum's Keccak-256 (not NIST SHA3-256)."""
    return bytes(_keccak(data))


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def tagged_hash(context: bytes, data: bytes) -> bytes:
    """SHA-256 of ``len(context) || context || data``: one label per use, no collisions across."""
    if not context:
        raise ValueError("a context label is required")
    return hashlib.sha256(len(context).to_bytes(2, "big") + context + data).digest()
