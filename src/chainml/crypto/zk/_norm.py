"""Norm-bound proofs for Pedersen-committed integer vectors (specified in
docs/protocol/zk-norm.md, version 3).  Everything here is pure computation."""

from __future__ import annotations

import math
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from chainml.crypto.hazmat import bls12_381 as g1
from chainml.crypto.hazmat import ipa
from chainml.crypto.hazmat.bls12_381 import ORDER, Point, msm
from chainml.crypto.hazmat.transcript import Transcript
from chainml.crypto.zk.errors import (
    AggregateMismatch,
    InvalidNormProof,
    MalformedNormProof,
    NormBoundExceeded,
)

GEN_DST = b"chainml/zk-norm/v1"  # the generators did not change in v2 or v3
DST = b"chainml/zk-norm/v3"  # the transcript's domain: no proof of v1 or v2 is one of v3
VERSION = 3
ROWS = 128  # random binary projections: soundness of the smallness check 2^-128
MASK_BITS = 64  # z_j hides <R_j, x> statistically... exactly, with rejection (see spec)
RANGE_BITS = 64  # bound_sq - ||x||^2 in [0, 2^64)
IPA_STOP = 128  # the main inner-product argument stops at vectors of 128..255, sent
MAX_DIM = 1 << 20
MAX_BOUND_SQ = (1 << 62) - 1
COORD_LIMIT = 1 << 31  # |x_i| < 2^31: the signed Z_2^32 range secure aggregation uses
LIMB_BITS = 16  # the blinding sum crosses secure aggregation as 16-bit limbs in 32-bit words
LIMBS = 16
MAX_TRAINERS = 1 << 16
Z_BYTES = 16

_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


class _Rng(Protocol):
    def randbelow(self, n: int) -> int: ...


class _SystemRng:
    def randbelow(self, n: int) -> int:
        return secrets.randbelow(n)


_SYSTEM = _SystemRng()


# -- statement and context ----------------------------------------------------------------


@dataclass(frozen=True)
class NormContext:
    """What a proof is bound to: a proof made for one context is refused for any other."""

    chain_id: int
    jobs_contract: str
    job_id: int
    round: int
    attempt: int
    trainer: str

    def __post_init__(self) -> None:
        for name in ("jobs_contract", "trainer"):
            if not _ADDRESS.match(getattr(self, name)):
                raise ValueError(f"{name} must be a 0x-prefixed 20-byte hex address")
        for name, bits in (("chain_id", 256), ("job_id", 256), ("round", 64), ("attempt", 32)):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value < 1 << bits:
                raise ValueError(f"{name} must be an integer in [0, 2^{bits})")

    def encode(self) -> bytes:
        return (
            self.chain_id.to_bytes(32, "big")
            + bytes.fromhex(self.jobs_contract[2:])
            + self.job_id.to_bytes(32, "big")
            + self.round.to_bytes(8, "big")
            + self.attempt.to_bytes(4, "big")
            + bytes.fromhex(self.trainer[2:])
        )


