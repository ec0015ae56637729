"""Lattice commitments: the NTT is the ring's multiplication, commitments add, hide
nothing in plain sight, and a sum off by one unit — or an opening out of bounds — fails."""

from __future__ import annotations

import numpy as np
import pytest

from chainml.crypto.hazmat import lattice
from chainml.crypto.hazmat.lattice import (
    PRIMES,
    RANDOMNESS_LEN,
    Commitment,
    CommitmentError,
    CommitmentKey,
    D,
)


@pytest.mark.parametrize("p", PRIMES)
def test_the_ntt_turns_ring_products_into_entrywise_products(p):
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, p, D), rng.integers(0, p, D)
    product = lattice.negacyclic_product(a, b, p)
    assert np.array_equal(lattice.ntt(product, p), (lattice.ntt(a, p) * lattice.ntt(b, p)) % p)
    x_to_the_d = np.zeros(D, dtype=np.int64)  # X^(D-1) · X = X^D = -1 in the ring
    x_to_the_d[D - 1] = 1
    x = np.zeros(D, dtype=np.int64)
    x[1] = 1
    assert lattice.negacyclic_product(x_to_the_d, x, p)[0] == p - 1


def test_commitments_add_and_a_sum_off_by_one_unit_is_caught():
    rng = np.random.default_rng(2)
    key = CommitmentKey(b"seed", 3000)
    updates = [rng.integers(-(1 << 20), 1 << 20, 3000) for _ in range(5)]
    openings = [CommitmentKey.randomness(rng) for _ in range(5)]
    commitments = [key.commit(u, r) for u, r in zip(updates, openings, strict=True)]
    total, opening = sum(updates), sum(openings)
    assert key.check_sum(commitments, total, opening)
    off = total.copy()
    off[1234] += 1
    assert not key.check_sum(commitments, off, opening)
    assert not key.check_sum(commitments[:4], total, opening)  # one left out
    shifted = opening.copy()
    shifted[7] += 1
    assert not key.check_sum(commitments, total, shifted)
    # openings that do open the sum modulo q, refused only for the bounds binding rests on
    q = PRIMES[0] * PRIMES[1]
    combined = commitments[0] + commitments[1] + commitments[2] + commitments[3] + commitments[4]
    far = opening.astype(np.int64)
    far[0] += q
    wide = total.astype(np.int64)
    wide[0] += q
    assert key.commit(total, far) == combined and key.commit(wide, opening) == combined
    assert not key.check_sum(commitments, total, far)
    assert not key.check_sum(commitments, wide, opening)


def test_randomness_hides_equal_vectors_and_bytes_round_trip():
    rng = np.random.default_rng(3)
    key = CommitmentKey(b"seed", 700)
    u = rng.integers(-100, 100, 700)
    first = key.commit(u, CommitmentKey.randomness(rng))
    second = key.commit(u, CommitmentKey.randomness(rng))
    assert first != second  # the same update twice is not recognisable
    assert Commitment.from_bytes(first.to_bytes()) == first
    with pytest.raises(CommitmentError):
        Commitment.from_bytes(first.to_bytes()[:-4])
    with pytest.raises(CommitmentError):
        Commitment.from_bytes(b"\xff" * len(first.to_bytes()))  # coefficients >= p
    with pytest.raises(CommitmentError):
        key.commit(u[:-1], CommitmentKey.randomness(rng))
    assert CommitmentKey.randomness(rng).shape == (RANDOMNESS_LEN,)


def test_commitments_look_uniform():
    """Chi-square on the commitment's residues, bucketed: no bias an auditor could use."""
    rng = np.random.default_rng(4)
    key = CommitmentKey(b"seed", 256)
    zero = np.zeros(256, dtype=np.int64)
    values = np.concatenate(
        [key.commit(zero, CommitmentKey.randomness(rng)).value[0].ravel() for _ in range(20)]
    )
    counts = np.bincount((values * 16 // PRIMES[0]).astype(int), minlength=16)
    expected = len(values) / 16
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 37.7  # 15 degrees of freedom, p = 0.001


def test_matrices_expand_from_a_specified_chacha20_stream():
    """Public matrices come from ``uniform_mod``: deterministic per key and name, in range,
    as many as asked, and uniform (chi-square over 16 buckets) - no numpy generator in the
    format, so another language can expand the same matrices."""
    from scipy import stats

    key, p = bytes(range(32)), lattice.PRIMES[0]
    a = lattice.uniform_mod(key, b"A", p, 100_000)
    assert a.dtype == np.int64 and a.shape == (100_000,)
    assert 0 <= a.min() and a.max() < p
    assert np.array_equal(a, lattice.uniform_mod(key, b"A", p, 100_000))
    assert not np.array_equal(a[:1000], lattice.uniform_mod(key, b"B", p, 1000))
    assert np.array_equal(a[:1000], lattice.uniform_mod(key, b"A", p, 1000))  # a prefix
    counts = np.bincount((a * 16 // p).astype(np.int64), minlength=16)
    assert stats.chisquare(counts).pvalue > 1e-4
