"""Norm-bound proofs (chainml.crypto.zk): honest proofs verify, false or foreign ones are
refused with typed errors, and the aggregate check ties the published sum to the commitments."""

from __future__ import annotations

import numpy as np
import pytest

from chainml.crypto import zk
from chainml.crypto.errors import CryptoError, InvalidProof
from chainml.crypto.hazmat import bls12_381 as g1
from chainml.crypto.zk import _norm

CTX = zk.NormContext(
    chain_id=31337,
    jobs_contract="0x" + "ab" * 20,
    job_id=7,
    round=3,
    attempt=0,
    trainer="0x" + "cd" * 20,
)
DIM = 40
BOUND = 1 << 16  # L2 bound in fixed-point units
PARAMS = zk.NormParams(DIM, BOUND * BOUND)


def _update(seed: int, norm: float, dim: int = DIM) -> list[int]:
    v = np.random.default_rng(seed).normal(size=dim)
    v = v / np.linalg.norm(v) * norm
    return [int(a) for a in np.trunc(v)]


@pytest.fixture(scope="module")
def honest() -> tuple[list[int], bytes, zk.CommitmentOpening, bytes]:
    x = _update(1, 0.9 * BOUND)
    c, opening = zk.commit(x)
    return x, c, opening, zk.prove_norm(CTX, PARAMS, x, opening)


def test_an_honest_proof_verifies_and_has_the_specified_size(honest):
    x, c, _, proof = honest
    zk.verify_norm(CTX, PARAMS, c, proof)
    assert len(proof) == zk.proof_size(PARAMS)


def test_the_honest_prover_refuses_a_vector_above_the_bound():
    x = _update(2, 10 * BOUND)
    _, opening = zk.commit(x)
    with pytest.raises(zk.NormBoundExceeded):
        zk.prove_norm(CTX, PARAMS, x, opening)


def test_an_update_ten_times_the_bound_is_refused_by_the_verifier():
    # a cheating prover runs the protocol without the statement check
    x = _update(3, 10 * BOUND)
    c, opening = zk.commit(x)
    forged = _norm._encode(_norm._prove(CTX, PARAMS, x, opening.blinding, _norm._SYSTEM))
    with pytest.raises(zk.InvalidNormProof):
        zk.verify_norm(CTX, PARAMS, c, forged)


def test_an_update_just_above_the_bound_is_refused():
    x = _update(4, 1.05 * BOUND)
    c, opening = zk.commit(x)
    forged = _norm._encode(_norm._prove(CTX, PARAMS, x, opening.blinding, _norm._SYSTEM))
    with pytest.raises(zk.InvalidNormProof):
        zk.verify_norm(CTX, PARAMS, c, forged)


@pytest.mark.parametrize(
    "field, value",
    [("job_id", 8), ("round", 4), ("attempt", 1), ("trainer", "0x" + "ce" * 20), ("chain_id", 1)],
)
def test_a_proof_for_another_context_is_refused(honest, field, value):
    _, c, _, proof = honest
    other = zk.NormContext(**{**CTX.__dict__, field: value})
    with pytest.raises(zk.InvalidNormProof):
        zk.verify_norm(other, PARAMS, c, proof)


def test_a_proof_for_another_vector_is_refused(honest):
    _, _, _, proof = honest
    c2, _ = zk.commit(_update(5, 0.5 * BOUND))
    with pytest.raises(zk.InvalidNormProof):
        zk.verify_norm(CTX, PARAMS, c2, proof)


def test_a_proof_under_another_bound_is_refused(honest):
    _, c, _, proof = honest
    with pytest.raises(zk.InvalidNormProof):
        zk.verify_norm(CTX, zk.NormParams(DIM, PARAMS.bound_sq + 1), c, proof)


def test_truncated_extended_and_garbage_proofs_get_typed_errors(honest):
    _, c, _, proof = honest
    for bad in (proof[:-1], proof + b"\0", b"", proof[:100], bytes(len(proof))):
        with pytest.raises(zk.MalformedNormProof):
            zk.verify_norm(CTX, PARAMS, c, bad)
    with pytest.raises(zk.MalformedNormProof):
        zk.verify_norm(CTX, PARAMS, b"\x01" * 48, proof)


