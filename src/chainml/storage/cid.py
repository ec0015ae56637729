"""Content identifiers (CIDs) as IPFS writes them.

A CID names a block by the multihash (here always sha2-256) of its bytes, tagged with the
codec that says how to read the block: ``dag-pb`` (0x70) for UnixFS file nodes, ``raw``
(0x55) for bare bytes.  CIDv0 (``Qm…``, base58btc) is always dag-pb; CIDv1 is written in
multibase ``b`` (lower-case base32), as ``ipfs`` prints it.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from chainml.storage.errors import InvalidCid

RAW = 0x55
DAG_PB = 0x70
SHA2_256 = 0x12
_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}


def sha256_multihash(data: bytes) -> bytes:
    return bytes([SHA2_256, 32]) + hashlib.sha256(data).digest()


@dataclass(frozen=True)
class Cid:
    codec: int
    multihash: bytes  # sha2-256: 0x12 0x20 + 32 bytes

    @property
    def v0(self) -> str:
        if self.codec != DAG_PB:
            raise InvalidCid("only dag-pb blocks have a CIDv0")
        return _b58encode(self.multihash)

    @property
    def v1(self) -> str:
        raw = bytes([0x01, self.codec]) + self.multihash
        return "b" + base64.b32encode(raw).decode().lower().rstrip("=")

    def matches(self, block: bytes) -> bool:
        return sha256_multihash(block) == self.multihash


def parse_cid(text: str) -> Cid:
    """A CIDv0 or base32 CIDv1 of a sha2-256 dag-pb or raw block; raises ``InvalidCid``."""
    if not isinstance(text, str) or not 46 <= len(text) <= 64:
        raise InvalidCid("not a CID")
    if text.startswith("Qm") and len(text) == 46:
        try:
            multihash = _b58decode(text)
        except KeyError:
            raise InvalidCid("not base58btc") from None
        codec = DAG_PB
    elif text.startswith("b") and len(text) == 59:
        body = text[1:].upper()
        try:
            raw = base64.b32decode(body + "=" * (-len(body) % 8))
        except ValueError:
            raise InvalidCid("not base32") from None
        if raw[0] != 0x01 or raw[1] not in (RAW, DAG_PB):
            raise InvalidCid("not a CIDv1 of a dag-pb or raw block")
        codec, multihash = raw[1], raw[2:]
    else:
        raise InvalidCid("not a CIDv0 or base32 CIDv1")
    if len(multihash) != 34 or multihash[:2] != bytes([SHA2_256, 32]):
        raise InvalidCid("not a sha2-256 multihash")
    return Cid(codec, multihash)


def raw_cid(data: bytes) -> str:
    """The CIDv1 of ``data`` as one raw block (``ipfs add --raw-leaves`` of a small file)."""
    return Cid(RAW, sha256_multihash(data)).v1


def _b58encode(data: bytes) -> str:
    n = int.from_bytes(data, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = _B58[r] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


def _b58decode(text: str) -> bytes:
    n = 0
    for c in text:
        n = n * 58 + _B58_INDEX[c]
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body
