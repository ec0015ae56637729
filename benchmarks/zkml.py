"""Proofs of plain inference (EZKL, Halo2/KZG) for the digits MLP 64→32→10 with x², against
plain inference of the same model in the same run.

Measured: generating the SRS locally (2^12 points), building the bundle (settings, keys,
one self-check proof), proving and verifying one row at a time (p50), the sizes of the
proof, the verifying key, the proving key, the SRS and the whole bundle, and how far the
proven fixed-point logits are from the float model's.  Baseline: the float model's logits
for one row in numpy (what ``plain`` mode computes), and the client's cost to open a plain
answer; ratios are against the numpy row.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(quick: bool = False) -> dict[str, Any]:
    import numpy as np

    from chainml.inference import zkml
    from chainml.training.data import load
    from chainml.training.models import MLP

    rows = 3 if quick else 12
    data = load("digits", seed=0)
    model = MLP(64, 10, (32,), activation="square", seed=0)
    for epoch in range(30):
        model.fit(data.x_train, data.y_train, epochs=1, lr=0.02, seed=epoch)
    params = sum(v.size for v in model.params.values())
    x = data.x_test[:rows]

    numpy_row = []
    for _ in range(200):
        started = time.perf_counter()
        model.logits(x[:1])
        numpy_row.append(time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as tmp:
        cache = zkml.SrsCache(Path(tmp) / "srs")
        config = zkml.CircuitConfig()
        log(f"SRS 2^{config.logrows}")
        started = time.perf_counter()
        cache.path(config.logrows)
        srs_s = time.perf_counter() - started
        log("bundle")
        started = time.perf_counter()
        bundle, prover = zkml.build_bundle(model.params, "square", srs=cache, config=config)
        build_s = time.perf_counter() - started
        verifier = zkml.ZkVerifier(bundle)
        prove: list[float] = []
        verify: list[float] = []
        errors: list[float] = []
        agree = 0
        try:
            for row in x:
                log(f"prove row {len(prove) + 1}/{rows}")
                started = time.perf_counter()
                outputs, proof = prover.prove(row)
                prove.append(time.perf_counter() - started)
                started = time.perf_counter()
                logits = verifier.verify(row, outputs, proof)
                verify.append(time.perf_counter() - started)
                expected = model.logits(row[None])[0]
                errors.append(float(np.abs(logits - expected).max()))
                agree += int(logits.argmax() == expected.argmax())
            pk_bytes = prover.proving_key_size
            answer = zkml.pack_answer(outputs[None], [proof])
        finally:
            prover.close()

    base = statistics.median(numpy_row)
    prove_p50, verify_p50 = statistics.median(prove), statistics.median(verify)
    return {
        "baseline": "the float model's logits for one row in numpy (plain mode's work), same run",
        "model": "digits MLP 64-32-10, x^2",
        "parameters": int(params),
        "rows": rows,
        "logrows": bundle.logrows,
        "scale_bits": config.scale,
        "srs_generate_s": round(srs_s, 2),
        "bundle_build_s": round(build_s, 2),
        "prove_s_p50": round(prove_p50, 3),
        "verify_ms_p50": round(verify_p50 * 1e3, 2),
        "plain_numpy_row_ms_p50": round(base * 1e3, 4),
        "prove_vs_plain": round(prove_p50 / base),
        "verify_vs_plain": round(verify_p50 / base),
        "proof_bytes": bundle.proof_len,
        "answer_bytes_per_row": len(answer),
        "vk_bytes": len(bundle.vk),
        "pk_bytes": pk_bytes,
        "srs_bytes": len(bundle.srs),
        "bundle_bytes": len(bundle.encode()),
        "max_abs_logit_error": round(max(errors), 4),
        "argmax_agreement": f"{agree}/{rows}",
    }
