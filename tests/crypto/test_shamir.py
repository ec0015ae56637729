"""Shamir sharing: any k rebuild, k - 1 reveal nothing, bad mixes are refused."""

from __future__ import annotations

import itertools
import os
import secrets

import pytest

from chainml.crypto.hazmat.shamir import P, Share, ShareError, combine, interpolate, split


@pytest.mark.parametrize(("k", "n"), [(1, 1), (2, 3), (3, 5), (5, 5), (7, 10)])
def test_any_k_of_n_rebuild(k: int, n: int):
    secret = os.urandom(32)
    shares = split(secret, k, n)
    for subset in itertools.islice(itertools.combinations(shares, k), 50):
        assert combine(list(subset)) == secret
    assert combine(shares) == secret  # more than k is fine


def test_leading_zero_bytes_survive():
    secret = b"\x00\x00\x01" + os.urandom(29)
    assert combine(split(secret, 2, 3)[1:]) == secret


def test_k_minus_one_shares_fit_every_secret_equally():
    """For k - 1 shares and ANY candidate secret there is exactly one polynomial of degree
    k - 1 through them and (0, candidate): the shares say nothing about which is true."""
    secret = os.urandom(32)
    k = 3
    seen = split(secret, k, 5)[: k - 1]
    points = [(s.index, s.value) for s in seen]
    for candidate in [secret, os.urandom(32), bytes(32), b"\xff" * 32]:
        c = int.from_bytes(candidate, "big")
        through = [*points, (0, c)]
        # the polynomial through these k points goes through the seen shares and the candidate
        for x, y in through:
            assert interpolate(through, x) == y
        assert interpolate(through, 0) == c
    # and the seen values are uniform whatever the secret: the top bit of a share of a
    # fixed secret is a fair coin (2,000 draws; 5 sigma bound)
    ones = sum(split(bytes(32), 2, 2)[0].value >> 520 for _ in range(2000))
    assert abs(ones - 1000) < 5 * (2000 * 0.25) ** 0.5


def test_too_few_duplicated_or_mixed_shares_are_refused():
    a, b = split(os.urandom(32), 3, 5), split(os.urandom(16), 3, 5)
    with pytest.raises(ShareError):
        combine(a[:2])
    with pytest.raises(ShareError):
        combine([a[0], a[0], a[1]])
    with pytest.raises(ShareError):
        combine([a[0], a[1], b[2]])
    with pytest.raises(ShareError):
        combine([])
    with pytest.raises(ShareError):
        split(b"", 2, 3)
    with pytest.raises(ShareError):
        split(b"x", 4, 3)


def test_encoding_round_trip_and_validation():
    share = split(os.urandom(32), 2, 3)[2]
    assert Share.decode(share.encode()) == share
    with pytest.raises(ShareError):
        Share.decode(share.encode()[:-1])
    with pytest.raises(ShareError):
        Share.decode(bytes([1, 2, 32]) + (P + 1).to_bytes(66, "big"))
    assert str(share.value) not in repr(share)


def test_a_substituted_share_changes_the_result():
    """Shamir alone does not authenticate shares: the caller must check the key it gets
    (chainml checks it against the stream's key commitment)."""
    secret = os.urandom(32)
    shares = split(secret, 2, 3)
    forged = Share(shares[0].index, 2, 32, secrets.randbelow(2**256))
    try:
        assert combine([forged, shares[1]]) != secret
    except ShareError:
        pass  # or it does not even fit 32 bytes


def test_the_256_bit_field_shares_32_byte_secrets_in_33_bytes() -> None:
    """GF(2^256 + 297): every 32-byte secret is a field element (the largest too), any t
    shares rebuild it, and values are below the prime (33 bytes each)."""
    from chainml.crypto.hazmat.shamir import P256

    assert P256 == 2**256 + 297 and pow(3, P256 - 1, P256) == 1  # Fermat witness for 3
    for secret in (b"\xff" * 32, b"\x00" * 32, bytes(range(32))):
        shares = split(secret, 3, 5, prime=P256)
        assert all(s.value < P256 and s.value.bit_length() <= 264 for s in shares)
        assert combine(shares[2:], prime=P256) == secret
        assert combine([shares[0], shares[4], shares[2]], prime=P256) == secret
    with pytest.raises(ShareError):
        split(b"\x01" * 33, 2, 3, prime=P256)  # more than the field holds
    with pytest.raises(ShareError):
        combine(split(b"\x01" * 32, 2, 3), prime=P256)  # shares of the other field
    with pytest.raises(ShareError):
        split(b"\x01" * 32, 2, 3, prime=2**127 - 1)  # only the two fields
