"""Errors of chainml.storage."""

from __future__ import annotations

from chainml.errors import ChainmlError


class StorageError(ChainmlError):
    """Base class of storage failures."""


class BlobNotFound(StorageError, KeyError):
    """No blob with that CID in the store."""


class CorruptBlob(StorageError):
    """Stored bytes do not hash to their CID."""


class InvalidCid(StorageError, ValueError):
    """A string that is not a CID this store understands."""


class MalformedBlock(CorruptBlob):
    """A block that hashes right but is not a UnixFS file node this store can read."""
