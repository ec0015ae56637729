"""docs/protocol/zk-inference.md's vectors: the bundle decodes to the recorded fields and
CID, the row and outputs give the recorded public instances, the answer travels as the
recorded bytes, the proof verifies offline from the vector file alone, the weights give the
bundle's verifying key again, and every malformed proof, answer and bundle gets its
error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from chainml.inference import zkml
from chainml.inference.zkml import MalformedBundle, MalformedProof, ZkBundle, ZkVerifier
from chainml.storage.sealed import Manifest
from tests.inference.make_zk_vectors import PARAMS

pytestmark = pytest.mark.slow

V = json.loads(
    (Path(__file__).parents[2] / "docs/protocol/vectors/zk-inference-v1.json").read_text()
)
RAW = bytes.fromhex(V["bundle"]["hex"])


@pytest.fixture(scope="module")
def bundle() -> ZkBundle:
    return ZkBundle.decode(RAW)


def test_the_bundle_decodes_to_its_fields_and_its_cid(bundle):
    b = V["bundle"]
    got = {
        "proof_len": bundle.proof_len,
        "n_inputs": bundle.n_inputs,
        "n_outputs": bundle.n_outputs,
        "input_scale": bundle.input_scale,
        "output_scale": bundle.output_scale,
        "logrows": bundle.logrows,
        "settings_len": len(bundle.settings),
        "vk_len": len(bundle.vk),
        "srs_len": len(bundle.srs),
    }
    assert got == {k: b[k] for k in got}
    assert bundle.encode() == RAW and bundle.digest().hex() == b["digest"]
    assert zkml.content_matches(b["cid"], RAW)
    assert not zkml.content_matches(b["cid"], RAW[:-1])
    manifest = Manifest.decode(V["manifest"].encode())
    assert manifest.zk_bundle == b["cid"] and manifest.encode() == V["manifest"].encode()
    bare = Manifest(**{**manifest.__dict__, "zk_bundle": ""})
    assert b"zk_bundle" not in bare.encode()  # manifests without a bundle keep their bytes


def test_the_public_instances_and_the_answer_s_bytes(bundle):
    row = np.array(V["row"], dtype=np.float32)
    assert zkml.input_felts(row, bundle.input_scale) == V["input_felts"]
    assert [zkml.felt(v) for v in V["outputs"]] == V["output_felts"]
    outputs = np.array(V["outputs"], dtype=np.int64)
    proof = bytes.fromhex(V["proof_hex"])
    answer = bytes.fromhex(V["answer_hex"])
    assert zkml.pack_answer(outputs[None], [proof]) == answer
    got, proofs = zkml.unpack_answer(answer, bundle, 1)
    assert got.tolist() == [V["outputs"]] and proofs == [proof]


def test_the_proof_verifies_from_the_file_alone(bundle):
    logits = ZkVerifier(bundle).verify(
        np.array(V["row"], dtype=np.float32),
        np.array(V["outputs"], dtype=np.int64),
        bytes.fromhex(V["proof_hex"]),
    )
    assert logits.tolist() == V["logits"]


@pytest.mark.parametrize("case", V["invalid"], ids=lambda c: c["name"])
def test_each_bad_proof_gets_its_error(bundle, case):
    row = np.array(case.get("row", V["row"]), dtype=np.float32)
    outputs = np.array(case.get("outputs", V["outputs"]), dtype=np.int64)
    with pytest.raises(getattr(zkml, case["error"])):
        ZkVerifier(bundle).verify(row, outputs, bytes.fromhex(case["proof_hex"]))


@pytest.mark.parametrize("case", V["invalid_bundles"], ids=lambda c: c["name"])
def test_each_bad_bundle_is_refused(case):
    raw = bytearray(RAW[: case.get("keep", len(RAW))])
    if "at" in case:
        put = bytes.fromhex(case["put"])
        raw[case["at"] : case["at"] + len(put)] = put
    raw += bytes.fromhex(case.get("append", ""))
    with pytest.raises(MalformedBundle):
        ZkBundle.decode(bytes(raw))


@pytest.mark.parametrize("case", V["invalid_answers"], ids=lambda c: c["name"])
def test_each_bad_answer_is_refused(bundle, case):
    with pytest.raises(MalformedProof):
        zkml.unpack_answer(bytes.fromhex(case["hex"]), bundle, 1)


def test_the_weights_give_the_bundle_s_verifying_key_again(bundle):
    params = {k: np.array(v, dtype=np.float32) for k, v in PARAMS.items()}
    assert V["model"]["params"] == PARAMS
    with zkml.ZkProver(bundle, params, "square"):  # raises BundleMismatch otherwise
        pass
    params["b1"][1] = 0.375  # one weight changed: another verifying key
    with pytest.raises(zkml.BundleMismatch):
        zkml.ZkProver(bundle, params, "square")
