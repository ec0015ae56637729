"""Writes docs/protocol/vectors/he-plan-v1.json: models (two as parameters, one as a
layer description with a convolution) compiled by chainml with the plan shape each gives, and shapes a reader must refuse (``python -m
tests.inference.make_plan_vectors``).  Run only when the format changes on purpose."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chainml.inference.he import compile_model

OUT = Path(__file__).parents[2] / "docs" / "protocol" / "vectors" / "he-plan-v1.json"

MODELS: list[dict[str, Any]] = [
    {
        "name": "regression, default input range",
        "params": {"w": [[0.5, -0.25], [1.0, 0.0], [-0.5, 0.75]], "b": [0.125, -0.125]},
        "activation": None,
        "input_range": None,
    },
    {
        "name": "one hidden layer, x², given input range",
        "params": {
            "w0": [[0.5, -0.25, 0.0], [1.0, 0.5, 0.25]],
            "b0": [0.0, 0.5, -0.5],
            "w1": [[1.0, -1.0], [0.5, 0.25], [-0.75, 1.0]],
            "b1": [0.0, 0.25],
        },
        "activation": "square",
        "input_range": [[-1.0, 0.0], [1.0, 2.0]],
    },
]


def _conv_description() -> dict[str, Any]:
    """8×8 one-channel images: conv 3×3×3 (stride 1, unpadded) → ReLU's degree-2 fit →
    2×2 average pool → dense to 4 classes; weights are multiples of 1/16 (exact in JSON)."""
    kernel = [
        [[[((c + 3 * y + x) % 5 - 2) / 16 for x in range(3)] for y in range(3)]] for c in range(3)
    ]
    dense = [[((u * 7 + k * 3) % 9 - 4) / 16 for k in range(4)] for u in range(27)]
    return {
        "input_shape": [1, 8, 8],
        "layers": [
            {"type": "conv2d", "weight": kernel, "bias": [0.0625, -0.125, 0.0], "stride": 1},
            {"type": "poly", "coeffs": [0.375, 0.5, 0.0625]},
            {"type": "avgpool2d", "kernel": 2, "stride": 2},
            {"type": "flatten"},
            {"type": "dense", "weight": dense, "bias": [0.0, 0.125, -0.125, 0.25]},
        ],
    }


# layer descriptions (chainml.inference.layers): compiled with input_range, no activation
DESCRIPTIONS: list[dict[str, Any]] = [
    {
        "name": "convolution, degree-2 activation, average pool, dense: the conv layout",
        "description": _conv_description(),
        "input_range": [0.0, 1.0],
    },
]

INVALID: list[tuple[str, dict[str, Any]]] = [
    ("ring degree not one of SEAL's", {"poly_degree": 8000}),
    ("modulus over the 128-bit bound", {"coeff_bits": [60, 60, 60, 60, 60]}),
    ("depth not matching the primes", {"depth": 4}),
    ("a block layout of depth 2", {"depth": 2}),
    ("a fused chain without its 60-bit prime", {"coeff_bits": [45, 36, 36, 60]}),
    ("depth as a string", {"depth": "3"}),
    ("regression as a number", {"regression": 0}),
    ("scale below 2^30", {"scale_bits": 20}),
    ("layout unknown", {"layout": "spiral"}),
    ("conv layout whose Q is above its period", {"layout": "conv", "block": 8}),
    ("period not a power of two", {"period": 3}),
    ("input range of the wrong length", {"input_low": [-1.0]}),
    ("low above high", {"input_low": [3.0, 0.0]}),
    ("negative bound", {"logit_bound": -1.0}),
    ("rotation outside the slots", {"rotations": [1, 99999]}),
    ("rotation listed twice", {"rotations": [1, 4, 4]}),
    ("more rotations than keys may upload", {"rotations": list(range(1, 200))}),
    ("field missing", {"n_features": None}),
    ("field added", {"weights": [1.0]}),
]


def build() -> dict[str, Any]:
    valid = []
    for m in MODELS:
        extra = {} if m["input_range"] is None else {"input_range": tuple(m["input_range"])}
        plan = compile_model(m["params"], m["activation"], **extra)
        valid.append({**m, "doc": plan.shape.to_doc()})
    for m in DESCRIPTIONS:
        plan = compile_model(m["description"], input_range=tuple(m["input_range"]))
        valid.append({**m, "doc": plan.shape.to_doc()})
    base = valid[1]["doc"]
    invalid = []
    for name, change in INVALID:
        doc = {k: v for k, v in {**base, **change}.items() if v is not None}
        invalid.append({"name": name, "doc": doc})
    return {"format": "chainml-he-plan/1", "valid": valid, "invalid": invalid}


if __name__ == "__main__":
    OUT.write_text(json.dumps(build(), indent=1) + "\n")
