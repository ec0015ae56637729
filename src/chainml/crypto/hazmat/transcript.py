"""A Fiat–Shamir transcript over SHA-256 (hazmat).

State starts as ``SHA-256(u16be(len(dst)) || dst)``.  ``absorb(label, data)`` sets
``state = SHA-256(state || 0x01 || u16be(len(label)) || label || u64be(len(data)) || data)``.
``challenge(label)`` derives ``SHA-512(state || 0x02 || u16be(len(label)) || label)``, reads
it big-endian modulo the group order (bias below 2^-256), then absorbs the challenge's
32-byte encoding under the same label, so every later challenge depends on it.
``stream(label, size)`` returns SHAKE-256(state || 0x03 || label) bytes and absorbs a marker.
Every message the prover sends is absorbed before the next challenge is drawn.
"""

from __future__ import annotations

import hashlib

from chainml.crypto.hazmat.bls12_381 import ORDER, SCALAR_BYTES


def _framed(tag: int, label: bytes) -> bytes:
    return bytes([tag]) + len(label).to_bytes(2, "big") + label


class Transcript:
    def __init__(self, dst: bytes) -> None:
        if not dst:
            raise ValueError("a domain separation tag is required")
        self._state = hashlib.sha256(len(dst).to_bytes(2, "big") + dst).digest()

    def absorb(self, label: bytes, data: bytes) -> None:
        self._state = hashlib.sha256(
            self._state + _framed(1, label) + len(data).to_bytes(8, "big") + data
        ).digest()

    def challenge(self, label: bytes) -> int:
        """A scalar in [1, ORDER): a zero challenge is mapped to 1 (probability 2^-255)."""
        wide = hashlib.sha512(self._state + _framed(2, label)).digest()
        value = int.from_bytes(wide, "big") % ORDER or 1
        self.absorb(label, value.to_bytes(SCALAR_BYTES, "big"))
        return value

    def stream(self, label: bytes, size: int) -> bytes:
        out = hashlib.shake_256(self._state + _framed(3, label)).digest(size)
        self.absorb(label, b"stream")
        return out

    def digest(self) -> bytes:
        return self._state
