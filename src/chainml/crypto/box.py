"""``SecretBox``: ChaCha20-Poly1305 under one key, the library making every nonce.

Each message gets a random 96-bit nonce, carried in front of its ciphertext, so a key can
seal many messages without its caller keeping a counter (random nonces are safe for about
2^32 messages a key).  What the message is for goes in the associated data; opening
anything else — another key, other associated data, a changed or cut byte — raises
``DecryptionFailed``, one error for all of them.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from chainml.crypto.errors import DecryptionFailed, InvalidKey

NONCE = 12
TAG = 16


class SecretBox:
    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise InvalidKey("a box key is 32 bytes")
        self._aead = ChaCha20Poly1305(key)

    def encrypt(self, plain: bytes, associated: bytes) -> bytes:
        nonce = os.urandom(NONCE)
        return nonce + self._aead.encrypt(nonce, plain, associated)

    def decrypt(self, sealed: bytes, associated: bytes) -> bytes:
        if len(sealed) < NONCE + TAG:
            raise DecryptionFailed("too short to be a sealed message")
        try:
            return self._aead.decrypt(sealed[:NONCE], sealed[NONCE:], associated)
        except InvalidTag:
            raise DecryptionFailed("the message does not authenticate") from None

    def __repr__(self) -> str:  # the key is secret
        return "SecretBox()"
