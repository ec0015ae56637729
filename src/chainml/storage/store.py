"""The one interface every blob store offers, and what all of them share.

A blob is a file in IPFS's sense: ``put`` returns the CIDv1 that ``ipfs add`` (kubo's
defaults) prints in CIDv1 form for the same bytes, whatever the store; ``open`` streams it
back with every block checked against its CID, so a store can lose data but never hand
back wrong bytes unnoticed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Protocol, Self, runtime_checkable

from chainml.storage.unixfs import CHUNK

Source = bytes | bytearray | memoryview | BinaryIO | Path | Iterable[bytes]


@runtime_checkable
class BlobStore(Protocol):
    def put(self, source: Source) -> str:
        """Store bytes, a binary file, a path or an iterable of byte strings; the CIDv1."""
        ...

    def open(self, cid: str) -> Iterator[bytes]:
        """The blob's bytes in order, verified as they come; ``BlobNotFound``,
        ``CorruptBlob`` or ``InvalidCid`` otherwise."""
        ...

    def get(self, cid: str) -> bytes: ...

    def has(self, cid: str) -> bool: ...


class Closing:
    """``with store:`` closes the store at the end."""

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def iter_source(source: Source, size: int = CHUNK) -> Iterator[bytes]:
    """The bytes of any ``Source``, in pieces of at most ``size`` (bytes and files) or as
    the iterable yields them."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        view = memoryview(source)
        if not len(view):
            yield b""
        for i in range(0, len(view), size):
            yield bytes(view[i : i + size])
    elif isinstance(source, Path):
        with source.open("rb") as fh:
            yield from iter_source(fh, size)
    elif hasattr(source, "read"):
        while piece := source.read(size):
            yield piece
    else:
        yield from source


@contextmanager
def atomic_file(dest: Path, prefix: str = ".tmp-") -> Iterator[BinaryIO]:
    """A file that appears at ``dest`` whole or not at all: written beside it, fsynced and
    renamed over it when the block exits normally, removed if anything is raised."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=prefix)
    try:
        with os.fdopen(fd, "wb") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
