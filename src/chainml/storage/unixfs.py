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

import base64
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

CHUNK = 256 * 1024
MAX_LINKS = 174
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_FILE = 2


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


def _node(links: list[_Node], data: bytes, file_size: int) -> _Node:
    block = _encode(links, data)
    multihash = b"\x12\x20" + hashlib.sha256(block).digest()
    return _Node(multihash, len(block), len(block) + sum(n.tree_size for n in links), file_size)


def _leaf(chunk: bytes) -> _Node:
    return _node([], _unixfs(_FILE, chunk, len(chunk)), len(chunk))


def _parent(children: list[_Node]) -> _Node:
    total = sum(c.file_size for c in children)
    data = _unixfs(_FILE, b"", total, [c.file_size for c in children])
    return _node(children, data, total)


def root_multihash(data: bytes) -> bytes:
    """The sha2-256 multihash of the root block ``ipfs add`` would build for ``data``."""
    if len(data) <= CHUNK:
        return _node([], _unixfs(_FILE, data, len(data)), len(data)).multihash
    level = [_leaf(data[i : i + CHUNK]) for i in range(0, len(data), CHUNK)]
    # kubo's balanced builder fills each parent to MAX_LINKS before starting the next
    while len(level) > 1:
        level = [_parent(level[i : i + MAX_LINKS]) for i in range(0, len(level), MAX_LINKS)]
    return level[0].multihash


def _base58(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def cid_v0(data: bytes) -> str:
    return _base58(root_multihash(data))


def cid_v1(data: bytes) -> str:
    raw = b"\x01\x70" + root_multihash(data)  # CIDv1, dag-pb
    return "b" + base64.b32encode(raw).decode().lower().rstrip("=")