@dataclass(frozen=True)
class NormParams:
    """Dimension n and bound: the statement is ||x||_2^2 <= bound_sq, x in Z^n."""

    dim: int
    bound_sq: int

    def __post_init__(self) -> None:
        if not isinstance(self.dim, int) or not 1 <= self.dim <= MAX_DIM:
            raise ValueError(f"dim must be in [1, {MAX_DIM}]")
        if not isinstance(self.bound_sq, int) or not 0 <= self.bound_sq <= MAX_BOUND_SQ:
            raise ValueError("bound_sq must be in [0, 2^62)")
        # smallness: every coordinate of an accepted vector is below `width` in absolute
        # value, so ||x||^2 < dim * width^2 < ORDER / 2 never wraps (spec, soundness)
        if not (self.dim * self.width**2 < ORDER // 2 and self.width < 1 << (8 * Z_BYTES)):
            raise ValueError("dim and bound_sq too large for the smallness argument")

    @property
    def vmax(self) -> int:
        """An upper bound on |<R_j, x>| for an honest x: ||x||_1 <= sqrt(n)·||x||_2."""
        return math.isqrt(self.dim * self.bound_sq) + 1

    @property
    def width(self) -> int:
        return self.vmax << MASK_BITS

    @property
    def z_range(self) -> tuple[int, int]:
        """Accepted projections [vmax, width - vmax): for every honest |<R_j, x>| < vmax the
        masked value is uniform on exactly this interval (rejection sampling)."""
        return self.vmax, self.width - self.vmax

    @property
    def ipa_rounds(self) -> int:
        """k: the main argument folds k times, down to ``ipa_stop`` entries in [128, 256)."""
        return _ipa_shape(self.dim)[0]

    @property
    def ipa_stop(self) -> int:
        return _ipa_shape(self.dim)[1]

    @property
    def padded(self) -> int:
        """N = ipa_stop·2^ipa_rounds >= dim + ROWS: the vectors' length (not a power of two:
        at 4,810 it is 4,960 where v1 padded to 8,192)."""
        k, stop = _ipa_shape(self.dim)
        return stop << k

    def encode(self) -> bytes:
        return self.dim.to_bytes(4, "big") + self.bound_sq.to_bytes(8, "big")


@dataclass(frozen=True)
class _Gens:
    g: list[Point]
    h: list[Point]
    h0: Point
    u: Point
    q: Point
    rg: list[Point]
    rh: list[Point]


def _ipa_shape(dim: int) -> tuple[int, int]:
    """(k, stop) with stop·2^k >= dim + ROWS, stop in [128, 256) (the least such stop)."""
    m = dim + ROWS
    k = max(0, (m // IPA_STOP).bit_length() - 1)
    return k, -(-m >> k)


def _gens(padded: int) -> _Gens:
    return _Gens(
        g=g1.generators(GEN_DST, b"G", padded),
        h=g1.generators(GEN_DST, b"H", padded),
        h0=g1.generators(GEN_DST, b"H0", 1)[0],
        u=g1.generators(GEN_DST, b"U", 1)[0],
        q=g1.generators(GEN_DST, b"Q", 1)[0],
        rg=g1.generators(GEN_DST, b"RG", RANGE_BITS),
        rh=g1.generators(GEN_DST, b"RH", RANGE_BITS),
    )


def _check_vector(x: Sequence[int] | np.ndarray) -> list[int]:
    if isinstance(x, np.ndarray) and not np.issubdtype(x.dtype, np.integer):
        raise ValueError("integer (fixed-point) coordinates expected")
    if not all(isinstance(v, int | np.integer) and not isinstance(v, bool) for v in x):
        raise ValueError("integer (fixed-point) coordinates expected")
    values = [int(v) for v in x]
    if not values:
        raise ValueError("an empty vector")
    if any(not -COORD_LIMIT <= v < COORD_LIMIT for v in values):
        raise NormBoundExceeded("a coordinate is outside the signed 32-bit range")
    return values


def bound_sq_for(clip: float, frac_bits: int, dim: int) -> int:
    """The bound on ||x||^2 for a fixed-point vector of ``dim`` coordinates encoded with
    ``frac_bits`` (``fixedpoint.encode``) from a real vector of L2 norm at most ``clip``:
    stochastic rounding adds less than 1 per coordinate, so ||x|| < clip·2^f + sqrt(dim)."""
    if not clip > 0 or not math.isfinite(clip) or frac_bits < 0:
        raise ValueError("clip must be positive and finite, frac_bits non-negative")
    bound = math.ceil(clip * (1 << frac_bits)) + math.isqrt(dim) + 1
    return bound * bound


# -- commitment ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CommitmentOpening:
    """The secret blinding of a trainer's commitment.  Never logged, never published:
    only the sum over trainers (through secure aggregation) is revealed.

    ``commit`` also keeps the (public) commitment here, so that ``prove_norm`` does not
    compute it again; an opening made by hand has none and the prover recomputes it."""

    blinding: int
    commitment: bytes | None = field(default=None, compare=False)

    def __repr__(self) -> str:
        return "CommitmentOpening(<secret>)"

    def limbs(self) -> list[int]:
        """The blinding as 16 words of 16 bits, least significant first, for secure
        aggregation (sums of up to 2^16 trainers stay below 2^32: no carry is lost)."""
        return [(self.blinding >> (LIMB_BITS * i)) & 0xFFFF for i in range(LIMBS)]


def blinding_from_limb_sums(words: Sequence[int]) -> int:
    """The summed blinding from the 16 summed words (each taken modulo 2^32)."""
    if len(words) != LIMBS:
        raise ValueError(f"{LIMBS} words expected")
    return sum((int(w) % (1 << 32)) << (LIMB_BITS * i) for i, w in enumerate(words)) % ORDER


def _commit_point(gens: _Gens, x: list[int], blinding: int) -> Point:
    n = len(x)  # the 32-bit coordinates apart from the 255-bit blinding: a cheaper MSM
    return g1.msm_signed([*gens.g[:n], *gens.h[:n]], [*x, *x]) + g1.mul(gens.h0, blinding)


def commit(
    x: Sequence[int] | np.ndarray, *, rng: _Rng = _SYSTEM
) -> tuple[bytes, CommitmentOpening]:
    """Commit to an integer vector: ``C = <x, G> + <x, H> + r·H0`` (48 bytes).

    Hiding (perfectly) and binding under the discrete logarithm assumption in G1.
    Raises NormBoundExceeded if a coordinate is outside [-2^31, 2^31).
    """
    values = _check_vector(x)
    gens = _gens(_padded_for(len(values)))
    blinding = rng.randbelow(ORDER)
    commitment = g1.encode_point(_commit_point(gens, values, blinding))
    return commitment, CommitmentOpening(blinding, commitment)


def _padded_for(dim: int) -> int:
    k, stop = _ipa_shape(dim)
    return stop << k


def verify_aggregate(
    commitments: Sequence[bytes], total: Sequence[int] | np.ndarray, blinding_sum: int
) -> None:
    """Check that the published sum ``total`` is the sum of the committed vectors:
    ``Σ C_i == <total, G> + <total, H> + blinding_sum·H0``.  Raises AggregateMismatch
    (or MalformedNormProof for a commitment that is not a point)."""
    values = [int(v) for v in total]
    if not commitments:
        raise AggregateMismatch("no commitments")
    gens = _gens(_padded_for(len(values)))
    points = [_decode_point(c) for c in commitments]
    n = len(values)
    lhs = msm(points, [1] * len(points))
    rhs = msm([*gens.g[:n], *gens.h[:n], gens.h0], [*values, *values, blinding_sum])
    if lhs != rhs:
        raise AggregateMismatch("the sum does not open the summed commitments")


# -- shared computations -------------------------------------------------------------------


def _start(ctx: NormContext, params: NormParams, commitment: bytes) -> Transcript:
    t = Transcript(DST)
    t.absorb(b"context", ctx.encode())
    t.absorb(b"statement", params.encode())
    t.absorb(b"C", commitment)
    return t


def _rows(t: Transcript, dim: int) -> np.ndarray:
    stride = (dim + 7) // 8
    raw = np.frombuffer(t.stream(b"rows", ROWS * stride), dtype=np.uint8)
    bits = np.unpackbits(raw.reshape(ROWS, stride), axis=1, bitorder="little")
    return bits[:, :dim]


def _weights(rows: np.ndarray, cs: list[int]) -> list[int]:
    """w_i = Σ_j c_j·R_ji mod ORDER, through 32-bit limbs of the c_j (exact in int64)."""
    limbs = np.array([[(c >> (32 * k)) & 0xFFFFFFFF for k in range(8)] for c in cs], dtype=np.int64)
    sums = rows.T.astype(np.int64) @ limbs  # each entry < 128·2^32
    cols = [sums[:, k].tolist() for k in range(8)]
    return [
        (((((((s7 << 32) + s6 << 32) + s5 << 32) + s4 << 32) + s3 << 32) + s2 << 32) + s1 << 32)
        + s0
        for s0, s1, s2, s3, s4, s5, s6, s7 in zip(*cols, strict=True)
    ]  # below 2^263, not reduced: only ever used in products reduced modulo ORDER


def _mask_weights(cs: list[int], e: int) -> list[int]:
    """w_{n+j} = c_j / e: the argument's a_L holds e·y_j there (C + e·M is opened)."""
    e_inv = pow(e, ORDER - 2, ORDER)
    return [cj * e_inv % ORDER for cj in cs]


def _powers(base: int, count: int, start: int = 1) -> list[int]:
    out = []
    v = start % ORDER
    for _ in range(count):
        out.append(v)
        v = v * base % ORDER
    return out


def _ip(a: Sequence[int], b: Sequence[int]) -> int:
    return sum(x * y for x, y in zip(a, b, strict=True)) % ORDER


# -- the proof -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _RangeProof:
    a: Point
    s: Point
    t1: Point
    t2: Point
    tau: int
    mu: int
    t_hat: int
    ipa: ipa.InnerProductProof


@dataclass(frozen=True)
class _Proof:
    v: Point
    m: Point
    s: Point
    z: tuple[int, ...]
    t1: Point
    t2: Point
    tau: int
    mu: int
    t_hat: int
    ipa: ipa.InnerProductProof
    range: _RangeProof


@dataclass(frozen=True)
class _Evaluated:
    """The step every argument here shares: t(X) = <l0 + s_l·X, r0 + r1·X>, its two
    coefficients committed (T1, T2, absorbed under ``label`` + "T1"/"T2"), the challenge x
    (``label`` + "x") and l, r and t̂ at x."""

    big_t1: Point
    big_t2: Point
    tau1: int
    tau2: int
    x: int
    lv: list[int]
    rv: list[int]
    t_hat: int


def _evaluate(
    t: Transcript,
    gens: _Gens,
    rng: _Rng,
    l0: list[int],
    s_l: list[int],
    r0: list[int],
    r1: list[int],
    label: bytes = b"",
) -> _Evaluated:
    t1 = (_ip(l0, r1) + _ip(s_l, r0)) % ORDER
    t2 = _ip(s_l, r1)
    tau1, tau2 = rng.randbelow(ORDER), rng.randbelow(ORDER)
    big_t1 = msm([gens.u, gens.h0], [t1, tau1])
    big_t2 = msm([gens.u, gens.h0], [t2, tau2])
    t.absorb(label + b"T1", g1.encode_point(big_t1))
    t.absorb(label + b"T2", g1.encode_point(big_t2))
    x = t.challenge(label + b"x")
    lv = [(a + b * x) % ORDER for a, b in zip(l0, s_l, strict=True)]
    rv = [(a + b * x) % ORDER for a, b in zip(r0, r1, strict=True)]
    return _Evaluated(big_t1, big_t2, tau1, tau2, x, lv, rv, _ip(lv, rv))


def _prove_range(t: Transcript, gens: _Gens, value: int, gamma: int, rng: _Rng) -> _RangeProof:
    """Bulletproofs range proof that V_r = value·U + gamma·H0 holds value in [0, 2^64)."""
    nb = RANGE_BITS
    a_l = [(value >> i) & 1 for i in range(nb)]
    a_r = [(b - 1) % ORDER for b in a_l]
    alpha, rho = rng.randbelow(ORDER), rng.randbelow(ORDER)
    s_l = [rng.randbelow(ORDER) for _ in range(nb)]
    s_r = [rng.randbelow(ORDER) for _ in range(nb)]
    big_a = msm([*gens.rg, *gens.rh, gens.h0], [*a_l, *a_r, alpha])
    big_s = msm([*gens.rg, *gens.rh, gens.h0], [*s_l, *s_r, rho])
    t.absorb(b"range/A", g1.encode_point(big_a))
    t.absorb(b"range/S", g1.encode_point(big_s))
    y = t.challenge(b"range/y")
    z = t.challenge(b"range/z")
    yn = _powers(y, nb)
    two = [1 << i for i in range(nb)]
    l0 = [(b - z) % ORDER for b in a_l]
    r0 = [(yi * (b + z) + z * z * tw) % ORDER for yi, b, tw in zip(yn, a_r, two, strict=True)]
    r1 = [yi * sr % ORDER for yi, sr in zip(yn, s_r, strict=True)]
    ev = _evaluate(t, gens, rng, l0, s_l, r0, r1, b"range/")
    tau = (ev.tau2 * ev.x * ev.x + ev.tau1 * ev.x + z * z * gamma) % ORDER
    mu = (alpha + rho * ev.x) % ORDER
    _absorb_scalars(t, b"range/open", tau, mu, ev.t_hat)
    wq = t.challenge(b"range/w")
    y_inv = pow(y, ORDER - 2, ORDER)
    proof = ipa.prove(
        t, gens.rg, gens.rh, g1.mul(gens.q, wq), ev.lv, ev.rv, _powers(y_inv, nb), materialise_at=8
    )
    return _RangeProof(big_a, big_s, ev.big_t1, ev.big_t2, tau, mu, ev.t_hat, proof)


def _absorb_scalars(t: Transcript, label: bytes, *values: int) -> None:
    t.absorb(label, b"".join(g1.encode_scalar(v) for v in values))


def prove_norm(
    ctx: NormContext,
    params: NormParams,
    x: Sequence[int] | np.ndarray,
    opening: CommitmentOpening,
    *,
    rng: _Rng = _SYSTEM,
) -> bytes:
    """Prove in zero knowledge that the vector committed (by ``commit``) with ``opening``
    has ``||x||_2^2 <= params.bound_sq``, bound to ``ctx``.  Returns the canonical
    encoding.  Raises NormBoundExceeded if the statement is false (nothing is proven).

    The proof is for the commitment the opening carries (``commit`` puts it there; an
    opening built by hand from a blinding has none, and the commitment is recomputed from
    ``x``): an opening from another vector's ``commit`` gives a proof that does not verify.
    """
    values = _check_vector(x)
    if len(values) != params.dim:
        raise ValueError("the vector's length is not params.dim")
    if sum(v * v for v in values) > params.bound_sq:
        raise NormBoundExceeded("the vector's L2 norm is above the bound")
    return _encode(_prove(ctx, params, values, opening.blinding, rng, opening.commitment))


def _prove(
    ctx: NormContext,
    params: NormParams,
    x: list[int],
    blinding: int,
    rng: _Rng,
    commitment: bytes | None = None,
) -> _Proof:
    """The prover, without the statement check (a cheating prover's tool in tests)."""
    n, big_n = params.dim, params.padded
    gens = _gens(big_n)
    if commitment is None:
        commitment = g1.encode_point(_commit_point(gens, x, blinding))
    s_val = sum(v * v for v in x) % ORDER
    xm = [v % ORDER for v in x]
    x_np = np.array(x, dtype=np.int64)
    g_y = gens.g[n : n + ROWS]
    while True:  # rejection: retried with probability below 2^-56
        t = _start(ctx, params, commitment)
        gamma = rng.randbelow(ORDER)
        big_v = msm([gens.u, gens.h0], [s_val, gamma])
        ys = [rng.randbelow(params.width) for _ in range(ROWS)]
        rho = rng.randbelow(ORDER)
        big_m = msm([*g_y, gens.h0], [*ys, rho])
        # blinding only where the witness is secret: a_L is public (zero) beyond n + ROWS
        # and a_R beyond n, so l and r are public values there whatever s_L, s_R are
        s_l = [rng.randbelow(ORDER) for _ in range(n + ROWS)] + [0] * (big_n - n - ROWS)
        s_r = [rng.randbelow(ORDER) for _ in range(n)] + [0] * (big_n - n)
        rho_s = rng.randbelow(ORDER)
        big_s = msm(
            [*gens.g[: n + ROWS], *gens.h[:n], gens.h0], [*s_l[: n + ROWS], *s_r[:n], rho_s]
        )
        for label, pt in ((b"V", big_v), (b"M", big_m), (b"S", big_s)):
            t.absorb(label, g1.encode_point(pt))
        e = t.challenge(b"e")
        rows = _rows(t, n)
        proj = (rows.astype(np.int64) @ x_np).tolist()
        zs = [int(p) + yv for p, yv in zip(proj, ys, strict=True)]
        lo, hi = params.z_range
        if all(lo <= zv < hi for zv in zs):
            break
    t.absorb(b"z", b"".join(zv.to_bytes(Z_BYTES, "big") for zv in zs))
    c = t.challenge(b"c")
    yc = t.challenge(b"y")
    zc = t.challenge(b"z")
    cs = _powers(c, ROWS, start=c)
    # the argument opens C + e·M: the masks enter a_L as e·y_j, their weights as c_j/e
    w = _weights(rows, cs) + _mask_weights(cs, e) + [0] * (big_n - n - ROWS)
    u = _powers(yc, big_n)
    a_l = xm + [e * yv % ORDER for yv in ys] + [0] * (big_n - n - ROWS)
    a_r = xm + [0] * (big_n - n)
    z2 = zc * zc % ORDER
    l0 = [(a - zc * ui) % ORDER for a, ui in zip(a_l, u, strict=True)]
    r0 = [
        (a + (zc * ui if i < n else 0) + z2 * wi) % ORDER
        for i, (a, ui, wi) in enumerate(zip(a_r, u, w, strict=True))
    ]
    ev = _evaluate(t, gens, rng, l0, s_l, r0, s_r)
    tau = (ev.tau2 * ev.x * ev.x + ev.tau1 * ev.x + gamma) % ORDER
    mu = (blinding + e * rho + rho_s * ev.x) % ORDER
    _absorb_scalars(t, b"open", tau, mu, ev.t_hat)
    wq = t.challenge(b"w")
    main = ipa.prove(t, gens.g, gens.h, g1.mul(gens.q, wq), ev.lv, ev.rv, stop=params.ipa_stop)
    # ||x||^2 <= bound_sq: range proof of bound_sq - s, committed as bound_sq·U - V
    rng_proof = _prove_range(t, gens, (params.bound_sq - s_val) % ORDER, (-gamma) % ORDER, rng)
    return _Proof(
        big_v, big_m, big_s, tuple(zs), ev.big_t1, ev.big_t2,
        tau, mu, ev.t_hat, main, rng_proof,
    )  # fmt: skip


def verify_norm(ctx: NormContext, params: NormParams, commitment: bytes, proof: bytes) -> None:
    """Verify a norm-bound proof for ``commitment`` under ``params`` and ``ctx``.

    Returns nothing; raises MalformedNormProof for bytes that are not a proof of this
    dimension, InvalidNormProof for a proof that does not verify (another context,
    vector, bound, or a false statement).
    """
    coef_g, coef_h, extra = _terms(ctx, params, commitment, proof)
    gens = _gens(params.padded)
    pts = [*gens.g, *gens.h, *(pt for pt, _ in extra)]
    if msm(pts, [*coef_g, *coef_h, *(v for _, v in extra)]) != g1.identity():
        raise InvalidNormProof("the norm-bound proof does not verify")


def invalid_norm_proofs(
    params: NormParams,
    items: Sequence[tuple[NormContext, bytes, bytes]],
    *,
    statements: Sequence[NormParams] | None = None,
) -> list[int]:
    """The positions in ``items`` (context, commitment, proof) whose proofs do not verify
    (malformed ones included); empty if all do.  All proofs are checked in one MSM over
    the shared generators, each with independent random weights; only if that fails is
    each checked alone, to name the culprits.  For an aggregator with many trainers.

    ``statements``, if given, is each item's own statement (a bound per trainer, e.g. its
    weighted clip); all of ``params.dim`` (they share the generators).  Otherwise every
    item is checked against ``params``."""
    if statements is None:
        statements = [params] * len(items)
    if len(statements) != len(items) or any(s.dim != params.dim for s in statements):
        raise ValueError("one statement per item, all of params.dim")
    gens = _gens(params.padded)
    total_g = [0] * params.padded
    total_h = [0] * params.padded
    extra: list[tuple[Point, int]] = []
    bad: list[int] = []
    for k, (ctx, commitment, proof) in enumerate(items):
        try:
            coef_g, coef_h, more = _terms(ctx, statements[k], commitment, proof)
        except InvalidNormProof:
            bad.append(k)
            continue
        total_g = [(a + b) % ORDER for a, b in zip(total_g, coef_g, strict=True)]
        total_h = [(a + b) % ORDER for a, b in zip(total_h, coef_h, strict=True)]
        extra += more
    pts = [*gens.g, *gens.h, *(pt for pt, _ in extra)]
    if msm(pts, [*total_g, *total_h, *(v for _, v in extra)]) == g1.identity():
        return bad
    for k, (ctx, commitment, proof) in enumerate(items):
        if k not in bad:
            try:
                verify_norm(ctx, statements[k], commitment, proof)
            except InvalidNormProof:
                bad.append(k)
    return sorted(bad)


def _terms(
    ctx: NormContext, params: NormParams, commitment: bytes, proof: bytes
) -> tuple[list[int], list[int], list[tuple[Point, int]]]:
    """The verification equations of one proof as MSM terms (G coefficients, H
    coefficients, other points), each equation weighted by a fresh random scalar: the
    proof verifies iff (with overwhelming probability) the MSM is the identity."""
    point_c = _decode_point(commitment)
    del point_c  # decoded only to refuse a commitment that is not a point
    p = _decode(proof, params)
    n, big_n = params.dim, params.padded
    gens = _gens(big_n)
    t = _start(ctx, params, commitment)
    for label, pt in ((b"V", p.v), (b"M", p.m), (b"S", p.s)):
        t.absorb(label, g1.encode_point(pt))
    e = t.challenge(b"e")
    rows = _rows(t, n)
    lo, hi = params.z_range
    if not all(lo <= zv < hi for zv in p.z):
        raise InvalidNormProof("a projection is out of range")
    t.absorb(b"z", b"".join(zv.to_bytes(Z_BYTES, "big") for zv in p.z))
    c = t.challenge(b"c")
    yc = t.challenge(b"y")
    zc = t.challenge(b"z")
    t.absorb(b"T1", g1.encode_point(p.t1))
    t.absorb(b"T2", g1.encode_point(p.t2))
    xx = t.challenge(b"x")
    _absorb_scalars(t, b"open", p.tau, p.mu, p.t_hat)
    wq = t.challenge(b"w")
    xs = ipa.challenges(t, p.ipa)
    cs = _powers(c, ROWS, start=c)
    w = _weights(rows, cs) + _mask_weights(cs, e) + [0] * (big_n - n - ROWS)
    u = _powers(yc, big_n)
    zeta = sum(ci * zv for ci, zv in zip(cs, p.z, strict=True)) % ORDER
    z2 = zc * zc % ORDER
    delta = (-z2 * sum(ui * ui for ui in u[:n]) - z2 * zc * _ip(u, w)) % ORDER
    s, s_inv, x2, xm2 = ipa.verifier_terms(xs, big_n)
    a, b = p.ipa.a, p.ipa.b
    ab = _ip(a, b)

    # range proof transcript
    r = p.range
    t.absorb(b"range/A", g1.encode_point(r.a))
    t.absorb(b"range/S", g1.encode_point(r.s))
    ry = t.challenge(b"range/y")
    rz = t.challenge(b"range/z")
    t.absorb(b"range/T1", g1.encode_point(r.t1))
    t.absorb(b"range/T2", g1.encode_point(r.t2))
    rx = t.challenge(b"range/x")
    _absorb_scalars(t, b"range/open", r.tau, r.mu, r.t_hat)
    rwq = t.challenge(b"range/w")
    rxs = ipa.challenges(t, r.ipa)
    nb = RANGE_BITS
    ryn = _powers(ry, nb)
    ry_inv = pow(ry, ORDER - 2, ORDER)
    ryinv_n = _powers(ry_inv, nb)
    rs, rs_inv, rx2, rxm2 = ipa.verifier_terms(rxs, nb)
    rdelta = ((rz - rz * rz) * sum(ryn) - rz**3 * ((1 << nb) - 1)) % ORDER

    # one batched MSM: each equation weighted by a fresh random scalar
    b1, b2, b4, b5 = (secrets.randbelow(ORDER - 1) + 1 for _ in range(4))
    coef_g = [0] * big_n
    coef_h = [0] * big_n
    stop = params.ipa_stop
    for i in range(big_n):
        k = i % stop
        coef_g[i] = b1 * (a[k] * s[i] + zc * u[i])
        coef_h[i] = b1 * (b[k] * s_inv[i] - (zc * u[i] if i < n else 0) - z2 * w[i])
    # equation 1 (main IPA): rest of the terms
    extra: list[tuple[Point, int]] = [
        (gens.q, b1 * wq * (ab - p.t_hat)),
        (_decode_point(commitment), -b1),
        (p.m, -b1 * e),
        (p.s, -b1 * xx),
        (gens.h0, b1 * p.mu + b2 * p.tau),
        # equation 2: t_hat·U + tau·H0 == V + (z²·zeta + delta)·U + x·T1 + x²·T2
        (gens.u, b2 * (p.t_hat - z2 * zeta - delta)),
        (p.v, -b2),
        (p.t1, -b2 * xx),
        (p.t2, -b2 * xx * xx),
    ]
    extra += [(pt, -b1 * v) for pt, v in zip(p.ipa.left, x2, strict=True)]
    extra += [(pt, -b1 * v) for pt, v in zip(p.ipa.right, xm2, strict=True)]
    # equation 4 (range t): t_hat·U + tau·H0 == z²·(bound_sq·U - V) + delta·U + x·T1 + x²·T2
    rz2 = rz * rz % ORDER
    extra += [
        (gens.u, b4 * (r.t_hat - rz2 * params.bound_sq - rdelta)),
        (gens.h0, b4 * r.tau),
        (p.v, b4 * rz2),
        (r.t1, -b4 * rx),
        (r.t2, -b4 * rx * rx),
    ]
    # equation 5 (range IPA): a·s·G + b·s^-1·y^-i·H + ab·Q' == P + t_hat·Q' + Σ x²L + x^-2R
    (ra,), (rb,) = r.ipa.a, r.ipa.b
    for i in range(nb):
        extra.append((gens.rg[i], b5 * (ra * rs[i] + rz)))
        extra.append(
            (gens.rh[i], b5 * (rb * rs_inv[i] * ryinv_n[i] - rz - rz2 * (1 << i) * ryinv_n[i]))
        )
    extra += [
        (gens.q, b5 * rwq * (ra * rb - r.t_hat)),
        (r.a, -b5),
        (r.s, -b5 * rx),
        (gens.h0, b5 * r.mu),
    ]
    extra += [(pt, -b5 * v) for pt, v in zip(r.ipa.left, rx2, strict=True)]
    extra += [(pt, -b5 * v) for pt, v in zip(r.ipa.right, rxm2, strict=True)]
    return [v % ORDER for v in coef_g], [v % ORDER for v in coef_h], extra


# -- encoding ------------------------------------------------------------------------------


def proof_size(params: NormParams) -> int:
    rounds = params.ipa_rounds
    points = 3 + 2 + 2 * rounds + 4 + 2 * (RANGE_BITS.bit_length() - 1)
    scalars = 3 + 2 * params.ipa_stop + 3 + 2
    return 1 + points * g1.POINT_BYTES + scalars * g1.SCALAR_BYTES + ROWS * Z_BYTES


def _decode_point(data: bytes) -> Point:
    try:
        return g1.decode_point(data)
    except g1.MalformedElement as exc:
        raise MalformedNormProof(str(exc)) from None


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            raise MalformedNormProof("the proof is truncated")
        out = self.data[self.pos : self.pos + size]
        self.pos += size
        return out

    def point(self) -> Point:
        return _decode_point(self.take(g1.POINT_BYTES))

    def scalar(self) -> int:
        try:
            return g1.decode_scalar(self.take(g1.SCALAR_BYTES))
        except g1.MalformedElement as exc:
            raise MalformedNormProof(str(exc)) from None

    def ipa(self, rounds: int, stop: int) -> ipa.InnerProductProof:
        left = tuple(self.point() for _ in range(rounds))
        right = tuple(self.point() for _ in range(rounds))
        a = tuple(self.scalar() for _ in range(stop))
        b = tuple(self.scalar() for _ in range(stop))
        return ipa.InnerProductProof(left, right, a, b)


def _encode_ipa(p: ipa.InnerProductProof) -> bytes:
    return b"".join(g1.encode_point(v) for v in (*p.left, *p.right)) + b"".join(
        g1.encode_scalar(v) for v in (*p.a, *p.b)
    )


def _encode(p: _Proof) -> bytes:
    ep = g1.encode_point
    es = g1.encode_scalar
    r = p.range
    return b"".join(
        [
            bytes([VERSION]),
            ep(p.v), ep(p.m), ep(p.s),
            b"".join(zv.to_bytes(Z_BYTES, "big") for zv in p.z),
            ep(p.t1), ep(p.t2), es(p.tau), es(p.mu), es(p.t_hat),
            _encode_ipa(p.ipa),
            ep(r.a), ep(r.s), ep(r.t1), ep(r.t2), es(r.tau), es(r.mu), es(r.t_hat),
            _encode_ipa(r.ipa),
        ]
    )  # fmt: skip


def _decode(data: bytes, params: NormParams) -> _Proof:
    if not isinstance(data, bytes | bytearray):
        raise MalformedNormProof("a proof is bytes")
    data = bytes(data)
    if len(data) != proof_size(params):
        raise MalformedNormProof(
            f"a v{VERSION} proof of dimension {params.dim} is {proof_size(params)} bytes, "
            f"got {len(data)}"
        )
    rd = _Reader(data)
    if rd.take(1)[0] != VERSION:
        raise MalformedNormProof("unknown proof version")
    v, m, s = rd.point(), rd.point(), rd.point()
    zs = tuple(int.from_bytes(rd.take(Z_BYTES), "big") for _ in range(ROWS))
    t1, t2 = rd.point(), rd.point()
    tau, mu, t_hat = rd.scalar(), rd.scalar(), rd.scalar()
    main = rd.ipa(params.ipa_rounds, params.ipa_stop)
    ra, rs, rt1, rt2 = rd.point(), rd.point(), rd.point(), rd.point()
    rtau, rmu, rthat = rd.scalar(), rd.scalar(), rd.scalar()
    rproof = rd.ipa(RANGE_BITS.bit_length() - 1, 1)
    return _Proof(
        v, m, s, zs, t1, t2, tau, mu, t_hat, main,
        _RangeProof(ra, rs, rt1, rt2, rtau, rmu, rthat, rproof),
    )  # fmt: skip
