"""Fixed-point encoding of real vectors into the ring Z_2^32, with stochastic rounding.

``x`` becomes ``floor(x * 2^f + u)`` with ``u`` uniform in [0, 1), so the encoding is
unbiased (its expectation is ``x * 2^f``) and off by less than ``2^-f`` per coordinate.
Sums wrap modulo 2^32 and are read back as signed 32-bit values, which is exact as long as
the true sum of the encoded values stays within (-2^31, 2^31).

Headroom: with ``n`` inputs each bounded by ``bound`` in every coordinate (an L2 clip of
``bound`` implies it), the sum is bounded by ``n * bound``; ``fraction_bits(n, bound)``
picks the largest ``f`` with ``n * (bound * 2^f + 1) < 2^31``, i.e. no overflow whatever
the inputs.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from numpy.typing import NDArray

RING_BITS = 32


def fraction_bits(n_inputs: int, bound: float) -> int:
    """The most fraction bits that keep a sum of ``n_inputs`` values in [-bound, bound]
    from overflowing."""
    if n_inputs < 1 or not bound > 0 or not math.isfinite(bound):
        raise ValueError("need at least one input and a positive bound")
    # the largest f <= 24 with n (bound 2^f + 1) <= 2^31, in exact rational arithmetic on
    # the double's value (a floating-point log2 differs near powers of two, and by libm)
    exact = Fraction(bound)
    f = 24
    while f >= 1 and n_inputs * (exact * 2**f + 1) > 2 ** (RING_BITS - 1):
        f -= 1
    if f < 1:
        raise ValueError(f"{n_inputs} inputs bounded by {bound} do not fit in 32 bits")
    return f


def encode(x: NDArray[np.floating], frac_bits: int, rng: np.random.Generator) -> NDArray[np.uint32]:
    scaled = np.asarray(x, dtype=np.float64) * float(1 << frac_bits)
    noise = rng.random(scaled.shape)
    return np.floor(scaled + noise).astype(np.int64).astype(np.uint32)


def decode(v: NDArray[np.uint32], frac_bits: int) -> NDArray[np.float64]:
    return v.astype(np.uint32).view(np.int32).astype(np.float64) / float(1 << frac_bits)
