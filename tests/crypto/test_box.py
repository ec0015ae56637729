"""SecretBox: random nonces, one opaque error for every way a message can be wrong."""

from __future__ import annotations

import os

import pytest

from chainml.crypto.box import NONCE, TAG, SecretBox
from chainml.crypto.errors import DecryptionFailed, InvalidKey


def test_a_box_opens_what_it_sealed_and_nothing_else():
    key = os.urandom(32)
    box = SecretBox(key)
    sealed = box.encrypt(b"a share", b"round 3|1->2")
    assert len(sealed) == NONCE + len(b"a share") + TAG
    assert SecretBox(key).decrypt(sealed, b"round 3|1->2") == b"a share"
    assert box.encrypt(b"a share", b"round 3|1->2")[:NONCE] != sealed[:NONCE]  # fresh nonces
    flipped = bytearray(sealed)
    flipped[NONCE + 2] ^= 1
    for bad, associated in (
        (bytes(flipped), b"round 3|1->2"),
        (sealed[:-1], b"round 3|1->2"),
        (sealed[: NONCE + TAG - 1], b"round 3|1->2"),
        (sealed, b"round 4|1->2"),
    ):
        with pytest.raises(DecryptionFailed):
            box.decrypt(bad, associated)
    with pytest.raises(DecryptionFailed):
        SecretBox(os.urandom(32)).decrypt(sealed, b"round 3|1->2")
    with pytest.raises(InvalidKey):
        SecretBox(b"short")
    assert key.hex() not in repr(box)
