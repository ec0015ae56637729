"""Write docs/protocol/vectors/zk-norm-linf-v1.json (``python -m tests.zk.make_zk_linf_vectors``).

The L∞ option of docs/protocol/zk-norm.md §11.  Deterministic like the norm vectors: the
commitment blinding and the prover's randomness come from ``random.Random(seed)``.
"""

from __future__ import annotations

import json
from pathlib import Path

from chainml.crypto import zk
from chainml.crypto.zk import _linf
from tests.zk.make_zk_norm_vectors import CTX, SeededRng

PATH = Path(__file__).resolve().parents[2] / "docs/protocol/vectors/zk-norm-linf-v1.json"
SCALARS_AT = 1 + 5 * 48  # offset of τ


def _proof(ctx: dict, dim: int, bound: int, x: list[int], seed: int, *, check: bool = True):
    rng = SeededRng(seed)
    commitment, opening = zk.commit(x, rng=rng)
    params = zk.LinfParams(dim, bound)
    nctx = zk.NormContext(**ctx)
    if check:
        proof = zk.prove_linf(nctx, params, x, opening, rng=rng)
    else:  # a cheating prover: the protocol run on a coordinate out of range
        proof = _linf._encode(_linf._prove(nctx, params, x, opening.blinding, rng))
    return commitment, opening, proof


def build() -> dict:
    out: dict = {
        "version": _linf.VERSION,
        "transcript_dst": _linf.DST.decode(),
        "generators": "those of zk-norm-v3.json (same DST, labels G, H, H0, U, Q)",
        "proofs": [],
    }
    cases = [
        ("honest, n = 3, b = 5, both ends", 3, 5, [5, -5, 0], 11, True, "valid"),
        ("honest, n = 4, b = 1", 4, 1, [1, 0, -1, 1], 12, True, "valid"),
        ("honest, n = 2, b = 1000", 2, 1000, [999, -1000], 13, True, "valid"),
        ("one coordinate b + 1 (cheating prover)", 3, 5, [6, -5, 0], 14, False, "invalid"),
        ("one coordinate -b - 1 (cheating prover)", 3, 5, [5, -6, 0], 15, False, "invalid"),
    ]
    for name, dim, bound, x, seed, check, expect in cases:
        commitment, opening, proof = _proof(CTX, dim, bound, x, seed, check=check)
        out["proofs"].append(
            {
                "name": name,
                "context": CTX,
                "dim": dim,
                "bound": bound,
                "x": x,
                "seed": seed,
                "blinding": hex(opening.blinding),
                "commitment": commitment.hex(),
                "proof": proof.hex(),
                "expect": expect,
            }
        )
    base = out["proofs"][0]
    out["proofs"].append({**base, "name": "another round", "context": {**CTX, "round": 3},
                          "seed": None, "expect": "invalid"})  # fmt: skip
    out["proofs"].append({**base, "name": "another trainer",
                          "context": {**CTX, "trainer": "0x" + "a2" * 20},
                          "seed": None, "expect": "invalid"})  # fmt: skip
    other_c, _, _ = _proof(CTX, 3, 5, [4, -5, 0], 16)
    out["proofs"].append({**base, "name": "another vector", "commitment": other_c.hex(),
                          "seed": None, "expect": "invalid"})  # fmt: skip
    out["proofs"].append({**base, "name": "another bound, same bit count", "bound": 6,
                          "seed": None, "expect": "invalid"})  # fmt: skip
    out["proofs"].append({**base, "name": "truncated", "proof": base["proof"][:-2],
                          "seed": None, "expect": "malformed"})  # fmt: skip
    bad = bytearray.fromhex(base["proof"])
    bad[SCALARS_AT + 7] ^= 0x10  # inside τ
    out["proofs"].append({**base, "name": "a flipped byte", "proof": bytes(bad).hex(),
                          "seed": None, "expect": "invalid"})  # fmt: skip
    high = bytearray.fromhex(base["proof"])
    high[SCALARS_AT : SCALARS_AT + 32] = b"\xff" * 32  # a scalar >= r
    out["proofs"].append({**base, "name": "a scalar not reduced", "proof": bytes(high).hex(),
                          "seed": None, "expect": "malformed"})  # fmt: skip
    wrong_version = bytearray.fromhex(base["proof"])
    wrong_version[0] = 2
    out["proofs"].append({**base, "name": "version 2", "proof": bytes(wrong_version).hex(),
                          "seed": None, "expect": "malformed"})  # fmt: skip
    return out


if __name__ == "__main__":
    PATH.write_text(json.dumps(build(), indent=1) + "\n")
    print(f"wrote {PATH}")
