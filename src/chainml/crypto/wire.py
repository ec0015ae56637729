"""Canonical wire form of signed messages: one byte string per message, parsed in bounded
time and memory.

A signed message (an envelope, a key request) travels as a flat JSON object in exactly one
spelling, specified in ``docs/protocol/wire.md``:

* ASCII bytes only (so UTF-8 with no byte-order mark): no other encoding parses;
* no whitespace; members in the schema's order, each key exactly once, no other key;
* values are strings of printable ASCII with no escapes, or non-negative decimal integers
  with no sign, fraction, exponent or leading zero, or ``true`` / ``false``;
* nothing nests: an array or object as a value is refused at its first byte, so depth is
  bounded by construction (Python's JSON decoder recurses, and a process that raised its
  recursion limit can be crashed by deep nesting).

Each field's value then has one form: integers in range for their type, byte strings as
lower-case hex of their exact length, addresses in their EIP-55 mixed case, base64 with
padding and zero trailing bits.  Anything else raises ``WireError`` (a ``ValueError``)
before any other work is done.  The parser is regular-expression driven (no recursion, no
per-byte Python loop); its cost is linear in the input and the input's size is capped by
the caller before it gets here.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from collections.abc import Callable, Sequence
from typing import Any

from eth_utils.address import to_checksum_address

from chainml.crypto.errors import CryptoError

MAX_MEMBERS = 32
MAX_DIGITS = 78  # 2**256 - 1 has 78 decimal digits

_KEY = re.compile(rb'"([ !#-\[\]-~]{1,64})":')  # printable ASCII without '"' and '\\'
_SCALAR = re.compile(rb"0|[1-9][0-9]{0,%d}|true|false" % (MAX_DIGITS - 1))
_TEXT_BYTES = bytes(c for c in range(0x20, 0x7F) if c not in (0x22, 0x5C))
_B64_BYTES = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
# Long values are checked and decoded a window at a time: each C call then holds the
# interpreter lock for well under a millisecond, and the node's event loop gets it back
# between windows instead of waiting for a whole 5 MB payload.
_WINDOW = 1 << 17


def _only(data: bytes | bytearray, start: int, end: int, allowed: bytes) -> bool:
    for i in range(start, end, _WINDOW):
        if data[i : min(i + _WINDOW, end)].translate(None, allowed):
            return False
    return True


class WireError(CryptoError, ValueError):
    """Bytes that are not the one canonical wire form of the expected message."""


Scalar = str | int | bool


def parse_object(raw: bytes, *, max_members: int = MAX_MEMBERS) -> list[tuple[str, Scalar]]:
    """The members of a flat canonical JSON object, in order; raises ``WireError``."""
    if not isinstance(raw, bytes | bytearray) or raw[:1] != b"{":
        raise WireError("not a JSON object")
    if raw == b"{}":
        return []
    members: list[tuple[str, Scalar]] = []
    pos, end = 1, len(raw)
    while True:
        m = _KEY.match(raw, pos)
        if m is None:
            raise WireError(f"bad key at byte {pos}")
        key = m.group(1).decode("ascii")
        pos = m.end()
        value: Scalar
        if raw[pos : pos + 1] == b'"':
            close = raw.find(b'"', pos + 1)
            if close < 0 or not _only(raw, pos + 1, close, _TEXT_BYTES):
                raise WireError(f"{key}: not a string of printable ASCII without escapes")
            value = raw[pos + 1 : close].decode("ascii")
            pos = close + 1
        else:
            m = _SCALAR.match(raw, pos)
            if m is None:
                raise WireError(f"{key}: not a string, an integer or a boolean")
            token = m.group(0)
            value = token == b"true" if token[0] in b"tf" else int(token)
            pos = m.end()
        members.append((key, value))
        if len(members) > max_members:
            raise WireError(f"more than {max_members} members")
        sep = raw[pos : pos + 1]
        if sep == b",":
            pos += 1
            continue
        if sep == b"}" and pos + 1 == end:
            return members
        raise WireError(f"unexpected byte at {pos}")


Check = Callable[[Any], Any]


def decode(raw: bytes, schema: Sequence[tuple[str, Check]]) -> dict[str, Any]:
    """``raw`` parsed against ``schema`` (field name and check, in wire order): each check
    takes the wire value and returns the decoded one or raises ``ValueError``/``TypeError``.
    Raises ``WireError`` naming the first field that is wrong."""
    members = parse_object(raw, max_members=len(schema))
    names = [name for name, _ in schema]
    if [key for key, _ in members] != names:
        raise WireError(f"expected exactly the keys {', '.join(names)}, in that order")
    out: dict[str, Any] = {}
    for (name, check), (_, value) in zip(schema, members, strict=True):
        try:
            out[name] = check(value)
        except (ValueError, TypeError) as exc:
            raise WireError(f"{name}: {exc}") from None
    return out


def encode(fields: Sequence[tuple[str, Scalar]]) -> bytes:
    """The canonical bytes of a flat object (strings must be printable ASCII, no escapes)."""
    parts = []
    for key, value in fields:
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, int):
            if value < 0:
                raise WireError("negative integer")
            text = str(value)
        else:
            if not _is_text(value):
                raise WireError(f"{key}: not printable ASCII without quotes or backslashes")
            text = '"' + value + '"'
        parts.append(f'"{key}":{text}')
    return ("{" + ",".join(parts) + "}").encode("ascii")


def _is_text(value: str) -> bool:
    return value.isascii() and value.isprintable() and '"' not in value and "\\" not in value


# -- field checks ----------------------------------------------------------------------------


def const(expected: Scalar) -> Check:
    def check(value: Any) -> Any:
        if type(value) is not type(expected) or value != expected:
            raise ValueError(f"must be {expected!r}")
        return value

    return check


def uint(bits: int) -> Check:
    def check(value: Any) -> int:
        if type(value) is not int or not 0 <= value < 1 << bits:
            raise ValueError(f"expected an integer in [0, 2^{bits})")
        return value

    return check


def hex_bytes(size: int) -> Check:
    def check(value: Any) -> bytes:
        if type(value) is not str or len(value) != 2 * size:
            raise ValueError(f"expected {size} bytes as {2 * size} lower-case hex digits")
        if value != value.lower():
            raise ValueError("hex must be lower-case")
        return bytes.fromhex(value)

    return check


@functools.lru_cache(maxsize=4096)
def checksummed(value: str) -> str:
    """``to_checksum_address(value)``, remembered for the last 4,096 addresses: a node
    reads the same few senders and recipients in every envelope, and the checksum (a
    keccak over the hex digits) was a third of the time to open one."""
    return str(to_checksum_address(value))


def address(value: Any) -> str:
    """``0x`` and 40 hex digits in EIP-55 mixed case (the one spelling of an address)."""
    if type(value) is not str or len(value) != 42 or not value.startswith("0x"):
        raise ValueError("expected an address: 0x and 40 hex digits")
    try:
        canonical = checksummed(value)
    except ValueError:
        raise ValueError("expected an address: 0x and 40 hex digits") from None
    if canonical != value:
        raise ValueError("an address must be in its EIP-55 mixed case")
    return canonical


def base64_bytes(max_size: int) -> Check:
    def check(value: Any) -> bytes:
        if type(value) is not str or len(value) > (max_size + 2) // 3 * 4:
            raise ValueError(f"expected base64 of at most {max_size} bytes")
        encoded = value.encode("ascii")
        body = encoded.rstrip(b"=")
        if len(encoded) % 4 or len(encoded) - len(body) > 2:
            raise ValueError("base64 must be padded to a multiple of 4 characters")
        if not _only(body, 0, len(body), _B64_BYTES):
            raise ValueError("not base64")
        data = bytearray()
        for i in range(0, len(encoded), _WINDOW):  # _WINDOW is a multiple of 4
            data += binascii.a2b_base64(encoded[i : i + _WINDOW])
        # only the last quantum can be spelled two ways (unused bits, padding)
        tail = len(data) % 3 or 3
        if data and base64.b64encode(data[-tail:]) != encoded[-4:]:
            raise ValueError("base64 must have zero trailing bits")
        return bytes(data)

    return check


def decimal(bits: int) -> Check:
    """An unsigned integer written as a decimal string (``"0"``, ``"1000"``: no sign, no
    leading zero), for values past what every JSON reader holds exactly."""

    def check(value: Any) -> int:
        if type(value) is not str or not value.isascii() or not value.isdigit():
            raise ValueError("expected a decimal string")
        if (len(value) > 1 and value[0] == "0") or len(value) > 78:
            raise ValueError("expected a decimal string without leading zeros")
        number = int(value)
        if number >= 1 << bits:
            raise ValueError(f"expected an integer in [0, 2^{bits})")
        return number

    return check


def text(max_len: int) -> Check:
    def check(value: Any) -> str:
        if type(value) is not str or not 0 < len(value) <= max_len:
            raise ValueError(f"expected 1-{max_len} printable ASCII characters")
        return value

    return check
