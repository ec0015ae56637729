"""HPKE (RFC 9180) single-shot sealing to an X25519 public key.

Suite: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, base mode — the one
``cryptography`` implements.  ``info`` binds the ciphertext to its context (chainml passes
the envelope header), so a ciphertext moved to another header does not open.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from chainml.crypto.errors import DecryptionFailed, InvalidKey
from chainml.crypto.keys import X25519KeyPair

SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
ENC_SIZE = 32  # the encapsulated key that precedes the ciphertext
OVERHEAD = ENC_SIZE + 16  # plus the Poly1305 tag


def seal(recipient_public: bytes, plaintext: bytes, info: bytes) -> bytes:
    """``enc || ciphertext`` that only the holder of the matching private key opens."""
    if len(recipient_public) != 32:
        raise InvalidKey("an X25519 public key is 32 bytes")
    public = X25519PublicKey.from_public_bytes(recipient_public)
    return bytes(SUITE.encrypt(plaintext, public, info=info))


def open_sealed(recipient: X25519KeyPair, sealed: bytes, info: bytes) -> bytes:
    """The plaintext; raises ``DecryptionFailed`` for a wrong key, wrong ``info`` or any
    change to ``sealed``."""
    if len(sealed) < OVERHEAD:
        raise DecryptionFailed("sealed payload shorter than HPKE's overhead")
    try:
        return bytes(SUITE.decrypt(sealed, recipient._private, info=info))
    except (InvalidTag, ValueError) as exc:
        raise DecryptionFailed("sealed payload does not open with this key and context") from exc
