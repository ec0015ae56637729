"""Versioned wire encodings of the SecAgg+ messages and of a round's start.

JSON objects with a ``type``; bytes as hex; vectors as base64 of little-endian uint32.
Anything else — a missing field, a wrong size, an unknown type — raises
``ProtocolViolation``, so a node refuses a malformed message with a typed error.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

import numpy as np

from chainml.crypto import wire as b64wire
from chainml.crypto.hazmat import lattice
from chainml.training.secagg import (
    MAC_BYTES,
    SHARE_HASH_BYTES,
    KeyAdvert,
    MaskedInput,
    NeighbourKeys,
    ProtocolViolation,
    SealedShares,
    ShareBatch,
    SurvivorList,
    SurvivorSignature,
    UnmaskRequest,
    UnmaskShares,
)

# /3: attempt in the context, dealt-share hashes, partner MACs; /4: 128-bit MACs and share
# hashes, 33-byte shares, approvals signed once instead of MAC'd to every survivor
FORMAT = "chainml-secagg/4"
HASHES = 2 * SHARE_HASH_BYTES  # a holder's key-share and seed-share hashes
MAX_VECTOR = 1 << 26
TAG = MAC_BYTES  # a MAC under a pair key

Message = (
    KeyAdvert
    | NeighbourKeys
    | SealedShares
    | ShareBatch
    | MaskedInput
    | SurvivorList
    | SurvivorSignature
    | UnmaskRequest
    | UnmaskShares
)


def _hexmap(m: Mapping[int, bytes]) -> dict[str, str]:
    return {str(k): v.hex() for k, v in m.items()}


def _advert(a: KeyAdvert) -> list[Any]:
    return [
        a.sender,
        a.pk_s.hex(),
        a.seed_commitment.hex(),
        a.shares_root.hex(),
        a.signature.hex(),
        _hexmap(a.tags),
        _hexmap(a.share_hashes),
    ]


def encode(message: Message) -> bytes:
    return _encode(message)


def _encode(message: Message, vector_text: str | None = None) -> bytes:
    """``encode``; ``vector_text``: a MaskedInput's vector already in its canonical base64
    (the decoder has checked it), so that checking a received message does not encode a
    vector of millions of words again."""
    m = message
    body: dict[str, Any]
    if isinstance(m, KeyAdvert):
        body = {"advert": _advert(m)}
    elif isinstance(m, NeighbourKeys):
        body = {"recipient": m.recipient, "adverts": [_advert(a) for a in m.adverts]}
    elif isinstance(m, SealedShares):
        body = {"sender": m.sender, "ciphertexts": _hexmap(m.ciphertexts)}
    elif isinstance(m, ShareBatch):
        body = {"recipient": m.recipient, "ciphertexts": _hexmap(m.ciphertexts)}
    elif isinstance(m, MaskedInput):
        vector = vector_text or base64.b64encode(
            np.ascontiguousarray(m.vector, dtype="<u4").tobytes()
        ).decode("ascii")
        body = {
            "sender": m.sender,
            "vector": vector,
            "partners": list(m.partners),
            "signature": m.signature.hex(),
            "value_commitment": m.value_commitment.hex(),
            "partner_tags": _hexmap(m.partner_tags),
        }
    elif isinstance(m, SurvivorList):
        body = {"recipient": m.recipient, "survivors": list(m.survivors)}
    elif isinstance(m, SurvivorSignature):
        body = {"sender": m.sender, "signature": m.signature.hex()}
    elif isinstance(m, UnmaskRequest):
        body = {
            "recipient": m.recipient,
            "survivors": list(m.survivors),
            "approvals": _hexmap(m.approvals),
            "partners": {str(v): [list(ids), tag.hex()] for v, (ids, tag) in m.partners.items()},
        }
    else:
        body = {
            "sender": m.sender,
            "self_mask": _hexmap(m.self_mask),
            "mask_key": _hexmap(m.mask_key),
        }
    body["type"] = type(m).__name__
    body["format"] = FORMAT
    return json.dumps(body, separators=(",", ":")).encode()


def _int(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 1 << 32:
        raise ValueError("not a small non-negative integer")
    return v


def _bytes(v: Any, size: int | None = None) -> bytes:
    raw = bytes.fromhex(v)
    if size is not None and len(raw) != size:
        raise ValueError("wrong size")
    return raw


def _ids(v: Any) -> tuple[int, ...]:
    if not isinstance(v, list):
        raise ValueError("not a list")
    return tuple(_int(x) for x in v)


def _map(v: Any, size: int | None = None) -> dict[int, bytes]:
    if not isinstance(v, dict):
        raise ValueError("not an object")
    return {_int(int(k)): _bytes(x, size) for k, x in v.items()}


def _unadvert(v: Any) -> KeyAdvert:
    sender, pk_s, seed, root, sig, tags, hashes = v
    return KeyAdvert(
        _int(sender),
        _bytes(pk_s, 32),
        _bytes(seed, 32),
        _bytes(root, 32),
        _bytes(sig, 65),
        _map(tags, TAG),
        _map(hashes, HASHES),
    )


def _partner_lists(v: Any) -> dict[int, tuple[tuple[int, ...], bytes]]:
    if not isinstance(v, dict):
        raise ValueError("not an object")
    out = {}
    for k, entry in v.items():
        ids, tag = entry
        out[_int(int(k))] = (_ids(ids), _bytes(tag, TAG))
    return out


def decode(raw: bytes) -> Message:
    """The message ``raw`` encodes, if ``raw`` is exactly its canonical encoding (what
    ``encode`` gives): any other spelling of it — other key order, spaces, hex case, a
    duplicate key, another digit form — is refused, so no two parsers read one message
    differently.  A MaskedInput's vector is not encoded again: its base64 is checked for
    the one spelling of its bytes (``chainml.crypto.wire.base64_bytes``: a multiple of 4
    characters, at most two ``=`` and only at the end, the standard alphabet, zero unused
    bits in the last quantum), and the rest of the message is re-encoded around it."""
    message, vector_text = _decode(raw)
    if _encode(message, vector_text) != raw:
        raise ProtocolViolation("a secure-aggregation message not in its canonical encoding")
    return message


_VECTOR = b64wire.base64_bytes(4 * MAX_VECTOR)


def _decode(raw: bytes) -> tuple[Message, str | None]:
    try:
        d = json.loads(raw)
        if isinstance(d, dict) and d.get("type") == "MaskedInput":
            text = d.get("vector")
            return _message(d, _VECTOR(text)), text
        return _message(d, b""), None
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise ProtocolViolation(f"malformed secure-aggregation message: {exc}") from None


def _message(d: Any, blob: bytes) -> Message:
    """The message of the parsed ``d`` (``blob``: a MaskedInput's vector bytes)."""
    if not isinstance(d, dict) or d.get("format") != FORMAT:
        raise ValueError("not a chainml secure-aggregation message")
    kind = d["type"]
    if kind == "KeyAdvert":
        return _unadvert(d["advert"])
    if kind == "NeighbourKeys":
        return NeighbourKeys(_int(d["recipient"]), tuple(_unadvert(a) for a in d["adverts"]))
    if kind == "SealedShares":
        return SealedShares(_int(d["sender"]), _map(d["ciphertexts"]))
    if kind == "ShareBatch":
        return ShareBatch(_int(d["recipient"]), _map(d["ciphertexts"]))
    if kind == "MaskedInput":
        if len(blob) % 4 or len(blob) > 4 * MAX_VECTOR:
            raise ValueError("a vector is whole uint32 values")
        vector = np.frombuffer(blob, dtype="<u4").astype(np.uint32)
        committed = bytes.fromhex(d.get("value_commitment", ""))
        if committed and len(committed) != lattice.COMMITMENT_BYTES:
            raise ValueError("a value commitment has a fixed size")
        return MaskedInput(
            _int(d["sender"]),
            vector,
            _ids(d["partners"]),
            _bytes(d["signature"], 65),
            committed,
            _map(d["partner_tags"], TAG),
        )
    if kind == "SurvivorList":
        return SurvivorList(_int(d["recipient"]), _ids(d["survivors"]))
    if kind == "SurvivorSignature":
        return SurvivorSignature(_int(d["sender"]), _bytes(d["signature"], 65))
    if kind == "UnmaskRequest":
        return UnmaskRequest(
            _int(d["recipient"]),
            _ids(d["survivors"]),
            _map(d["approvals"], 65),
            _partner_lists(d["partners"]),
        )
    if kind == "UnmaskShares":
        return UnmaskShares(_int(d["sender"]), _map(d["self_mask"]), _map(d["mask_key"]))
    raise ValueError(f"unknown message type {kind!r}")
