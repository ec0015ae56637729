"""Errors of chainml.crypto."""

from __future__ import annotations

from chainml.errors import ChainmlError


class CryptoError(ChainmlError):
    """Base class of cryptographic failures."""


class InvalidSignature(CryptoError):
    """A signature did not verify, or was signed by someone other than expected."""


class InvalidKey(CryptoError, ValueError):
    """Key material has the wrong size or form."""


class InvalidProof(CryptoError):
    """A Merkle or zero-knowledge proof did not verify."""


class DecryptionFailed(CryptoError):
    """A ciphertext did not authenticate: wrong key, wrong context, or tampered."""
