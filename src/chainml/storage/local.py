"""The embedded default store: UnixFS blocks on the local disk.

A blob is kept as the blocks ``ipfs add`` would make of it, each in a file named by its
CID.  Every block is written atomically (temporary file, fsync, rename) and the blob's
root block last, after the directory entries of all the others are on disk: a writer
killed at any point leaves no root, so ``has`` says no and no partial blob is visible (the
orphaned blocks are reused by the next put of the same bytes).  Every block is hashed again
on every read.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from chainml.storage.cid import DAG_PB, Cid, parse_cid
from chainml.storage.errors import BlobNotFound
from chainml.storage.store import Source, atomic_file, iter_source
from chainml.storage.unixfs import DagBuilder, read_file


class LocalBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._blocks = self.root / "blocks"
        self._blocks.mkdir(parents=True, exist_ok=True)

    def _path(self, cid: Cid) -> Path:
        name = cid.v1
        return self._blocks / name[-2:] / name

    def _write_block(self, cid: Cid, block: bytes) -> Path:
        path = self._path(cid)
        if path.exists():
            return path
        path.parent.mkdir(exist_ok=True)
        with atomic_file(path) as fh:
            fh.write(block)
        return path

    def put(self, source: Source) -> str:
        pending: list[tuple[Cid, bytes]] = []
        dirs: set[Path] = set()

        def sink(multihash: bytes, block: bytes) -> None:
            # hold each block back by one: the last one emitted is the root
            if pending:
                dirs.add(self._write_block(*pending.pop()).parent)
            pending.append((Cid(DAG_PB, multihash), block))

        builder = DagBuilder(sink)
        for piece in iter_source(source):
            builder.write(piece)
        root = Cid(DAG_PB, builder.finish())
        for directory in dirs:  # every entry the root names is durable before the root
            _fsync_dir(directory)
        cid, block = pending.pop()
        assert cid == root
        _fsync_dir(self._write_block(cid, block).parent)
        return root.v1

    def _fetch(self, cid: Cid) -> bytes:
        try:
            return self._path(cid).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(cid.v1) from None

    def open(self, cid: str) -> Iterator[bytes]:
        return read_file(parse_cid(cid), self._fetch)

    def get(self, cid: str) -> bytes:
        return b"".join(self.open(cid))

    def has(self, cid: str) -> bool:
        return self._path(parse_cid(cid)).exists()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
