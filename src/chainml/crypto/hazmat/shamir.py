"""Shamir secret sharing of short secrets (keys and seeds) over a prime field: GF(2^521 - 1)
by default, or GF(2^256 + 297) for secrets of at most 32 bytes (``P256``: SecAgg+'s mask
keys and seeds, whose shares are then 33 bytes instead of 66).

A secret of up to 64 bytes (32 in ``P256``) is the constant term of a random polynomial of
degree k - 1; share i is the polynomial at x = i.  Any k shares rebuild the secret by Lagrange
interpolation at 0; any k - 1 are consistent with every secret, each equally likely, so
they reveal nothing (information-theoretically, not by assumption).  Coefficients come
from the OS's CSPRNG.  Shares carry the threshold and the secret's length so a wrong mix is
refused rather than silently combined.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from chainml.crypto.errors import CryptoError

P = 2**521 - 1  # a Mersenne prime, larger than any 64-byte secret
P256 = 2**256 + 297  # the smallest prime above 2^256: larger than any 32-byte secret
MAX_SECRET = 64
_Y_BYTES = 66


class ShareError(CryptoError, ValueError):
    """Shares that cannot be combined: too few, duplicated, mixed or malformed."""


@dataclass(frozen=True)
class Share:
    index: int  # x, from 1 to n
    threshold: int
    length: int  # of the secret, in bytes
    value: int  # y

    def encode(self) -> bytes:
        return bytes([self.index, self.threshold, self.length]) + self.value.to_bytes(
            _Y_BYTES, "big"
        )

    @classmethod
    def decode(cls, data: bytes) -> Share:
        if len(data) != 3 + _Y_BYTES:
            raise ShareError("a share is 69 bytes")
        index, threshold, length = data[0], data[1], data[2]
        value = int.from_bytes(data[3:], "big")
        if not 1 <= index or not 1 <= threshold or not 1 <= length <= MAX_SECRET or value >= P:
            raise ShareError("malformed share")
        return cls(index, threshold, length, value)

    def __repr__(self) -> str:  # the value is secret material
        return f"Share(index={self.index}, threshold={self.threshold})"


def _eval(coefficients: Sequence[int], x: int, prime: int) -> int:
    y = 0
    for c in reversed(coefficients):
        y = (y * x + c) % prime
    return y


def _max_secret(prime: int) -> int:
    if prime not in (P, P256):
        raise ShareError("the field is GF(2^521 - 1) or GF(2^256 + 297)")
    return MAX_SECRET if prime == P else 32


def split(secret: bytes, threshold: int, count: int, *, prime: int = P) -> list[Share]:
    """``count`` shares of which any ``threshold`` rebuild ``secret``, over GF(``prime``)
    (``P`` or ``P256``)."""
    biggest = _max_secret(prime)
    if not 1 <= len(secret) <= biggest:
        raise ShareError(f"a secret is 1 to {biggest} bytes")
    if not 1 <= threshold <= count <= 255:
        raise ShareError("need 1 <= threshold <= count <= 255")
    coefficients = [int.from_bytes(secret, "big")] + [
        secrets.randbelow(prime) for _ in range(threshold - 1)
    ]
    return [
        Share(x, threshold, len(secret), _eval(coefficients, x, prime)) for x in range(1, count + 1)
    ]


def interpolate(points: Sequence[tuple[int, int]], at: int = 0, *, prime: int = P) -> int:
    """The value at ``at`` of the polynomial of least degree through ``points``."""
    total = 0
    for i, (xi, yi) in enumerate(points):
        num = den = 1
        for j, (xj, _) in enumerate(points):
            if i != j:
                num = num * (at - xj) % prime
                den = den * (xi - xj) % prime
        total = (total + yi * num * pow(den, -1, prime)) % prime
    return total


def combine(shares: Sequence[Share], *, prime: int = P) -> bytes:
    """The secret, from at least ``threshold`` shares of one split over GF(``prime``).
    Shares from different splits of the same threshold and length cannot be told apart
    here: the caller checks the result (chainml checks a key against its key commitment)."""
    _max_secret(prime)
    if not shares:
        raise ShareError("no shares")
    if any(s.value >= prime for s in shares):
        raise ShareError("a share outside the field")
    threshold, length = shares[0].threshold, shares[0].length
    if any(s.threshold != threshold or s.length != length for s in shares):
        raise ShareError("shares from different splits")
    if len({s.index for s in shares}) != len(shares):
        raise ShareError("the same share twice")
    if len(shares) < threshold:
        raise ShareError(f"{len(shares)} shares, {threshold} needed")
    secret = interpolate([(s.index, s.value) for s in shares[:threshold]], prime=prime)
    if secret >= 256**length:
        raise ShareError("shares do not rebuild a secret of the stated length")
    return secret.to_bytes(length, "big")
