"""L∞-bound proofs (chainml.crypto.zk.prove_linf / verify_linf) on the norm proof's
commitment: an honest vector verifies, one coordinate out of range is refused, a proof for
another vector, context or bound is refused, forged or truncated proofs get typed errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from chainml.crypto import zk
from chainml.crypto.hazmat.bls12_381 import ORDER
from chainml.crypto.zk import _linf, _norm
from tests.zk import make_zk_linf_vectors

CTX = zk.NormContext(31337, "0x" + "ab" * 20, 7, 3, 0, "0x" + "cd" * 20)
DIM = 24
BOUND = 1000
PARAMS = zk.LinfParams(DIM, BOUND)


def _vector(seed: int, bound: int = BOUND, dim: int = DIM) -> list[int]:
    x = [int(v) for v in np.random.default_rng(seed).integers(-bound, bound + 1, size=dim)]
    x[0], x[1] = bound, -bound  # both ends of the range are allowed
    return x


@pytest.fixture(scope="module")
def honest() -> tuple[list[int], bytes, zk.CommitmentOpening, bytes]:
    x = _vector(1)
    c, opening = zk.commit(x)
    return x, c, opening, zk.prove_linf(CTX, PARAMS, x, opening)


def test_an_honest_vector_verifies_and_the_proof_has_the_specified_size(honest):
    _, c, _, proof = honest
    zk.verify_linf(CTX, PARAMS, c, proof)
    assert len(proof) == zk.linf_proof_size(PARAMS)


def test_the_same_commitment_carries_both_proofs(honest):
    x, c, opening, _ = honest
    norm = zk.NormParams(DIM, sum(v * v for v in x))
    zk.verify_norm(CTX, norm, c, zk.prove_norm(CTX, norm, x, opening))


@pytest.mark.parametrize("bound", [1, 2, 3, 7, 8, 1000, (1 << 31) - 1])
def test_bit_weights_reach_exactly_zero_to_twice_the_bound(bound):
    params = zk.LinfParams(3, bound)
    omega = params.weights
    assert sum(omega) == 2 * bound and all(w >= 1 for w in omega)
    for v in (-bound, -bound + 1, -1, 0, 1, bound - 1, bound):
        bits = _linf._decompose(params, [v])
        assert (
            set(bits) <= {0, 1}
            and sum(w * b for w, b in zip(omega, bits, strict=True)) == v + bound
        )
    for bound_ in (1, 2, 3, 5):  # exhaustively: the sums of subsets are [0, 2b]
        p = zk.LinfParams(1, bound_)
        sums = {sum(w for w, b in zip(p.weights, f"{m:0{p.bits}b}", strict=True) if b == "1")
                for m in range(1 << p.bits)}  # fmt: skip
        assert sums == set(range(2 * bound_ + 1))


def test_the_honest_prover_refuses_a_coordinate_out_of_range():
    x = _vector(2)
    x[5] = BOUND + 1
    _, opening = zk.commit(x)
    with pytest.raises(zk.NormBoundExceeded):
        zk.prove_linf(CTX, PARAMS, x, opening)


@pytest.mark.parametrize("value", [BOUND + 1, -BOUND - 1, 10 * BOUND, (1 << 31) - 1])
def test_one_coordinate_out_of_range_is_refused_by_the_verifier(value):
    x = _vector(3)
    x[7] = value
    c, opening = zk.commit(x)
    forged = _linf._encode(_linf._prove(CTX, PARAMS, x, opening.blinding, _norm._SYSTEM))
    with pytest.raises(zk.InvalidNormProof) as info:
        zk.verify_linf(CTX, PARAMS, c, forged)
    assert not isinstance(info.value, zk.MalformedNormProof)


def test_bits_that_sum_right_but_are_not_bits_are_refused():
    # x_7 = b + 1 needs x_7 + b = 2b + 1, which no bits reach (their sums are [0, 2b]):
    # a cheater writes 2b (all ones) and turns the weight-1 "bit" into a 2
    x = _vector(4)
    x[7] = BOUND + 1
    c, opening = zk.commit(x)
    k = PARAMS.bits
    bits = _linf._decompose(PARAMS, [min(v, BOUND) for v in x])
    assert bits[7 * k : 8 * k] == [1] * k
    bits[7 * k] = 2
    assert (
        sum(w * b for w, b in zip(PARAMS.weights, bits[7 * k : 8 * k], strict=True)) == x[7] + BOUND
    )
    cheat = _linf._prove(CTX, PARAMS, x, opening.blinding, _norm._SYSTEM, bits=bits)
    with pytest.raises(zk.InvalidNormProof):
        zk.verify_linf(CTX, PARAMS, c, _linf._encode(cheat))


@pytest.mark.parametrize(
    "field, value",
    [("job_id", 8), ("round", 4), ("attempt", 1), ("trainer", "0x" + "ce" * 20), ("chain_id", 1)],
)
def test_a_proof_for_another_context_is_refused(honest, field, value):
    _, c, _, proof = honest
    other = zk.NormContext(**{**CTX.__dict__, field: value})
    with pytest.raises(zk.InvalidNormProof):
        zk.verify_linf(other, PARAMS, c, proof)


def test_a_proof_for_another_vector_or_bound_is_refused(honest):
    _, c, _, proof = honest
    c2, _ = zk.commit(_vector(5))
    with pytest.raises(zk.InvalidNormProof):
        zk.verify_linf(CTX, PARAMS, c2, proof)
    # a bound with the same number of bits: same length, another statement
    with pytest.raises(zk.InvalidNormProof) as info:
        zk.verify_linf(CTX, zk.LinfParams(DIM, BOUND + 1), c, proof)
    assert not isinstance(info.value, zk.MalformedNormProof)


def test_forged_truncated_and_foreign_proofs_get_typed_errors(honest):
    _, c, _, proof = honest
    for bad in (proof[:-1], proof + b"\0", b"", proof[:100], bytes(len(proof))):
        with pytest.raises(zk.MalformedNormProof):
            zk.verify_linf(CTX, PARAMS, c, bad)
    with pytest.raises(zk.MalformedNormProof):  # a bound with another bit count
        zk.verify_linf(CTX, zk.LinfParams(DIM, 4 * BOUND), c, proof)
    with pytest.raises(zk.MalformedNormProof):
        zk.verify_linf(CTX, PARAMS, b"\x01" * 48, proof)
    high = bytearray(proof)
    high[1 + 5 * 48 : 1 + 5 * 48 + 32] = ORDER.to_bytes(32, "big")  # τ not reduced
    with pytest.raises(zk.MalformedNormProof):
        zk.verify_linf(CTX, PARAMS, c, bytes(high))
    rng = np.random.default_rng(9)
    for pos in [0, 1, 60, 250, len(proof) - 1, *rng.integers(0, len(proof), 8).tolist()]:
        flipped = bytearray(proof)
        flipped[pos] ^= 1 << int(rng.integers(0, 8))
        with pytest.raises(zk.InvalidNormProof):
            zk.verify_linf(CTX, PARAMS, c, bytes(flipped))


def test_bad_parameters_are_refused():
    for dim, bound in ((0, 5), (3, 0), (3, 1 << 31), (1 << 20, 1 << 30)):
        with pytest.raises(ValueError):
            zk.LinfParams(dim, bound)
    _, opening = zk.commit([1, 2, 3])
    with pytest.raises(ValueError):
        zk.prove_linf(CTX, PARAMS, [1, 2, 3], opening)


LINF_VECTORS = json.loads(Path(make_zk_linf_vectors.PATH).read_text())


@pytest.mark.parametrize("case", LINF_VECTORS["proofs"], ids=lambda c: c["name"])
def test_linf_vectors(case):
    ctx = zk.NormContext(**case["context"])
    params = zk.LinfParams(case["dim"], case["bound"])
    commitment = bytes.fromhex(case["commitment"])
    proof = bytes.fromhex(case["proof"])
    if case["expect"] == "valid":
        zk.verify_linf(ctx, params, commitment, proof)
        assert len(proof) == zk.linf_proof_size(params)
    elif case["expect"] == "malformed":
        with pytest.raises(zk.MalformedNormProof):
            zk.verify_linf(ctx, params, commitment, proof)
    else:
        with pytest.raises(zk.InvalidNormProof) as info:
            zk.verify_linf(ctx, params, commitment, proof)
        assert not isinstance(info.value, zk.MalformedNormProof)


def test_the_linf_vector_file_is_what_the_generator_writes():
    assert make_zk_linf_vectors.build() == LINF_VECTORS


def test_a_vector_hidden_in_c_and_cancelled_in_a_is_refused(monkeypatch):
    # C commits a vector far out of range; A carries (small - big) on the same generators,
    # so C + A opens to a small vector.  The verifier checks φ·C + A with φ drawn after A:
    # the cancellation fails.  With φ forced to 1 the same attack verifies, which is why
    # the protocol has φ (spec §11.5, 4.).
    small = _vector(6)
    big = [v + 50 * BOUND for v in small]
    c_big, opening = zk.commit(big)
    shift = [s - b for s, b in zip(small, big, strict=True)]

    def attack() -> bytes:
        proof = _linf._prove(CTX, PARAMS, small, opening.blinding, _norm._SYSTEM, c_big,
                             shift=shift)  # fmt: skip
        return _linf._encode(proof)

    with pytest.raises(zk.InvalidNormProof):
        zk.verify_linf(CTX, PARAMS, c_big, attack())

    class PhiIsOne(_linf.Transcript):
        def challenge(self, label: bytes) -> int:
            value = super().challenge(label)
            return 1 if label == b"phi" else value

    monkeypatch.setattr(_linf, "Transcript", PhiIsOne)
    zk.verify_linf(CTX, PARAMS, c_big, attack())  # without φ the attack would pass
