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


# -- streaming AEAD: every way a sealed stream can be wrong has its own type ----------------


class MalformedHeader(DecryptionFailed):
    """Not a chainml sealed stream, or one of an unknown version or suite."""


class WrongKey(DecryptionFailed):
    """The key does not match the stream's key commitment (or the context differs)."""


class TamperedChunk(DecryptionFailed):
    """A chunk does not authenticate at any position: its bytes were changed."""


class ReorderedChunk(DecryptionFailed):
    """A chunk that belongs later in the stream appears early."""


class DuplicatedChunk(DecryptionFailed):
    """A chunk that already appeared appears again."""


class TruncatedStream(DecryptionFailed):
    """The stream ends before its final chunk."""


class ExtendedStream(DecryptionFailed):
    """Bytes follow the stream's final chunk."""
