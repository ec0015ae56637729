"""Writes docs/protocol/vectors/zk-inference-v1.json (``python -m
tests.inference.make_zk_vectors``): a tiny MLP's bundle (with its SRS, so the vectors
verify offline), one row's public instances, its proven answer as it travels, a manifest
naming the bundle, and malformed proofs, answers and bundles with the error each must
get.  The SRS is random, so a second run writes other bytes: run it only when the format
changes on purpose."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from chainml.inference import zkml
from chainml.storage.sealed import Manifest
from chainml.storage.unixfs import cid_v1

OUT = Path(__file__).parents[2] / "docs" / "protocol" / "vectors" / "zk-inference-v1.json"

# 4 → 3 → 2 with x²; weights are multiples of 1/8, exact in float32 and in JSON
PARAMS = {
    "w0": [[0.5, -0.25, 0.0], [1.0, 0.5, 0.25], [0.25, -0.5, 0.75], [-1.0, 0.125, 0.5]],
    "b0": [0.0, 0.5, -0.5],
    "w1": [[1.0, -1.0], [0.5, 0.25], [-0.75, 1.0]],
    "b1": [0.0, 0.25],
}
CONFIG = zkml.CircuitConfig(scale=6, logrows=8, decomp_base=64, decomp_legs=3)
ROW = [0.25, 0.5, -0.75, 1.0]


def params() -> dict[str, np.ndarray]:
    return {k: np.array(v, dtype=np.float32) for k, v in PARAMS.items()}


def build() -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        cache = zkml.SrsCache(Path(tmp))
        bundle, prover = zkml.build_bundle(params(), "square", srs=cache, config=CONFIG)
        with prover:
            outputs, proof = prover.prove(np.array(ROW, dtype=np.float32))
    raw = bundle.encode()
    answer = zkml.pack_answer(outputs[None], [proof])
    manifest = Manifest(
        artifact_id="model-1",
        version=1,
        media_type="application/octet-stream",
        suite="AES-256-GCM",
        chunk_size=1 << 20,
        plaintext_length=1234,
        plaintext_commitment="11" * 32,
        key_commitment="22" * 32,
        salt="33" * 32,
        ciphertext_cid=cid_v1(b"ciphertext"),
        zk_bundle=cid_v1(raw),
    )
    flipped = bytearray(proof)
    flipped[200] ^= 0x01
    other_outputs = outputs.copy()
    other_outputs[0] += 1
    return {
        "format": "chainml/zkml/v1",
        "ezkl": zkml.EZKL_VERSION,
        "model": {"params": PARAMS, "activation": "square"},
        "config": CONFIG.__dict__,
        "bundle": {
            "hex": raw.hex(),
            "cid": cid_v1(raw),
            "digest": bundle.digest().hex(),
            "proof_len": bundle.proof_len,
            "n_inputs": bundle.n_inputs,
            "n_outputs": bundle.n_outputs,
            "input_scale": bundle.input_scale,
            "output_scale": bundle.output_scale,
            "logrows": bundle.logrows,
            "settings_len": len(bundle.settings),
            "vk_len": len(bundle.vk),
            "srs_len": len(bundle.srs),
        },
        "row": ROW,
        "input_felts": zkml.input_felts(np.array(ROW, dtype=np.float32), bundle.input_scale),
        "outputs": [int(v) for v in outputs],
        "output_felts": [zkml.felt(int(v)) for v in outputs],
        "logits": [float(v) * 2.0**-bundle.output_scale for v in outputs],
        "proof_hex": proof.hex(),
        "answer_hex": answer.hex(),
        "manifest": manifest.encode().decode(),
        "invalid": [
            {"name": "a bit flipped", "proof_hex": bytes(flipped).hex(), "error": "InvalidProof"},
            {
                "name": "the last 32 bytes cut",
                "proof_hex": proof[:-32].hex(),
                "error": "MalformedProof",
            },
            {
                "name": "32 zero bytes appended",
                "proof_hex": (proof + bytes(32)).hex(),
                "error": "MalformedProof",
            },
            {
                "name": "an output one step off",
                "proof_hex": proof.hex(),
                "outputs": [int(v) for v in other_outputs],
                "error": "InvalidProof",
            },
            {
                "name": "the row of another input",
                "proof_hex": proof.hex(),
                "row": [0.25, 0.5, -0.75, 0.5],
                "error": "InvalidProof",
            },
        ],
        # edits of the valid bundle's bytes: keep the first ``keep`` (all if absent), put
        # ``put`` at byte ``at``, then append ``append``
        "invalid_bundles": [
            {"name": "truncated", "keep": len(raw) - 1},
            {"name": "a byte after the SRS", "append": "00"},
            {"name": "version 2", "at": 4, "put": "02"},
            {"name": "proof size 0", "at": 5, "put": "00000000"},
            {"name": "settings length past the end", "at": 9, "put": "ffffffff"},
        ],
        "invalid_answers": [
            {"name": "not safetensors", "hex": b"not an answer".hex()},
            {
                "name": "a proof one byte short",
                "hex": zkml.pack_answer(outputs[None], [proof[:-1]]).hex(),
            },
            {"name": "outputs as int32", "hex": _int32_answer(outputs, proof).hex()},
        ],
    }


def _int32_answer(outputs: np.ndarray, proof: bytes) -> bytes:
    from safetensors.numpy import save

    table = np.frombuffer(proof, dtype=np.uint8).reshape(1, -1)
    return bytes(save({"outputs": outputs[None].astype(np.int32), "proofs": table}))


if __name__ == "__main__":
    OUT.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {OUT}")
