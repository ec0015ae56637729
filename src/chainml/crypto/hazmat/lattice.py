"""Additively homomorphic, hiding, binding commitments to long integer vectors (Ajtai /
Module-SIS, in the style of BDLOP), fast enough for a million coordinates in numpy.

Ring ``R_q = Z_q[X]/(X^256 + 1)`` with ``q = p1 * p2``, two 31-bit primes ``≡ 1 mod 512``
(so every product fits in int64 and the negacyclic NTT exists modulo each; the two
residues are kept side by side, which is Z_q by the CRT).  A vector ``u`` of ``m``
integers is cut into ``L = ceil(m / 256)`` ring elements; the randomness ``r`` is
``K + H`` ring elements with coefficients in ``[-ETA, ETA]``.  With public matrices ``A``
(K × L) and ``B'`` (K × H), expanded from a seed directly in the NTT domain::

    C = A·u + r[:K] + B'·r[K:]      (K ring elements, kept in the NTT domain)

- **additive**: ``C(u1; r1) + C(u2; r2) = C(u1 + u2; r1 + r2)``, so anyone can check a
  published sum ``S`` and aggregate opening ``R`` against the sum of the commitments;
- **hiding** (computational): ``(B', r[:K] + B'·r[K:])`` is a Module-LWE sample of rank
  H = 10 (dimension 2,560, modulus 2^62, error and secret in [-2, 2]); its ratio of
  dimension to log2(q/σ), 41.6, is above the 37.6 of the homomorphic-encryption
  standard's 128-bit parameters (N = 8192, log2 q = 218), so ``C`` looks uniform;
- **binding** (computational): two openings of one ``C`` within the norm bounds the
  verifier enforces (``|u| < 2^31``, ``|r| <= n·ETA``) give a Module-SIS solution of
  Euclidean norm below 2^42 for a K·256 = 2,048-row matrix modulo 2^62; the
  Micciancio–Regev estimate puts the shortest findable vector, at root-Hermite factor
  1.0045, near 2^57.

These are estimates from published rules of thumb, not the output of a lattice estimator.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np
from numpy.typing import NDArray

from chainml.crypto.hazmat import prg

D = 256
K = 8  # rows: the SIS dimension is K·D
H = 10  # rank of the hiding (Module-LWE) part
ETA = 2  # randomness coefficients in [-ETA, ETA]
PRIMES = (2147483137, 2147478017)  # 31-bit, ≡ 1 mod 2D
RANDOMNESS_LEN = (K + H) * D
U_BOUND = 1 << 31  # |coefficient| of a committed vector or sum
COMMITMENT_BYTES = 2 * K * D * 4


def _generator(p: int) -> int:
    factors = [
        f for f in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47) if (p - 1) % f == 0
    ]
    rest = p - 1
    for f in factors:
        while rest % f == 0:
            rest //= f
    if rest > 1:  # one large prime factor left over
        factors.append(rest)
    for g in range(2, p):
        if all(pow(g, (p - 1) // f, p) != 1 for f in factors):
            return g
    raise ValueError("no generator")  # pragma: no cover


def _bitrev(i: int, bits: int) -> int:
    return int(f"{i:0{bits}b}"[::-1], 2)


@cache
def _zetas(p: int) -> NDArray[np.int64]:
    """Powers of a primitive 512th root of unity in bit-reversed order (the negacyclic
    Cooley–Tukey NTT's twiddles)."""
    psi = pow(_generator(p), (p - 1) // (2 * D), p)
    bits = D.bit_length() - 1
    return np.array([pow(psi, _bitrev(i, bits), p) for i in range(D)], dtype=np.int64)


def ntt(a: NDArray[np.int64], p: int) -> NDArray[np.int64]:
    """The negacyclic NTT of each row of ``a`` (…, D), entries in [0, p): afterwards a
    product in ``Z_p[X]/(X^D + 1)`` is the entry-wise product."""
    zetas = _zetas(p)
    x = np.array(a, dtype=np.int64, copy=True)
    lead = x.shape[:-1]
    k, length = 1, D // 2
    while length >= 1:
        groups = D // (2 * length)
        y = x.reshape(*lead, groups, 2, length)
        zeta = zetas[k : k + groups].reshape(groups, 1)
        t = (y[..., 1, :] * zeta) % p
        low = y[..., 0, :]
        hi = low - t
        hi += p
        hi %= p
        low += t
        low %= p
        y[..., 1, :] = hi
        k += groups
        length //= 2
    return x


def negacyclic_product(a: NDArray[np.int64], b: NDArray[np.int64], p: int) -> NDArray[np.int64]:
    """Schoolbook product in ``Z_p[X]/(X^D + 1)`` (for tests of the NTT)."""
    out = [0] * D
    for i in range(D):
        for j in range(D):
            term = int(a[i]) * int(b[j])
            if i + j < D:
                out[i + j] += term
            else:
                out[i + j - D] -= term
    return np.array([v % p for v in out], dtype=np.int64)


class CommitmentError(ValueError):
    """A vector, opening or commitment of the wrong shape or out of bounds."""


@dataclass(frozen=True)
class Commitment:
    """``C`` modulo each prime, in the NTT domain: shape (2, K, D)."""

    value: NDArray[np.int64]

    def __add__(self, other: Commitment) -> Commitment:
        mods = np.array(PRIMES, dtype=np.int64).reshape(2, 1, 1)
        return Commitment((self.value + other.value) % mods)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Commitment) and np.array_equal(self.value, other.value)

    def __hash__(self) -> int:
        return hash(self.to_bytes())

    def to_bytes(self) -> bytes:
        return np.ascontiguousarray(self.value, dtype="<u4").tobytes()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Commitment:
        if len(raw) != COMMITMENT_BYTES:
            raise CommitmentError(f"a commitment is {COMMITMENT_BYTES} bytes")
        value = np.frombuffer(raw, dtype="<u4").astype(np.int64).reshape(2, K, D)
        if any((value[i] >= p).any() for i, p in enumerate(PRIMES)):
            raise CommitmentError("a commitment's coefficients lie in [0, p)")
        return cls(value)

    @classmethod
    def zero(cls) -> Commitment:
        return cls(np.zeros((2, K, D), dtype=np.int64))


def uniform_mod(key: bytes, name: bytes, p: int, count: int) -> NDArray[np.int64]:
    """``count`` integers uniform in [0, p) for a 31-bit ``p``: the little-endian uint32
    words of the ChaCha20 stream ``prg.mask(key, b"chainml/lattice/v2|" + name + b"|" +
    block)`` (blocks numbered from 0 in ASCII decimal), each masked to its low 31 bits and
    kept if below ``p``, in order.  A standard construction any language can redo (no
    numpy generator in the format)."""
    out: list[NDArray[np.int64]] = []
    have = 0
    for block in itertools.count():
        want = count - have
        words = prg.mask(key, b"chainml/lattice/v2|%s|%d" % (name, block), want + want // 64 + 16)
        low = words & np.uint32(0x7FFFFFFF)
        out.append(low[low < p][:want].astype(np.int64))
        have += len(out[-1])
        if have == count:
            return np.concatenate(out)
    raise AssertionError("unreachable")  # pragma: no cover


class CommitmentKey:
    """The public matrices for vectors of ``length`` integers, expanded from ``seed``."""

    def __init__(self, seed: bytes, length: int) -> None:
        if length < 1:
            raise CommitmentError("commit to at least one value")
        self.length = length
        self.blocks = -(-length // D)
        self._a, self._b = [], []
        for index, p in enumerate(PRIMES):
            key = hashlib.sha256(b"chainml/lattice/v2" + seed + bytes([index])).digest()
            self._a.append(
                uniform_mod(key, b"A", p, K * self.blocks * D).reshape(K, self.blocks, D)
            )
            self._b.append(uniform_mod(key, b"B", p, K * H * D).reshape(K, H, D))

    @staticmethod
    def randomness(rng: np.random.Generator) -> NDArray[np.int64]:
        """Fresh commitment randomness: (K + H)·D coefficients in [-ETA, ETA]."""
        return rng.integers(-ETA, ETA + 1, size=RANDOMNESS_LEN, dtype=np.int64)

    def commit(self, values: NDArray[np.integer], randomness: NDArray[np.integer]) -> Commitment:
        u = np.asarray(values, dtype=np.int64)
        r = np.asarray(randomness, dtype=np.int64)
        if u.shape != (self.length,) or r.shape != (RANDOMNESS_LEN,):
            raise CommitmentError(f"commit to {self.length} values with {RANDOMNESS_LEN} random")
        padded = np.zeros(self.blocks * D, dtype=np.int64)
        padded[: self.length] = u
        blocks = padded.reshape(self.blocks, D)
        out = np.empty((2, K, D), dtype=np.int64)
        for index, p in enumerate(PRIMES):
            u_hat = ntt(blocks % p, p)
            r_hat = ntt(r.reshape(K + H, D) % p, p)
            for k in range(K):
                acc = ((self._a[index][k] * u_hat) % p).sum(axis=0)
                acc += r_hat[k]
                acc += ((self._b[index][k] * r_hat[K:]) % p).sum(axis=0)
                out[index, k] = acc % p
        return Commitment(out)

    def check_sum(
        self,
        commitments: list[Commitment],
        total: NDArray[np.integer],
        opening: NDArray[np.integer],
    ) -> bool:
        """True if ``total`` with ``opening`` opens the sum of ``commitments`` and both are
        within the bounds binding rests on."""
        s = np.asarray(total, dtype=np.int64)
        r = np.asarray(opening, dtype=np.int64)
        if s.shape != (self.length,) or r.shape != (RANDOMNESS_LEN,):
            return False
        if np.abs(s).max(initial=0) >= U_BOUND or np.abs(r).max(initial=0) > len(commitments) * ETA:
            return False
        combined = Commitment.zero()
        for c in commitments:
            combined = combined + c
        return combined == self.commit(s, r)


@lru_cache(maxsize=4)
def commitment_key(seed: bytes, length: int) -> CommitmentKey:
    """A key per (seed, length), kept: expanding one takes a tenth of a second at 10^6."""
    return CommitmentKey(seed, length)
