"""Write docs/protocol/vectors/zk-norm-v3.json (``python -m tests.zk.make_zk_norm_vectors``).

Deterministic: the commitment blinding and the prover's randomness come from
``random.Random(seed)`` so chainml regenerates the same bytes; another implementation only
needs to verify them.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from chainml.crypto import zk
from chainml.crypto.hazmat import bls12_381 as g1
from chainml.crypto.zk import _norm

PATH = Path(__file__).resolve().parents[2] / "docs/protocol/vectors/zk-norm-v3.json"
CTX = {
    "chain_id": 31337,
    "jobs_contract": "0x" + "5f" * 20,
    "job_id": 7,
    "round": 2,
    "attempt": 1,
    "trainer": "0x" + "a1" * 20,
}


class SeededRng:
    def __init__(self, seed: int) -> None:
        self._r = random.Random(seed)

    def randbelow(self, n: int) -> int:
        return self._r.randrange(n)


def _proof(ctx: dict, dim: int, bound_sq: int, x: list[int], seed: int, *, check: bool = True):
    rng = SeededRng(seed)
    commitment, opening = zk.commit(x, rng=rng)
    params = zk.NormParams(dim, bound_sq)
    nctx = zk.NormContext(**ctx)
    if check:
        proof = zk.prove_norm(nctx, params, x, opening, rng=rng)
    else:  # a cheating prover: the protocol run on a false statement
        proof = _norm._encode(_norm._prove(nctx, params, x, opening.blinding, rng))
    return commitment, opening, proof


def build() -> dict:
    g = _norm._gens(256)
    out: dict = {
        "version": _norm.VERSION,
        "dst": _norm.GEN_DST.decode(),
        "transcript_dst": _norm.DST.decode(),
        "generators": {
            "G0": g1.encode_point(g.g[0]).hex(),
            "G1": g1.encode_point(g.g[1]).hex(),
            "H0_of_H": g1.encode_point(g.h[0]).hex(),
            "H0": g1.encode_point(g.h0).hex(),
            "U": g1.encode_point(g.u).hex(),
            "Q": g1.encode_point(g.q).hex(),
            "RG0": g1.encode_point(g.rg[0]).hex(),
            "RH0": g1.encode_point(g.rh[0]).hex(),
        },
        "proofs": [],
        "aggregates": [],
    }
    cases = [
        ("honest, n = 3", CTX, 3, 10_000, [30, -40, 50], 1, True, "valid"),
        ("honest, norm exactly at the bound", CTX, 4, 100, [5, -5, 5, -5], 2, True, "valid"),
        ("honest, zero vector, bound 0", CTX, 2, 0, [0, 0], 3, True, "valid"),
        ("10x the bound (cheating prover)", CTX, 3, 10_000, [300, -400, 500], 4, False, "invalid"),
        ("one over the bound (cheating prover)", CTX, 4, 99, [5, -5, 5, -5], 5, False, "invalid"),
    ]
    for name, ctx, dim, bsq, x, seed, check, expect in cases:
        commitment, opening, proof = _proof(ctx, dim, bsq, x, seed, check=check)
        out["proofs"].append(
            {
                "name": name,
                "context": ctx,
                "dim": dim,
                "bound_sq": bsq,
                "x": x,
                "seed": seed,
                "blinding": hex(opening.blinding),
                "commitment": commitment.hex(),
                "proof": proof.hex(),
                "expect": expect,
            }
        )
    # the first honest proof, presented under another context, another vector, mangled
    base = out["proofs"][0]
    other_ctx = {**CTX, "round": 3}
    out["proofs"].append({**base, "name": "another round", "context": other_ctx,
                          "seed": None, "expect": "invalid"})  # fmt: skip
    out["proofs"].append({**base, "name": "another job", "context": {**CTX, "job_id": 8},
                          "seed": None, "expect": "invalid"})  # fmt: skip
    other_c, _, _ = _proof(CTX, 3, 10_000, [31, -40, 50], 6)
    out["proofs"].append({**base, "name": "another vector", "commitment": other_c.hex(),
                          "seed": None, "expect": "invalid"})  # fmt: skip
    out["proofs"].append({**base, "name": "truncated", "proof": base["proof"][:-2],
                          "seed": None, "expect": "malformed"})  # fmt: skip
    bad = bytearray.fromhex(base["proof"])
    tau_at = 1 + 48 * 3 + 16 * 128 + 48 * 2  # V, M, S, the projections, T1, T2, then τ
    bad[tau_at + 5] ^= 0xFF  # inside τ
    out["proofs"].append({**base, "name": "a flipped byte", "proof": bytes(bad).hex(),
                          "seed": None, "expect": "invalid"})  # fmt: skip
    high = bytearray.fromhex(base["proof"])
    high[tau_at : tau_at + 32] = b"\xff" * 32  # a scalar >= r
    out["proofs"].append({**base, "name": "a scalar not reduced", "proof": bytes(high).hex(),
                          "seed": None, "expect": "malformed"})  # fmt: skip

    xs = [[3, -1, 4], [-1, 5, -9], [2, 6, -5]]
    rng = SeededRng(100)
    commits = [zk.commit(x, rng=rng) for x in xs]
    total = [sum(col) for col in zip(*xs, strict=True)]
    r_sum = sum(o.blinding for _, o in commits) % _norm.ORDER
    limb_words = [sum(col) for col in zip(*(o.limbs() for _, o in commits), strict=True)]
    agg = {"commitments": [c.hex() for c, _ in commits], "blinding_limb_sums": limb_words,
           "blinding_sum": hex(r_sum)}  # fmt: skip
    out["aggregates"].append({**agg, "name": "the true sum", "total": total, "expect": "valid"})
    out["aggregates"].append({**agg, "name": "one coordinate off",
                              "total": [total[0] + 1, *total[1:]], "expect": "mismatch"})  # fmt: skip
    return out


if __name__ == "__main__":
    PATH.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {PATH}")
