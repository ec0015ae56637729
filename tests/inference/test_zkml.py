"""Proofs of plain inference (chainml.inference.zkml): an honest proof verifies against the
committed bundle and the client's own row; a proof of another model, another row or
another output does not; malformed proofs, answers and bundles get typed errors."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest

from chainml.inference import zkml
from chainml.inference.zkml import (
    BundleMismatch,
    InvalidProof,
    MalformedBundle,
    MalformedProof,
    UnsupportedModel,
    ZkBundle,
    ZkProver,
    ZkVerifier,
)
from chainml.training.models import MLP

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def honest(zk_digits, digits):
    """One honest proof: (row, outputs, proof)."""
    row = digits.x_test[0]
    return (row, *zk_digits[1].prove(row))


def test_an_honest_proof_verifies_and_gives_the_model_s_logits(zk_digits, honest, x2_mlp):
    bundle, _ = zk_digits
    assert (bundle.n_inputs, bundle.n_outputs, bundle.logrows) == (64, 10, 12)
    verifier = ZkVerifier(ZkBundle.decode(bundle.encode()))  # the client's copy, decoded
    row, outputs, proof = honest
    assert len(proof) == bundle.proof_len
    logits = verifier.verify(row, outputs, proof)
    expected = x2_mlp.logits(row[None])[0]
    assert logits.argmax() == expected.argmax()
    assert np.abs(logits - expected).max() < 0.25  # fixed point at 2^-8


def test_another_model_s_valid_proof_fails_under_the_committed_bundle(
    zk_digits, zk_other, other_model, x2_mlp, digits
):
    committed, _ = zk_digits
    other_bundle, other_prover = zk_other
    assert other_bundle.vk != committed.vk  # the weights are in the verifying key
    row = digits.x_test[3]
    outputs, proof = other_prover.prove(row)
    ZkVerifier(other_bundle).verify(row, outputs, proof)  # a valid proof, of that model
    with pytest.raises(InvalidProof):
        ZkVerifier(committed).verify(row, outputs, proof)


def test_a_proof_binds_the_row_and_the_output(zk_digits, honest, digits):
    bundle, _ = zk_digits
    verifier = ZkVerifier(bundle)
    row, outputs, proof = honest
    other_row = digits.x_test[6]
    with pytest.raises(InvalidProof):
        verifier.verify(other_row, outputs, proof)  # the answer to another input
    shifted = outputs.copy()
    shifted[int(np.argmin(shifted))] += 5000  # a different winning class
    with pytest.raises(InvalidProof):
        verifier.verify(row, shifted, proof)
    flipped = bytearray(proof)
    flipped[200] ^= 0x01
    with pytest.raises(InvalidProof):
        verifier.verify(row, outputs, bytes(flipped))
    for bad in (proof[:-32], proof[:100], b"", proof + bytes(32)):
        with pytest.raises(MalformedProof):
            verifier.verify(row, outputs, bad)
    with pytest.raises(MalformedProof):
        verifier.verify(row, outputs.astype(np.float64), proof)
    with pytest.raises(MalformedProof):
        verifier.verify(row, outputs[:-1], proof)


def test_a_provider_with_other_weights_cannot_serve_the_bundle(zk_digits, other_model):
    bundle, _ = zk_digits
    with pytest.raises(BundleMismatch):
        ZkProver(bundle, other_model.params, "square")


def test_the_answer_on_the_wire_and_its_malformed_forms(zk_digits, honest):
    bundle, _ = zk_digits
    _, outputs, proof = honest
    blob = zkml.pack_answer(outputs[None], [proof])
    got, proofs = zkml.unpack_answer(blob, bundle, 1)
    assert np.array_equal(got[0], outputs) and proofs == [proof]
    bad = [
        b"garbage",
        blob[:-10],
        zkml.pack_answer(outputs[None], [proof[:-1]]),  # a proof one byte short
        zkml.pack_answer(np.stack([outputs, outputs]), [proof, proof]),  # two rows, not one
        zkml.pack_answer(outputs[None, :5], [proof]),
    ]
    for raw in bad:
        with pytest.raises(MalformedProof):
            zkml.unpack_answer(raw, bundle, 1)


def test_bundles_round_trip_and_malformed_ones_are_refused(zk_digits):
    bundle, _ = zk_digits
    raw = bundle.encode()
    assert raw[:5] == b"CMZK\x01" and ZkBundle.decode(raw) == bundle
    for bad in (raw[:8], raw[:-1], raw + b"\x00", b"CMZK\x02" + raw[5:], b"x" * 40):
        with pytest.raises(MalformedBundle):
            ZkBundle.decode(bad)
    settings = json.loads(bundle.settings)
    settings["run_args"]["input_visibility"] = "Private"  # the client could not bind its row
    with pytest.raises(MalformedBundle):
        ZkBundle(json.dumps(settings).encode(), bundle.vk, bundle.srs, bundle.proof_len)
    with pytest.raises(MalformedBundle):
        ZkBundle(b"{}", bundle.vk, bundle.srs, bundle.proof_len)
    assert isinstance(MalformedBundle("x"), ValueError)


def test_the_onnx_graph_is_a_function_of_the_weights(x2_mlp):
    one = zkml.model_onnx(x2_mlp.params, "square")
    assert one == zkml.model_onnx({k: v.copy() for k, v in x2_mlp.params.items()}, "square")
    assert one != zkml.model_onnx(x2_mlp.params, "relu")
    with pytest.raises(UnsupportedModel):
        zkml.model_onnx({"w0": np.ones((3, 2))}, "square")
    with pytest.raises(UnsupportedModel):
        zkml.model_onnx({**x2_mlp.params, "w1": np.ones((5, 10))}, "square")
    with pytest.raises(UnsupportedModel):
        zkml.model_onnx(x2_mlp.params, "tanh")


def test_field_elements_round_trip_signed():
    for v in (0, 1, -1, 2**40, -(2**40)):
        assert zkml.felt_value(zkml.felt(v)) == v
    assert zkml.felt(-1) == (zkml.FIELD - 1).to_bytes(32, "little").hex()
    with pytest.raises(MalformedProof):
        zkml.felt_value(zkml.FIELD.to_bytes(32, "little").hex())


def test_a_relu_mlp_proves_and_verifies_too(digits, zk_srs):
    """chainml's default activation: EZKL's relu gadget fits the default circuit size."""
    model = MLP(64, 10, (32,), activation="relu", seed=0)
    model.fit(digits.x_train, digits.y_train, epochs=3, lr=0.02, seed=0)
    bundle, prover = zkml.build_bundle(model.params, "relu", srs=zk_srs)
    with prover:
        row = digits.x_test[1]
        outputs, proof = prover.prove(row)
    logits = ZkVerifier(bundle).verify(row, outputs, proof)
    expected = model.logits(row[None])[0]
    assert logits.argmax() == expected.argmax() and np.abs(logits - expected).max() < 0.25


def test_proving_leaves_the_process_s_other_threads_running(zk_digits, digits):
    """EZKL holds the GIL while it proves (seconds); the prover runs it in a child process,
    so a provider node's API and workers go on meanwhile (in process, another thread got
    2 turns of 10 ms in a 4.7 s proof)."""
    import threading

    _, prover = zk_digits
    turns: list[float] = []
    done = threading.Event()

    def other() -> None:
        while not done.is_set():
            turns.append(time.perf_counter())
            time.sleep(0.01)

    thread = threading.Thread(target=other)
    thread.start()
    try:
        started = time.perf_counter()
        prover.prove(digits.x_test[2])
        ended = time.perf_counter()
    finally:
        done.set()
        thread.join()
    during = [t for t in turns if started < t < ended]
    assert len(during) >= 20, f"{len(during)} turns in {ended - started:.1f} s"
