"""A content-addressed blob store on the local disk.

Blobs are written atomically (temporary file, fsync, rename, fsync of the directory), so a
crash leaves either the whole blob or none of it, and are verified against their CID on
every read.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from chainml.storage.cid import digest_of, raw_cid
from chainml.storage.errors import BlobNotFound, CorruptBlob

MAX_BLOB = 256 * 1024  # one raw block; larger artifacts need the chunked DAG store


class LocalBlobStore:
    """``put(data) -> cid``, ``get(cid) -> data``, ``has(cid)``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, cid: str) -> Path:
        digest_of(cid)  # validates the form before it names a file
        return self.root / cid

    def put(self, data: bytes) -> str:
        if len(data) > MAX_BLOB:
            raise ValueError(f"a raw block holds at most {MAX_BLOB} bytes")
        cid = raw_cid(data)
        path = self._path(cid)
        if path.exists():
            return cid
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(self.root, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return cid

    def get(self, cid: str) -> bytes:
        path = self._path(cid)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(cid) from None
        if raw_cid(data) != cid:
            raise CorruptBlob(f"blob {cid} does not match its CID")
        return data

    def has(self, cid: str) -> bool:
        return self._path(cid).exists()