def test_every_single_byte_flip_is_refused_with_a_typed_error(honest):
    _, c, _, proof = honest
    rng = np.random.default_rng(9)
    positions = [0, 1, 49, 200, 3000, len(proof) - 1, *rng.integers(0, len(proof), 12).tolist()]
    for pos in positions:
        bad = bytearray(proof)
        bad[pos] ^= 1 << int(rng.integers(0, 8))
        with pytest.raises(zk.InvalidNormProof) as info:
            zk.verify_norm(CTX, PARAMS, c, bytes(bad))
        assert isinstance(info.value, InvalidProof | CryptoError)


def test_the_aggregate_check_accepts_the_true_sum_and_refuses_another():
    xs = [_update(10 + i, 0.8 * BOUND) for i in range(3)]
    commits = [zk.commit(x) for x in xs]
    total = [sum(col) for col in zip(*xs, strict=True)]
    # the blinding sum arrives through secure aggregation as 16-bit limbs in 32-bit words
    words = [sum(col) % (1 << 32) for col in zip(*(o.limbs() for _, o in commits), strict=True)]
    r_sum = zk.blinding_from_limb_sums(words)
    cs = [c for c, _ in commits]
    zk.verify_aggregate(cs, total, r_sum)
    wrong = list(total)
    wrong[5] += 1
    with pytest.raises(zk.AggregateMismatch):
        zk.verify_aggregate(cs, wrong, r_sum)
    with pytest.raises(zk.AggregateMismatch):
        zk.verify_aggregate(cs[:2], total, r_sum)
    with pytest.raises(zk.AggregateMismatch):
        zk.verify_aggregate(cs, total, (r_sum + 1) % _norm.ORDER)


def test_bad_inputs_are_refused_before_any_work():
    for bad in ([1.5, 2.0], np.array([1.0, 2.0]), [], [1 << 31], [True, 1]):
        with pytest.raises(ValueError):
            zk.commit(bad)
    with pytest.raises(ValueError):
        zk.NormContext(**{**CTX.__dict__, "trainer": "0x1234"})
    with pytest.raises(ValueError):
        zk.NormParams(0, 1)
    with pytest.raises(ValueError):
        zk.NormParams(4, 1 << 62)
    _, opening = zk.commit([1, 2, 3])
    with pytest.raises(ValueError):
        zk.prove_norm(CTX, PARAMS, [1, 2, 3], opening)  # length is not params.dim
    assert "secret" in repr(opening) and str(opening.blinding) not in repr(opening)


def test_a_batch_names_exactly_the_proofs_that_fail(honest):
    _, c, _, proof = honest
    items = []
    for i in range(3):
        x = _update(20 + i, 0.7 * BOUND)
        ctx = zk.NormContext(**{**CTX.__dict__, "trainer": f"0x{i + 1:040x}"})
        ci, oi = zk.commit(x)
        items.append((ctx, ci, zk.prove_norm(ctx, PARAMS, x, oi)))
    assert zk.invalid_norm_proofs(PARAMS, items) == []
    wrong_round = zk.NormContext(**{**CTX.__dict__, "round": 9})
    batch = [items[0], (wrong_round, c, proof), items[1], (CTX, c, proof[:-3]), items[2]]
    assert zk.invalid_norm_proofs(PARAMS, batch) == [1, 3]
    assert zk.invalid_norm_proofs(PARAMS, [(CTX, c, proof), items[0]]) == []


@pytest.mark.parametrize("dim", [1, 3, 40, 4810, 100_000, 1 << 20])
def test_the_shape_pads_little_and_stays_small(dim):
    params = zk.NormParams(dim, 1)
    m = dim + _norm.ROWS
    k, stop = params.ipa_rounds, params.ipa_stop
    assert params.padded == stop << k >= m
    assert params.padded - m < 1 << k  # v1 padded to a power of two: up to m more
    assert 128 <= stop < 256
    if dim <= 4810:
        assert zk.proof_size(params) <= 16 * 1024


def test_signed_msm_is_the_plain_msm():
    pts = g1.generators(b"test/msm", b"P", 6)
    values = [5, -7, 0, (1 << 31) - 1, -(1 << 31), 1]
    assert g1.msm_signed(pts, values) == g1.msm(pts, values)
    assert g1.msm_signed([], []) == g1.identity()
