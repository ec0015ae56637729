"""The prime-order group G1 of BLS12-381, for Pedersen vector commitments (hazmat).

Backed by ``py_arkworks_bls12381`` (Rust arkworks bindings), chosen over libsodium's
ristretto255 (``rbcl``) because it offers a multi-scalar multiplication (Pippenger); see
``docs/protocol/zk-norm.md`` for the measurements.  Scalars are Python ints modulo
``ORDER``; points are opaque ``Point`` objects.  Decoding checks the encoding, that the
point is on the curve and that it lies in the prime-order subgroup; every failure of the
library is re-raised as ``MalformedElement``.

Generators are derived by the rule of ``generators`` (RFC 9380 hash-to-curve, suite
``BLS12381G1_XMD:SHA-256_SSWU_RO_``, one domain separation tag per protocol version,
message ``label || index``), so nobody knows a discrete-log relation between any two.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from py_arkworks_bls12381 import G1Point as Point
from py_arkworks_bls12381 import Scalar as _Scalar

from chainml.crypto.errors import CryptoError

__all__ = [
    "ORDER",
    "POINT_BYTES",
    "SCALAR_BYTES",
    "MalformedElement",
    "Point",
    "decode_point",
    "decode_scalar",
    "encode_point",
    "encode_scalar",
    "generators",
    "hash_to_point",
    "identity",
    "msm",
    "msm_signed",
    "mul",
]

ORDER = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001
POINT_BYTES = 48
SCALAR_BYTES = 32


class MalformedElement(CryptoError, ValueError):
    """Bytes that are not the canonical encoding of a group element or scalar."""


def identity() -> Point:
    return Point.identity()


def _to_scalar(value: int) -> _Scalar:
    return _Scalar.from_le_bytes((value % ORDER).to_bytes(SCALAR_BYTES, "little"))


def msm(points: Sequence[Point], scalars: Sequence[int]) -> Point:
    """Σ scalars[i]·points[i] (Pippenger, in Rust).  Scalars are reduced modulo ORDER."""
    if len(points) != len(scalars):
        raise ValueError("msm: as many scalars as points are required")
    if not points:
        return Point.identity()
    return Point.multiexp_unchecked(list(points), [_to_scalar(s) for s in scalars])


def msm_signed(points: Sequence[Point], scalars: Sequence[int]) -> Point:
    """Σ scalars[i]·points[i] for small signed integers (|s| < ORDER/2).

    The same point as ``msm``, faster for short scalars: the MSM's cost grows with the
    longest scalar, and -1 modulo ORDER is 255 bits long, so the negative ones are summed
    apart as |s| and subtracted (32-bit scalars: about a third of the time of 255-bit)."""
    if len(points) != len(scalars):
        raise ValueError("msm: as many scalars as points are required")
    pos_p, pos_s, neg_p, neg_s = [], [], [], []
    for pt, v in zip(points, scalars, strict=True):
        if v > 0:
            pos_p.append(pt)
            pos_s.append(v)
        elif v < 0:
            neg_p.append(pt)
            neg_s.append(-v)
    return msm(pos_p, pos_s) - msm(neg_p, neg_s)


def mul(point: Point, scalar: int) -> Point:
    return point * _to_scalar(scalar)


def encode_point(point: Point) -> bytes:
    """48-byte compressed encoding (the ZCash/IETF BLS12-381 serialisation)."""
    return bytes(point.to_compressed_bytes())


def decode_point(data: bytes) -> Point:
    """Decode a compressed point; refuses off-curve, out-of-subgroup and non-canonical bytes."""
    if len(data) != POINT_BYTES:
        raise MalformedElement("a point is 48 bytes")
    try:
        point = Point.from_compressed_bytes(bytes(data))
    except Exception as exc:  # the binding raises bare ValueError/Exception from Rust
        raise MalformedElement("not a valid compressed G1 point") from exc
    if encode_point(point) != bytes(data):
        raise MalformedElement("non-canonical point encoding")
    return point


def encode_scalar(value: int) -> bytes:
    if not 0 <= value < ORDER:
        raise ValueError("a scalar is in [0, ORDER)")
    return value.to_bytes(SCALAR_BYTES, "big")


def decode_scalar(data: bytes) -> int:
    """32-byte big-endian scalar; values >= ORDER are refused (one encoding per scalar)."""
    if len(data) != SCALAR_BYTES:
        raise MalformedElement("a scalar is 32 bytes")
    value = int.from_bytes(data, "big")
    if value >= ORDER:
        raise MalformedElement("scalar not reduced modulo the group order")
    return value


def hash_to_point(dst: bytes, message: bytes) -> Point:
    """RFC 9380 hash-to-curve (random-oracle suite) into G1."""
    if not dst:
        raise ValueError("a domain separation tag is required")
    return Point.hash_to_curve(dst, message)


_CACHE: dict[tuple[bytes, bytes], list[Point]] = {}
_LOCK = threading.Lock()


def generators(dst: bytes, label: bytes, count: int) -> list[Point]:
    """``count`` independent generators: ``hash_to_point(dst, label || u32be(i))``.

    Cached per (dst, label) and extended on demand, so a process derives each generator
    once (about 0.3-1 ms each here).
    """
    if count < 0:
        raise ValueError("count must be non-negative")
    key = (dst, label)
    with _LOCK:
        have = _CACHE.setdefault(key, [])
        for i in range(len(have), count):
            have.append(hash_to_point(dst, label + i.to_bytes(4, "big")))
        return have[:count]
