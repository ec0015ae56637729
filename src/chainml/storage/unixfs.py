"""The CID ``ipfs add`` gives a file with kubo's defaults, computed without a node.

Defaults reproduced: fixed-size chunks of 256 KiB; a balanced DAG of dag-pb nodes with at
most 174 links each (links with an empty name); leaves that are dag-pb nodes holding a
UnixFS ``File`` with the chunk; inner nodes holding a UnixFS ``File`` with the file size
and the sizes of its children; sha2-256.
A file of one chunk is a single ``File`` node.  ``cid_v0`` is ``ipfs add``'s default
answer (``Qm…``), ``cid_v1`` the same hash as CIDv1 (``bafy…``, dag-pb).  The test suite
compares both with Debian's ``ipfs_cid`` on files of many sizes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from chainml.storage.cid import DAG_PB, RAW, Cid, sha256_multihash
from chainml.storage.errors import CorruptBlob, MalformedBlock

CHUNK = 256 * 1024
MAX_LINKS = 174
_FILE = 2
_RAW = 0


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _field(number: int, wire: int, payload: bytes | int) -> bytes:
    key = _varint(number << 3 | wire)
    if wire == 0:
        assert isinstance(payload, int)
        return key + _varint(payload)
    assert isinstance(payload, bytes)
    return key + _varint(len(payload)) + payload


def _unixfs(kind: int, data: bytes, filesize: int, blocksizes: Iterable[int] = ()) -> bytes:
    out = _field(1, 0, kind)
    if data:
        out += _field(2, 2, data)
    out += _field(3, 0, filesize)
    for size in blocksizes:
        out += _field(4, 0, size)
    return out


@dataclass(frozen=True)
class _Node:
    multihash: bytes
    block_size: int  # the encoded block
    tree_size: int  # the block and everything under it (a link's Tsize)
    file_size: int  # bytes of the file under it


def _encode(links: list[_Node], data: bytes) -> bytes:
    out = b""
    for link in links:  # PBNode.Links (field 2) come before PBNode.Data (field 1)
        pblink = _field(1, 2, link.multihash) + _field(2, 2, b"") + _field(3, 0, link.tree_size)
        out += _field(2, 2, pblink)
    return out + _field(1, 2, data)


def _node_of(block: bytes, links: list[_Node], file_size: int) -> _Node:
    multihash = sha256_multihash(block)
    return _Node(multihash, len(block), len(block) + sum(n.tree_size for n in links), file_size)


class DagBuilder:
    """Builds the balanced DAG of a file fed chunk by chunk, in bounded memory.

    ``sink(multihash, block)`` receives every block once, children before parents, the root
    last, so a store that writes blocks as they come has the root only once all it names
    is in place.  ``write`` takes bytes of any length; ``finish`` returns the root.
    """

    def __init__(self, sink: Callable[[bytes, bytes], None] | None = None) -> None:
        self._sink = sink
        self._buffer = bytearray()
        self._levels: list[list[_Node]] = [[]]
        self.size = 0
        self._done = False

    def _emit(self, links: list[_Node], data: bytes, file_size: int) -> _Node:
        block = _encode(links, data)
        node = _node_of(block, links, file_size)
        if self._sink is not None:
            self._sink(node.multihash, block)
        return node

    def _push(self, level: int, node: _Node) -> None:
        if level == len(self._levels):
            self._levels.append([])
        pending = self._levels[level]
        if len(pending) == MAX_LINKS:  # a full group: it becomes one parent a level up
            self._push(level + 1, self._parent(pending))
            pending.clear()
        pending.append(node)

    def _parent(self, children: list[_Node]) -> _Node:
        total = sum(c.file_size for c in children)
        data = _unixfs(_FILE, b"", total, [c.file_size for c in children])
        return self._emit(children, data, total)

    def write(self, data: bytes | memoryview) -> None:
        if self._done:
            raise RuntimeError("DagBuilder already finished")
        self.size += len(data)
        self._buffer += data
        # keep one full chunk back: a file of exactly one chunk is a single node
        while len(self._buffer) > CHUNK:
            chunk = bytes(self._buffer[:CHUNK])
            del self._buffer[:CHUNK]
            self._push(0, self._emit([], _unixfs(_FILE, chunk, len(chunk)), len(chunk)))

    def finish(self) -> bytes:
        """The root's multihash."""
        self._done = True
        chunk = bytes(self._buffer)
        self._buffer.clear()
        leaf = self._emit([], _unixfs(_FILE, chunk, len(chunk)), len(chunk))
        if self._levels == [[]]:
            return leaf.multihash
        self._push(0, leaf)
        level = 0
        while level < len(self._levels) - 1 or len(self._levels[level]) > 1:
            parent = self._parent(self._levels[level])
            self._levels[level].clear()
            self._push(level + 1, parent)
            level += 1
        return self._levels[level][0].multihash


