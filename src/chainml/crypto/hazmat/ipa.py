"""The Bulletproofs inner-product argument (Bünz et al. 2018, protocol 2) over G1 (hazmat).

Proves knowledge of vectors a, b with ``P = <a, G> + <b, H'> + <a, b>·Q`` in
2·log2(n/stop) points and the two folded vectors of length ``stop`` (1: two scalars),
for any ``n = stop·2^k`` (stop need not be a power of two: the halves are contiguous),
where ``H'_i = h_factors[i]·H_i`` (the range proof's
``y^-i``-scaled generators; all ones otherwise).  Not zero knowledge on its own: callers
blind a and b first.  Round j (challenge x_j, first round splits on the top index bit):

    L = <a_lo, G_hi> + <b_hi, H_lo> + <a_lo, b_hi>·Q
    R = <a_hi, G_lo> + <b_lo, H_hi> + <a_hi, b_lo>·Q
    a' = x·a_lo + x^-1·a_hi,  b' = x^-1·b_lo + x·b_hi,
    G' = x^-1·G_lo + x·G_hi,  H' = x·H_lo + x^-1·H_hi.

The prover keeps the folded generators implicit (one coefficient per original generator,
each round an MSM over the originals); with ``materialise_at`` it computes them once each
stands for that many originals and folds them explicitly from then on (cheaper for short
vectors, where per-call costs dominate).
The verifier never folds: ``verifier_terms`` returns the scalars of one final MSM.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from chainml.crypto.hazmat.bls12_381 import ORDER, Point, msm
from chainml.crypto.hazmat.transcript import Transcript


@dataclass(frozen=True)
class InnerProductProof:
    left: tuple[Point, ...]
    right: tuple[Point, ...]
    a: tuple[int, ...]
    b: tuple[int, ...]


def _inv(value: int) -> int:
    return pow(value, ORDER - 2, ORDER)


def _ip(u: Sequence[int], v: Sequence[int]) -> int:
    return sum(x * y for x, y in zip(u, v, strict=True)) % ORDER


def prove(
    transcript: Transcript,
    g: Sequence[Point],
    h: Sequence[Point],
    q: Point,
    a: Sequence[int],
    b: Sequence[int],
    h_factors: Sequence[int] | None = None,
    *,
    stop: int = 1,
    materialise_at: int | None = None,
) -> InnerProductProof:
    n = len(a)
    if n == 0 or not (len(b) == len(g) == len(h) == n):
        raise ValueError("inner product: equal non-zero lengths required")
    blocks = n // stop if 1 <= stop <= n else 0
    if not blocks or n % stop or blocks & (blocks - 1):
        raise ValueError("inner product: the length must be stop times a power of two")
    a_v = [x % ORDER for x in a]
    b_v = [x % ORDER for x in b]
    gcoef = [1] * n
    hcoef = [x % ORDER for x in h_factors] if h_factors is not None else [1] * n
    g_pts: list[Point] | None = None  # materialised folded generators
    h_pts: list[Point] | None = None
    lefts: list[Point] = []
    rights: list[Point] = []
    m = n
    while m > stop:
        half = m // 2
        a_lo, a_hi = a_v[:half], a_v[half:]
        b_lo, b_hi = b_v[:half], b_v[half:]
        c_l = _ip(a_lo, b_hi)
        c_r = _ip(a_hi, b_lo)
        if g_pts is None or h_pts is None:
            # original generator o stands for folded index o mod m: blocks of m originals,
            # each a lo half then a hi half
            lp: list[Point] = [q]
            ls: list[int] = [c_l]
            rp: list[Point] = [q]
            rs: list[int] = [c_r]
            for start in range(0, n, m):
                lo_, mid, end = start, start + half, start + m
                lp += g[mid:end]
                ls += [v * c for v, c in zip(a_lo, gcoef[mid:end], strict=True)]
                lp += h[lo_:mid]
                ls += [v * c for v, c in zip(b_hi, hcoef[lo_:mid], strict=True)]
                rp += h[mid:end]
                rs += [v * c for v, c in zip(b_lo, hcoef[mid:end], strict=True)]
                rp += g[lo_:mid]
                rs += [v * c for v, c in zip(a_hi, gcoef[lo_:mid], strict=True)]
            left = msm(lp, ls)
            right = msm(rp, rs)
        else:
            left = msm([*g_pts[half:], *h_pts[:half], q], [*a_lo, *b_hi, c_l])
            right = msm([*g_pts[:half], *h_pts[half:], q], [*a_hi, *b_lo, c_r])
        lefts.append(left)
        rights.append(right)
        transcript.absorb(b"ipa/L", left.to_compressed_bytes())
        transcript.absorb(b"ipa/R", right.to_compressed_bytes())
        x = transcript.challenge(b"ipa/x")
        xi = _inv(x)
        a_v = [(lo * x + hi * xi) % ORDER for lo, hi in zip(a_lo, a_hi, strict=True)]
        b_v = [(lo * xi + hi * x) % ORDER for lo, hi in zip(b_lo, b_hi, strict=True)]
        if g_pts is None or h_pts is None:
            for start in range(0, n, m):
                mid, end = start + half, start + m
                gcoef[start:mid] = [c * xi % ORDER for c in gcoef[start:mid]]
                gcoef[mid:end] = [c * x % ORDER for c in gcoef[mid:end]]
                hcoef[start:mid] = [c * x % ORDER for c in hcoef[start:mid]]
                hcoef[mid:end] = [c * xi % ORDER for c in hcoef[mid:end]]
            if materialise_at is not None and half > stop and n // half >= materialise_at:
                idx = [[o for o in range(i, n, half)] for i in range(half)]
                g_pts = [msm([g[o] for o in os_], [gcoef[o] for o in os_]) for os_ in idx]
                h_pts = [msm([h[o] for o in os_], [hcoef[o] for o in os_]) for os_ in idx]
        else:
            g_pts = [
                msm([lo, hi], [xi, x]) for lo, hi in zip(g_pts[:half], g_pts[half:], strict=True)
            ]
            h_pts = [
                msm([lo, hi], [x, xi]) for lo, hi in zip(h_pts[:half], h_pts[half:], strict=True)
            ]
        m = half
    return InnerProductProof(tuple(lefts), tuple(rights), tuple(a_v), tuple(b_v))


def challenges(transcript: Transcript, proof: InnerProductProof) -> list[int]:
    """Replay the transcript of ``proof``; the round challenges x_1..x_k."""
    xs = []
    for left, right in zip(proof.left, proof.right, strict=True):
        transcript.absorb(b"ipa/L", left.to_compressed_bytes())
        transcript.absorb(b"ipa/R", right.to_compressed_bytes())
        xs.append(transcript.challenge(b"ipa/x"))
    return xs


def verifier_terms(xs: Sequence[int], n: int) -> tuple[list[int], list[int], list[int], list[int]]:
    """The scalars of the final check for challenges ``xs`` over n = stop·2^len(xs)
    generators.

    The proof verifies iff ``P + Σ x_j²·L_j + x_j^-2·R_j ==
    Σ a[i mod stop]·s_i·G_i + Σ b[i mod stop]·s_i^-1·H'_i + <a, b>·Q``;
    returns (s, s_inv, [x_j²], [x_j^-2]), s of length n.
    """
    rounds = len(xs)
    if n % (1 << rounds) or n == 0:
        raise ValueError("inner product: n must be a non-zero multiple of 2^rounds")
    stop = n >> rounds
    inv = [_inv(x) for x in xs]
    s = [1]
    s_inv = [1]
    # index bits MSB-first: round j splits on bit (k-1-j); the hi half gets x_j
    # each later round adds a less significant bit
    for x, xi in zip(xs, inv, strict=True):
        s = [w for v in s for w in (v * xi % ORDER, v * x % ORDER)]
        s_inv = [w for v in s_inv for w in (v * x % ORDER, v * xi % ORDER)]
    s = [v for v in s for _ in range(stop)]
    s_inv = [v for v in s_inv for _ in range(stop)]
    return s, s_inv, [x * x % ORDER for x in xs], [v * v % ORDER for v in inv]
