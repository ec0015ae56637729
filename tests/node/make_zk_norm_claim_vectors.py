"""Writes docs/protocol/vectors/zk-norm-claim-v2.json: one norm claim (zk-norm.md §12.2)
for a fixed context and statement, its canonical bytes and fields, and refused spellings
of it.  ``python -m tests.node.make_zk_norm_claim_vectors``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chainml.crypto import zk
from chainml.training import normproofs
from chainml.training.normproofs import NormClaim

OUT = Path(__file__).resolve().parents[2] / "docs/protocol/vectors/zk-norm-claim-v2.json"
CONTEXT = {
    "chain_id": 31337,
    "jobs_contract": "0x5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f5f",
    "job_id": 7,
    "round": 2,
    "attempt": 1,
    "trainer": "0xa1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1",
}
X, BOUND_SQ, SENDER, DATASET, RECORDS = [30, -40, 50], 10_000, 3, 12, 750
LINF_BOUND = 64  # the L-infinity claim's statement: every |x_j| <= 64 (§14)


def _spelt(doc: dict[str, Any], *, sort: bool = True, sep: tuple[str, str] = (",", ":")) -> str:
    return json.dumps(doc, sort_keys=sort, separators=sep)


def main() -> None:
    commitment, opening = zk.commit(X)
    params = zk.NormParams(len(X), BOUND_SQ)
    proof = zk.prove_norm(zk.NormContext(**CONTEXT), params, X, opening)
    claim = NormClaim(SENDER, DATASET, RECORDS, commitment, proof)
    # the refused spellings carry the proof's first 16 bytes only (the decoder does not
    # judge the proof's length: that claim, well spelt, decodes and the verifier refuses it)
    short = NormClaim(SENDER, DATASET, RECORDS, commitment, proof[:16])
    doc = json.loads(short.encode())
    refused = {
        "spaces after separators": _spelt(doc, sep=(", ", ": ")),
        "keys out of order": json.dumps(dict(reversed(doc.items())), separators=(",", ":")),
        "another format (v1, no weight)": _spelt({**doc, "format": "chainml-norm-claim/1"}),
        "sender a string": _spelt({**doc, "sender": str(SENDER)}),
        "sender 0": _spelt({**doc, "sender": 0}),
        "sender true": _spelt({**doc, "sender": True}),
        "dataset 0": _spelt({**doc, "dataset": 0}),
        "records a string": _spelt({**doc, "records": str(RECORDS)}),
        "records 0": _spelt({**doc, "records": 0}),
        "records 2^256": _spelt({**doc, "records": 1 << 256}),
        "an empty linf": _spelt({**doc, "linf": ""}),
        "linf not hex": _spelt({**doc, "linf": "zz"}),
        "upper-case hex": _spelt({**doc, "commitment": doc["commitment"].upper()}),
        "a 47-byte commitment": _spelt({**doc, "commitment": doc["commitment"][:-2]}),
        "an empty proof": _spelt({**doc, "proof": ""}),
        "an odd-length proof": _spelt({**doc, "proof": doc["proof"][:-1]}),
        "a field more": _spelt({**doc, "signature": ""}),
        "a field less": _spelt({k: v for k, v in doc.items() if k != "sender"}),
    }
    # a claim's weight, its grid value and its statement's bound (§13), for a job with
    # clip_bound 2,000 (clip 2.0) and weight_base 1,000, at the round's fraction bits f
    weights = [
        {
            "clip": 2.0,
            "weight_base": 1000,
            "records": records,
            "frac_bits": f,
            "dim": 481,
            "weighted_clip": normproofs.weighted_clip(2.0, records, 1000),
            "grid_weight": (min(records, 1000) << f) // 1000,
            "bound_sq": zk.bound_sq_for(normproofs.weighted_clip(2.0, records, 1000), f, 481),
        }
        for records, f in ((750, 20), (1, 20), (1000, 16), (5000, 16), (333, 18))
    ]
    linf = zk.prove_linf(zk.NormContext(**CONTEXT), zk.LinfParams(len(X), LINF_BOUND), X, opening)
    with_linf = NormClaim(SENDER, DATASET, RECORDS, commitment, proof, linf)
    vectors = {
        "format": "chainml-norm-claim/2",
        "note": "the proof is one of zk-norm.md section 6 as of writing (proofs have their own"
        " vectors); the refused spellings carry a 16-byte prefix of it",
        "context": CONTEXT,
        "statement": {"dim": len(X), "bound_sq": BOUND_SQ},
        "claim": claim.encode().decode(),
        "fields": {
            "sender": SENDER,
            "dataset": DATASET,
            "records": RECORDS,
            "commitment": commitment.hex(),
            "proof_bytes": len(proof),
        },
        "truncated": {"claim": short.encode().decode(), "error": "MalformedNormProof"},
        "weights": weights,
        "linf": {
            "claim": with_linf.encode().decode(),
            "statement": {"dim": len(X), "bound": LINF_BOUND},
            "linf_bytes": len(linf),
        },
        "refused": [
            {"name": name, "claim": text, "error": "ProtocolViolation"}
            for name, text in refused.items()
        ],
    }
    OUT.write_text(json.dumps(vectors, indent=1) + "\n")


if __name__ == "__main__":
    main()
