"""Masks for secure aggregation: ChaCha20 keystreams from full 256-bit seeds.

Every mask is derived with HKDF-SHA256 from a 32-byte seed and a context label that names
what it is for (the job, the round, the pair or the owner), so no two uses share a
keystream.  Output is a uniform vector over Z_2^32 (uint32, wrapping arithmetic).
"""

from __future__ import annotations

import hmac

import numpy as np
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from numpy.typing import NDArray

from chainml.crypto.errors import InvalidKey

_NONCE = bytes(16)  # ChaCha20's 64-bit counter and 64-bit nonce; each key is used once
_NO_SALT = bytes(32)  # RFC 5869: an absent salt is HashLen zeros


def derive(seed: bytes, context: bytes) -> bytes:
    """A 32-byte key for one use, named by ``context``."""
    if len(seed) != 32:
        raise InvalidKey("a PRG seed is 32 bytes")
    if not context:
        raise ValueError("a context label is required")
    # HKDF-SHA256 (RFC 5869) for one block, through the standard library's C HMAC: the
    # same bytes as cryptography's HKDF at a third of its cost (tests/crypto check both)
    prk = hmac.digest(_NO_SALT, seed, "sha256")
    return hmac.digest(prk, context + b"\x01", "sha256")


def mask(seed: bytes, context: bytes, length: int) -> NDArray[np.uint32]:
    """``length`` uniform uint32 values from ``seed`` under ``context``."""
    key = derive(seed, context)
    encryptor = Cipher(algorithms.ChaCha20(key, _NONCE), mode=None).encryptor()
    stream = encryptor.update(bytes(4 * length))
    return np.frombuffer(stream, dtype=np.uint32)
