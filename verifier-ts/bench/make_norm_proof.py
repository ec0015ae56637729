"""Write a norm-bound proof (zk-norm.md v3) of an n-coordinate vector for the TypeScript
verifier's timing (``bench/norm-verify.ts``), with chainml's own Python verification time
measured in the same run:

    .venv/bin/python verifier-ts/bench/make_norm_proof.py OUT.json [n] [count]

``count`` proofs (different trainers) of one statement, for a batch.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from chainml.crypto import zk


def main(out: str, n: int = 4810, count: int = 1) -> None:
    rng = np.random.default_rng(7)
    params = zk.NormParams(n, zk.bound_sq_for(2.0, 16, n))
    items = []
    for k in range(count):
        x = np.round(rng.normal(size=n) / np.sqrt(n) * 1.5 * 2**16).astype(np.int64)
        trainer = "0x" + f"{k + 1:02x}" * 20
        ctx = zk.NormContext(31337, "0x" + "5f" * 20, 7, 2, 1, trainer)
        commitment, opening = zk.commit(x)
        proof = zk.prove_norm(ctx, params, x, opening)
        items.append((ctx, commitment, proof))
    # chainml's own verifier in this process, generators already derived: CPU and wall time
    ctx, commitment, proof = items[0]
    cpu, wall = time.process_time(), time.perf_counter()
    zk.verify_norm(ctx, params, commitment, proof)
    py = {"cpu_s": time.process_time() - cpu, "wall_s": time.perf_counter() - wall}
    doc = {
        "dim": n,
        "bound_sq": params.bound_sq,
        "python_verify": py,
        "proofs": [
            {
                "context": {
                    "chain_id": c.chain_id,
                    "jobs_contract": c.jobs_contract,
                    "job_id": c.job_id,
                    "round": c.round,
                    "attempt": c.attempt,
                    "trainer": c.trainer,
                },
                "commitment": cm.hex(),
                "proof": p.hex(),
            }
            for c, cm, p in items
        ],
    }
    with open(out, "w") as f:
        json.dump(doc, f)
    print(json.dumps({"dim": n, "proof_bytes": len(proof), "python_verify": py}))


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:]))
