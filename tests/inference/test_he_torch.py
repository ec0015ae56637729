"""A PyTorch nn.Sequential compiled to a CKKS plan: the plan computes what the module
computes, encrypted within the stated bound, and layers a plan cannot hold are refused
typed.  Skipped only when the torch extra is absent (make test installs it)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from chainml.inference.he import HEClient, HEProvider, UnsupportedModel  # noqa: E402
from chainml.inference.torch_import import Poly, Square, compile_torch, describe  # noqa: E402
from chainml.training.models import RELU_POLY  # noqa: E402


def _net(act: nn.Module, deep: bool = True) -> nn.Module:
    torch.manual_seed(0)
    head = [nn.Linear(2 * 2 * 2, 8), Square(), nn.Linear(8, 4)] if deep else [nn.Linear(8, 4)]
    return nn.Sequential(
        nn.Conv2d(1, 2, 3, stride=2, padding=1),
        act,
        nn.Sequential(nn.AvgPool2d(2), nn.Dropout(0.1)),
        nn.Flatten(),
        *head,
    )


@pytest.mark.parametrize(
    ("act", "deep", "depth"),
    [(Square(), True, 5), (Poly(*RELU_POLY), True, 5), (Poly(0.0, 0.5, 0.2, 0.02), False, 4)],
    ids=["square", "relu_poly", "cubic"],
)
def test_a_sequential_compiles_to_what_it_computes(act, deep, depth):
    """Conv2d (padded, strided) → activation → AvgPool2d → Flatten → Linear (→ x² →
    Linear) on 8×8 images: the plan equals the module in float64 to rounding, and an
    encrypted query is within 1e-3 of it."""
    module = _net(act, deep).double()
    plan = compile_torch(module, (1, 8, 8), input_range=(0.0, 1.0))
    assert plan.depth == depth
    x = np.random.default_rng(0).uniform(0, 1, (6, 64))
    with torch.no_grad():
        want = module.eval()(torch.from_numpy(x).reshape(6, 1, 8, 8)).numpy()
    assert np.abs(plan.plaintext(x) - want).max() < 1e-9
    client = HEClient(plan)
    provider = HEProvider(plan, client.evaluation_keys())
    got = client.decrypt_query(provider.evaluate_query(client.encrypt_query(x[0])))
    assert np.abs(got - want[0]).max() < 1e-3


def test_the_module_keeps_its_training_mode():
    module = _net(Square())
    module.train()
    describe(module, (1, 8, 8))
    assert module.training


@pytest.mark.parametrize(
    ("layer", "match"),
    [
        (nn.ReLU(), "CKKS plans take"),
        (nn.Conv2d(3, 3, 1, groups=3), "groups"),
        (nn.Conv2d(3, 3, 1, dilation=2), "dilation"),
        (nn.Conv2d(3, 3, 1, padding="same"), "padding"),
        (nn.AvgPool2d(2, padding=1), "padding"),
        (nn.MaxPool2d(2), "CKKS plans take"),
    ],
)
def test_layers_a_plan_cannot_hold_are_refused_typed(layer, match):
    module = nn.Sequential(nn.Conv2d(1, 3, 3), layer, nn.Flatten(), nn.Linear(12, 2))
    with pytest.raises(UnsupportedModel, match=match):
        compile_torch(module, (1, 6, 6))


def test_a_shape_mismatch_is_refused_typed():
    module = nn.Sequential(nn.Conv2d(1, 2, 3), Square(), nn.Flatten(), nn.Linear(99, 2))
    with pytest.raises(UnsupportedModel, match="takes 99 inputs"):
        compile_torch(module, (1, 6, 6))


def test_not_a_module_is_refused_typed():
    with pytest.raises(UnsupportedModel):
        compile_torch({"weight": 1}, (4,))