def root_multihash(data: bytes) -> bytes:
    """The sha2-256 multihash of the root block ``ipfs add`` would build for ``data``."""
    builder = DagBuilder()
    builder.write(data)
    return builder.finish()


def file_cid(data: bytes) -> Cid:
    return Cid(DAG_PB, root_multihash(data))


def cid_v0(data: bytes) -> str:
    return file_cid(data).v0


def cid_v1(data: bytes) -> str:
    return file_cid(data).v1


# -- reading: every block checked against the hash that names it ---------------------------


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise MalformedBlock("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    pos = 0
    while pos < len(buf):
        key, pos = _read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _read_varint(buf, pos)
            yield number, value
        elif wire == 2:
            length, pos = _read_varint(buf, pos)
            if pos + length > len(buf):
                raise MalformedBlock("field runs past the block")
            yield number, buf[pos : pos + length]
            pos += length
        else:
            raise MalformedBlock(f"unexpected protobuf wire type {wire}")


def decode_node(block: bytes) -> tuple[list[bytes], bytes, int]:
    """(child multihashes, file data, file size) of a dag-pb UnixFS ``File`` node."""
    links: list[bytes] = []
    unixfs = None
    for number, value in _fields(block):
        if number == 2 and isinstance(value, bytes):
            for sub, sub_value in _fields(value):
                if sub == 1 and isinstance(sub_value, bytes):
                    links.append(sub_value)
        elif number == 1 and isinstance(value, bytes):
            unixfs = value
    if unixfs is None:
        raise MalformedBlock("dag-pb node without UnixFS data")
    kind, data, size = None, b"", 0
    for number, value in _fields(unixfs):
        if number == 1 and isinstance(value, int):
            kind = value
        elif number == 2 and isinstance(value, bytes):
            data = value
        elif number == 3 and isinstance(value, int):
            size = value
    if kind not in (_FILE, _RAW):
        raise MalformedBlock("not a UnixFS file node")
    return links, data, size


def read_file(root: Cid, fetch: Callable[[Cid], bytes]) -> Iterator[bytes]:
    """The file under ``root``, in order, one chunk at a time.

    ``fetch`` returns a block's bytes; each is hashed before it is read, and a mismatch
    raises ``CorruptBlob`` naming the block.  Depth-first with an explicit stack, so memory
    holds one block per level of the tree.
    """
    stack: list[Iterator[Cid]] = [iter([root])]
    while stack:
        cid = next(stack[-1], None)
        if cid is None:
            stack.pop()
            continue
        block = fetch(cid)
        if not cid.matches(block):
            raise CorruptBlob(f"block {cid.v1} does not match its CID")
        if cid.codec == RAW:
            yield block
            continue
        links, data, _ = decode_node(block)
        if data:
            yield data
        if links:
            if len(stack) > 8:
                raise MalformedBlock("DAG deeper than any file this store holds")
            stack.append(Cid(DAG_PB, mh) for mh in links)
