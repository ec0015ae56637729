"""L∞-bound proofs for the same Pedersen commitment as the norm-bound proof: every
coordinate within ±bound (specified in docs/protocol/zk-norm.md §11, ``chainml/zk-linf/v1``).

One Bulletproofs-style argument over the coordinates and their bit decompositions: each
``x_i + bound`` is written in K = bitlen(2·bound) bits with weights 1, 2, ..., 2^(K-2) and
``2·bound + 1 - 2^(K-1)``, whose sums are exactly [0, 2·bound].  Pure computation.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from chainml.crypto.hazmat import bls12_381 as g1
from chainml.crypto.hazmat import ipa
from chainml.crypto.hazmat.bls12_381 import ORDER, Point, msm
from chainml.crypto.hazmat.transcript import Transcript
from chainml.crypto.zk._norm import (
    _SYSTEM,
    COORD_LIMIT,
    CommitmentOpening,
    NormContext,
    _check_vector,
    _commit_point,
    _decode_point,
    _evaluate,
    _gens,
    _ip,
    _padded_for,
    _powers,
    _Reader,
    _Rng,
)
from chainml.crypto.zk.errors import InvalidNormProof, MalformedNormProof, NormBoundExceeded

DST = b"chainml/zk-linf/v1"
VERSION = 1
MAX_LENGTH = 1 << 23  # n·(K + 1): the argument's vectors
IPA_STOP = 64  # the argument stops at 64..127 entries (the norm proof's v2 rule)


@dataclass(frozen=True)
class LinfParams:
    """Dimension n and bound b: the statement is |x_i| <= b for every i, x in Z^n."""

    dim: int
    bound: int

    def __post_init__(self) -> None:
        if not isinstance(self.dim, int) or not 1 <= self.dim:
            raise ValueError("dim must be a positive integer")
        if not isinstance(self.bound, int) or not 1 <= self.bound < COORD_LIMIT:
            raise ValueError("bound must be an integer in [1, 2^31)")
        if self.dim * (self.bits + 1) > MAX_LENGTH:
            raise ValueError("dim·(bits + 1) must be at most 2^23")

    @property
    def bits(self) -> int:
        """K: bits per coordinate."""
        return (2 * self.bound).bit_length()

    @property
    def weights(self) -> list[int]:
        """The bit weights: 1, 2, ..., 2^(K-2), then 2b + 1 - 2^(K-1) (sums: [0, 2b])."""
        k = self.bits
        return [1 << t for t in range(k - 1)] + [2 * self.bound + 1 - (1 << (k - 1))]

    @property
    def ipa_rounds(self) -> int:
        return _shape(self.dim * (self.bits + 1))[0]

    @property
    def ipa_stop(self) -> int:
        return _shape(self.dim * (self.bits + 1))[1]

    @property
    def padded(self) -> int:
        k, stop = _shape(self.dim * (self.bits + 1))
        return stop << k

    def encode(self) -> bytes:
        return self.dim.to_bytes(4, "big") + self.bound.to_bytes(4, "big")


def _shape(m: int) -> tuple[int, int]:
    k = max(0, (m // IPA_STOP).bit_length() - 1)
    return k, -(-m >> k)


def linf_proof_size(params: LinfParams) -> int:
    """Bytes of a v1 L∞ proof: 1 + 48·(5 + 2k) + 32·(3 + 2·stop)."""
    return (
        1
        + g1.POINT_BYTES * (5 + 2 * params.ipa_rounds)
        + g1.SCALAR_BYTES * (3 + 2 * params.ipa_stop)
    )


@dataclass(frozen=True)
class _LinfProof:
    v: Point
    a: Point
    s: Point
    t1: Point
    t2: Point
    tau: int
    mu: int
    t_hat: int
    ipa: ipa.InnerProductProof


def _start(ctx: NormContext, params: LinfParams, commitment: bytes) -> Transcript:
    t = Transcript(DST)
    t.absorb(b"context", ctx.encode())
    t.absorb(b"statement", params.encode())
    t.absorb(b"C", commitment)
    return t


def _decompose(params: LinfParams, x: list[int]) -> list[int]:
    """The bits of every x_i + b, K per coordinate, in the weights of ``params``."""
    k = params.bits
    top = params.weights[-1]
    half = 1 << (k - 1)
    out: list[int] = []
    for v in x:
        value = v + params.bound
        high = 1 if value >= half else 0
        low = value - top * high
        out += [(low >> t) & 1 for t in range(k - 1)]
        out.append(high)
    return out


class _Vectors:
    """The public vectors of the argument for challenges (y, z, c), length N:
    v (scaling of H), u (equality constraints), m (subtracted from a_L), w (linear)."""

    def __init__(self, params: LinfParams, y: int, c: int) -> None:
        n, k, big_n = params.dim, params.bits, params.padded
        end = n + n * k
        ys = _powers(y, end)
        qs = _powers(c, n, start=c)
        self.q_sum = sum(qs) % ORDER
        omega = params.weights
        self.v = [1] * n + ys[n:] + [1] * (big_n - end)
        self.u = ys + [0] * (big_n - end)
        self.m = ys[:n] + [1] * (n * k) + [0] * (big_n - end)
        self.w = [ORDER - q for q in qs] + [q * o % ORDER for q in qs for o in omega]
        self.w += [0] * (big_n - end)
        y_inv = pow(y, ORDER - 2, ORDER)
        self.v_inv = [1] * n + _powers(y_inv, n * k, start=pow(y_inv, n, ORDER))
        self.v_inv += [1] * (big_n - end)
        self.sum_b = (sum(ys[n:])) % ORDER  # Σ_{j in B} y^j
        self.ys_x = ys[:n]
        self.qs = qs


def _delta(params: LinfParams, vec: _Vectors, z: int, phi_inv: int) -> int:
    """t0 - φ²·s: the part of t0 the verifier computes (w' is w with its X block / φ)."""
    z2 = z * z % ORDER
    m_u = (sum(v * v for v in vec.ys_x) + vec.sum_b) % ORDER
    two_b = 2 * params.bound
    m_w = sum(q * (two_b - yv * phi_inv) for q, yv in zip(vec.qs, vec.ys_x, strict=True)) % ORDER
    return (z * vec.sum_b + z2 * (params.bound * vec.q_sum - m_u) - z2 * z * m_w) % ORDER


def prove_linf(
    ctx: NormContext,
    params: LinfParams,
    x: Sequence[int] | np.ndarray,
    opening: CommitmentOpening,
    *,
    rng: _Rng = _SYSTEM,
) -> bytes:
    """Prove in zero knowledge that every coordinate of the vector committed (by
    ``commit``) with ``opening`` is within [-bound, bound], bound to ``ctx``.  The
    commitment is the norm-bound proof's: one commitment can carry both proofs.  Raises
    NormBoundExceeded if a coordinate is out of range (nothing is proven)."""
    values = _check_vector(x)
    if len(values) != params.dim:
        raise ValueError("the vector's length is not params.dim")
    if any(abs(v) > params.bound for v in values):
        raise NormBoundExceeded("a coordinate is outside [-bound, bound]")
    return _encode(_prove(ctx, params, values, opening.blinding, rng, opening.commitment))


def _prove(
    ctx: NormContext,
    params: LinfParams,
    x: list[int],
    blinding: int,
    rng: _Rng,
    commitment: bytes | None = None,
    bits: list[int] | None = None,
    shift: list[int] | None = None,
) -> _LinfProof:
    """The prover without the statement check (a cheating prover's tool in tests): a
    coordinate out of range decomposes into bits that do not sum to it, unless the test
    hands in its own ``bits`` (values that are not bits, for instance) or a ``shift`` that
    A carries on the coordinates' generators (moving part of C's vector into A)."""
    n, k, big_n = params.dim, params.bits, params.padded
    end = n + n * k
    gens = _gens(max(big_n, _padded_for(n)))
    g, h = gens.g[:big_n], gens.h[:big_n]
    if commitment is None:
        commitment = g1.encode_point(_commit_point(gens, x, blinding))
    t = _start(ctx, params, commitment)
    if bits is None:
        bits = _decompose(params, [min(max(v, -params.bound), params.bound) for v in x])
    xm = [v % ORDER for v in x]
    s_val = sum(v * v for v in x) % ORDER
    gamma, alpha, rho = (rng.randbelow(ORDER) for _ in range(3))
    big_v = msm([gens.u, gens.h0], [s_val, gamma])
    # A = <bits, G_B> + <bits - 1, H_B> + α·H0: sums of points (1-bit scalars are cheap)
    ones = [g[n + j] for j, bit in enumerate(bits) if bit]
    zeros = [h[n + j] for j, bit in enumerate(bits) if not bit]
    big_a = msm(ones, [1] * len(ones)) - msm(zeros, [1] * len(zeros)) + g1.mul(gens.h0, alpha)
    if shift is not None:
        big_a = big_a + g1.msm_signed([*g[:n], *h[:n]], [*shift, *shift])
    s_l = [rng.randbelow(ORDER) for _ in range(end)] + [0] * (big_n - end)
    s_r = [rng.randbelow(ORDER) for _ in range(end)] + [0] * (big_n - end)
    big_s = msm([*g[:end], *h[:end], gens.h0], [*s_l[:end], *s_r[:end], rho])
    for label, pt in ((b"V", big_v), (b"A", big_a), (b"S", big_s)):
        t.absorb(label, g1.encode_point(pt))
    phi = t.challenge(b"phi")
    y = t.challenge(b"y")
    z = t.challenge(b"z")
    c = t.challenge(b"c")
    vec = _Vectors(params, y, c)
    phi_x = [phi * v % ORDER for v in xm]
    a_l = phi_x + bits + [0] * (big_n - end)
    a_r = phi_x + [b - 1 for b in bits] + [0] * (big_n - end)
    phi_inv = pow(phi, ORDER - 2, ORDER)
    w = [wv * phi_inv % ORDER for wv in vec.w[:n]] + vec.w[n:]  # a_L's X block is φ·x
    z2 = z * z % ORDER
    l0 = [(a - z * mv) % ORDER for a, mv in zip(a_l, vec.m, strict=True)]
    r0 = [
        (vv * a + z * uv + z2 * wv) % ORDER
        for vv, a, uv, wv in zip(vec.v, a_r, vec.u, w, strict=True)
    ]
    r1 = [vv * sv % ORDER for vv, sv in zip(vec.v, s_r, strict=True)]
    ev = _evaluate(t, gens, rng, l0, s_l, r0, r1)
    tau = (ev.tau2 * ev.x * ev.x + ev.tau1 * ev.x + phi * phi * gamma) % ORDER
    mu = (phi * blinding + alpha + rho * ev.x) % ORDER
    t.absorb(b"open", b"".join(g1.encode_scalar(v) for v in (tau, mu, ev.t_hat)))
    wq = t.challenge(b"w")
    proof = ipa.prove(t, g, h, g1.mul(gens.q, wq), ev.lv, ev.rv, vec.v_inv, stop=params.ipa_stop)
    return _LinfProof(big_v, big_a, big_s, ev.big_t1, ev.big_t2, tau, mu, ev.t_hat, proof)


def verify_linf(ctx: NormContext, params: LinfParams, commitment: bytes, proof: bytes) -> None:
    """Verify an L∞-bound proof for ``commitment`` under ``params`` and ``ctx``.

    Returns nothing; raises MalformedNormProof for bytes that are not an L∞ proof of this
    dimension and bound, InvalidNormProof for one that does not verify (another context,
    vector, bound, or a coordinate out of range)."""
    point_c = _decode_point(commitment)
    p = _decode(proof, params)
    n, big_n = params.dim, params.padded
    gens = _gens(max(big_n, _padded_for(n)))
    t = _start(ctx, params, commitment)
    for label, pt in ((b"V", p.v), (b"A", p.a), (b"S", p.s)):
        t.absorb(label, g1.encode_point(pt))
    phi = t.challenge(b"phi")
    y = t.challenge(b"y")
    z = t.challenge(b"z")
    c = t.challenge(b"c")
    t.absorb(b"T1", g1.encode_point(p.t1))
    t.absorb(b"T2", g1.encode_point(p.t2))
    xx = t.challenge(b"x")
    t.absorb(b"open", b"".join(g1.encode_scalar(v) for v in (p.tau, p.mu, p.t_hat)))
    wq = t.challenge(b"w")
    xs = ipa.challenges(t, p.ipa)
    vec = _Vectors(params, y, c)
    phi_inv = pow(phi, ORDER - 2, ORDER)
    delta = _delta(params, vec, z, phi_inv)
    s, s_inv, x2, xm2 = ipa.verifier_terms(xs, big_n)
    a, b = p.ipa.a, p.ipa.b
    stop = params.ipa_stop
    z2 = z * z % ORDER
    b1, b2 = (secrets.randbelow(ORDER - 1) + 1 for _ in range(2))
    # equation 1 (IPA): Σ a·s·G + Σ b·s^-1·v^-1·H + <a,b>·Q' ==
    #   φ·C + A + x·S - z·<m, G> + <v^-1∘(z·u + z²·w'), H> - μ·H0 + t̂·Q' + Σ x²L + x^-2R
    # where w' is w with its X block divided by φ
    coef_g = []
    coef_h = []
    for i in range(big_n):
        k = i % stop
        coef_g.append(b1 * (a[k] * s[i] + z * vec.m[i]) % ORDER)
        wi = vec.w[i] * phi_inv if i < n else vec.w[i]
        coef_h.append(b1 * vec.v_inv[i] * (b[k] * s_inv[i] - z * vec.u[i] - z2 * wi) % ORDER)
    extra: list[tuple[Point, int]] = [
        (gens.q, b1 * wq * (_ip(a, b) - p.t_hat)),
        (point_c, -b1 * phi),
        (p.a, -b1),
        (p.s, -b1 * xx),
        (gens.h0, b1 * p.mu + b2 * p.tau),
        # equation 2: t̂·U + τ·H0 == φ²·V + δ·U + x·T1 + x²·T2
        (gens.u, b2 * (p.t_hat - delta)),
        (p.v, -b2 * phi * phi),
        (p.t1, -b2 * xx),
        (p.t2, -b2 * xx * xx),
    ]
    extra += [(pt, -b1 * v) for pt, v in zip(p.ipa.left, x2, strict=True)]
    extra += [(pt, -b1 * v) for pt, v in zip(p.ipa.right, xm2, strict=True)]
    pts = [*gens.g[:big_n], *gens.h[:big_n], *(pt for pt, _ in extra)]
    if msm(pts, [*coef_g, *coef_h, *(v % ORDER for _, v in extra)]) != g1.identity():
        raise InvalidNormProof("the L∞-bound proof does not verify")


def _encode(p: _LinfProof) -> bytes:
    ep = g1.encode_point
    es = g1.encode_scalar
    return b"".join(
        [
            bytes([VERSION]),
            ep(p.v), ep(p.a), ep(p.s), ep(p.t1), ep(p.t2),
            es(p.tau), es(p.mu), es(p.t_hat),
            b"".join(ep(v) for v in (*p.ipa.left, *p.ipa.right)),
            b"".join(es(v) for v in (*p.ipa.a, *p.ipa.b)),
        ]
    )  # fmt: skip


def _decode(data: bytes, params: LinfParams) -> _LinfProof:
    if not isinstance(data, bytes | bytearray):
        raise MalformedNormProof("a proof is bytes")
    data = bytes(data)
    size = linf_proof_size(params)
    if len(data) != size:
        raise MalformedNormProof(
            f"a v{VERSION} L∞ proof of dimension {params.dim} and bound {params.bound} "
            f"is {size} bytes, got {len(data)}"
        )
    rd = _Reader(data)
    if rd.take(1)[0] != VERSION:
        raise MalformedNormProof("unknown proof version")
    v, a, s, t1, t2 = (rd.point() for _ in range(5))
    tau, mu, t_hat = rd.scalar(), rd.scalar(), rd.scalar()
    return _LinfProof(v, a, s, t1, t2, tau, mu, t_hat, rd.ipa(params.ipa_rounds, params.ipa_stop))
