"""Content identifiers (CIDs) as IPFS writes them.

``raw_cid(data)`` is the CIDv1 of a single raw block: multibase ``b`` (base32, lower case),
version 1, multicodec ``raw`` (0x55), multihash sha2-256.  For a file of at most one chunk
(256 KiB) it is exactly what ``ipfs add --cid-version 1 --raw-leaves`` prints.
"""

from __future__ import annotations

import base64
import hashlib

from chainml.storage.errors import InvalidCid

RAW = 0x55
SHA2_256 = 0x12
_PREFIX = bytes([0x01, RAW, SHA2_256, 32])


def raw_cid(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "b" + base64.b32encode(_PREFIX + digest).decode().lower().rstrip("=")


def digest_of(cid: str) -> bytes:
    """The sha2-256 digest inside a raw CIDv1; raises ``InvalidCid``."""
    if not cid.startswith("b") or len(cid) != 59:
        raise InvalidCid("not a base32 CIDv1 of a sha2-256 raw block")
    body = cid[1:].upper()
    try:
        raw = base64.b32decode(body + "=" * (-len(body) % 8))
    except ValueError as exc:
        raise InvalidCid("not base32") from exc
    if raw[:4] != _PREFIX or len(raw) != 36:
        raise InvalidCid("not a CIDv1 of a sha2-256 raw block")
    return raw[4:]
