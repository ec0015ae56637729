"""docs/protocol/he-plan.md's vectors: chainml compiles each model to exactly the plan
shape recorded, reads it back unchanged, and refuses every invalid shape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chainml.inference.he import PlanShape, compile_model

VECTORS = json.loads(
    (Path(__file__).parents[2] / "docs/protocol/vectors/he-plan-v1.json").read_text()
)


@pytest.mark.parametrize("case", VECTORS["valid"], ids=lambda c: c["name"])
def test_each_model_compiles_to_the_recorded_shape(case):
    extra = {} if case["input_range"] is None else {"input_range": tuple(case["input_range"])}
    if "description" in case:  # a layer description names its own activations
        plan = compile_model(case["description"], **extra)
    else:
        plan = compile_model(case["params"], case["activation"], **extra)
    assert plan.shape.to_doc() == case["doc"]
    assert PlanShape.from_doc(case["doc"]) == plan.shape
    assert json.loads(json.dumps(plan.shape.to_doc())) == case["doc"]


@pytest.mark.parametrize("case", VECTORS["invalid"], ids=lambda c: c["name"])
def test_each_invalid_shape_is_refused(case):
    with pytest.raises(ValueError, match="not a plan shape"):
        PlanShape.from_doc(case["doc"])


def test_the_vectors_are_what_the_generator_writes():
    from tests.inference.make_plan_vectors import build

    assert build() == VECTORS
