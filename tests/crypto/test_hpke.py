from __future__ import annotations

import pytest

from chainml.crypto.errors import DecryptionFailed, InvalidKey
from chainml.crypto.hpke import OVERHEAD, open_sealed, seal
from chainml.crypto.keys import X25519KeyPair


def test_round_trip_and_size():
    key = X25519KeyPair.generate()
    sealed = seal(key.public_bytes, b"model key", b"header")
    assert len(sealed) == len(b"model key") + OVERHEAD
    assert open_sealed(key, sealed, b"header") == b"model key"


def test_each_seal_is_fresh():
    key = X25519KeyPair.generate()
    assert seal(key.public_bytes, b"x", b"i") != seal(key.public_bytes, b"x", b"i")


def test_wrong_key_wrong_context_and_every_flipped_byte_fail():
    key, other = X25519KeyPair.generate(), X25519KeyPair.generate()
    sealed = seal(key.public_bytes, b"payload bytes", b"ctx")
    with pytest.raises(DecryptionFailed):
        open_sealed(other, sealed, b"ctx")
    with pytest.raises(DecryptionFailed):
        open_sealed(key, sealed, b"ctx2")
    for i in range(len(sealed)):
        tampered = bytearray(sealed)
        tampered[i] ^= 0x01
        with pytest.raises(DecryptionFailed):
            open_sealed(key, bytes(tampered), b"ctx")
    with pytest.raises(DecryptionFailed):
        open_sealed(key, sealed[: OVERHEAD - 1], b"ctx")


def test_bad_public_key():
    with pytest.raises(InvalidKey):
        seal(b"\1" * 31, b"x", b"")
