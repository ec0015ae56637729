"""A PyTorch ``nn.Sequential`` as a CKKS plan (optional: ``pip install 'chainml[torch]'``).

``compile_torch(module, input_shape)`` reads the module's layers into a layer description
(``chainml.inference.layers``) and compiles it with ``he.compile_model``.  Supported, in
any order the shapes allow (nested ``Sequential`` too): ``nn.Linear``, ``nn.Conv2d``
(zero padding given as numbers, no dilation, no groups), ``nn.AvgPool2d`` (no padding,
no ``ceil_mode``, no ``divisor_override``), ``nn.Flatten`` (from dimension 1),
``nn.Identity`` and ``nn.Dropout`` (nothing at inference), and this module's ``Square``
(x²) and ``Poly`` (c0 + c1·x + c2·x² (+ c3·x³), e.g. a fitted ReLU or SiLU the network was trained
with).  Anything else — ``nn.ReLU`` included: CKKS evaluates polynomials only — is
refused with ``he.UnsupportedModel`` naming the layer.  The weights are read once, in
float64; the module is put in eval mode for the read and left as it was.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from chainml.inference.he import Plan, UnsupportedModel, compile_model

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - the extra is not installed
    raise UnsupportedModel(
        "compiling a PyTorch module needs: pip install 'chainml[torch]'"
    ) from exc


class Square(nn.Module):
    """x², the activation a CKKS plan evaluates at the cost of one level."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * x


class Poly(nn.Module):
    """c0 + c1·x + c2·x² (+ c3·x³) with fixed coefficients (ascending), e.g. the
    least-squares fit of ReLU on [-4, 4]: ``Poly(*chainml.training.models.RELU_POLY)``."""

    def __init__(self, *coeffs: float) -> None:
        super().__init__()
        if not 1 <= len(coeffs) <= 4:
            raise UnsupportedModel("Poly takes 1 to 4 coefficients (degree 3 at most)")
        self.coeffs = tuple(float(c) for c in coeffs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(x) + self.coeffs[-1]
        for c in reversed(self.coeffs[:-1]):
            out = out * x + c
        return out


def _leaves(module: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(module, nn.Sequential):
        for name, child in module.named_children():
            for sub, leaf in _leaves(child):
                yield (f"{name}.{sub}" if sub else name), leaf
    else:
        yield "", module


def _numpy(t: Any) -> np.ndarray[Any, np.dtype[np.float64]] | None:
    return None if t is None else t.detach().cpu().to(torch.float64).numpy()


def _ints(value: Any, what: str) -> list[int]:
    pair = [value, value] if isinstance(value, int) else list(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise UnsupportedModel(f"{what} must be numbers, not {value!r}")
    return pair


def _layer(name: str, m: Any) -> dict[str, Any] | None:
    what = f"layer {name or '0'} ({type(m).__name__})"
    if isinstance(m, nn.Linear):
        weight = _numpy(m.weight)
        assert weight is not None
        return {"type": "dense", "weight": weight.T, "bias": _numpy(m.bias)}
    if isinstance(m, nn.Conv2d):
        if m.groups != 1 or tuple(m.dilation) != (1, 1) or m.padding_mode != "zeros":
            raise UnsupportedModel(f"{what}: groups, dilation and non-zero padding modes")
        if isinstance(m.padding, str):
            raise UnsupportedModel(f"{what}: padding {m.padding!r}; give it as numbers")
        return {
            "type": "conv2d",
            "weight": _numpy(m.weight),
            "bias": _numpy(m.bias),
            "stride": _ints(m.stride, f"{what}'s stride"),
            "padding": _ints(m.padding, f"{what}'s padding"),
        }
    if isinstance(m, nn.AvgPool2d):
        if m.padding not in (0, (0, 0)) or m.ceil_mode or m.divisor_override is not None:
            raise UnsupportedModel(f"{what}: padding, ceil_mode and divisor_override")
        stride = m.stride if m.stride is not None else m.kernel_size
        return {
            "type": "avgpool2d",
            "kernel": _ints(m.kernel_size, f"{what}'s kernel"),
            "stride": _ints(stride, f"{what}'s stride"),
        }
    if isinstance(m, nn.Flatten):
        if m.start_dim != 1 or m.end_dim != -1:
            raise UnsupportedModel(f"{what}: only flattening from dimension 1")
        return {"type": "flatten"}
    if isinstance(m, Square):
        return {"type": "square"}
    if isinstance(m, Poly):
        return {"type": "poly", "coeffs": list(m.coeffs)}
    if isinstance(m, (nn.Identity, nn.Dropout)):
        return None
    raise UnsupportedModel(
        f"{what}: CKKS plans take Linear, Conv2d, AvgPool2d, Flatten, Square and Poly"
    )


def describe(module: Any, input_shape: Sequence[int]) -> dict[str, Any]:
    """The module as a layer description for inputs of ``input_shape`` (without the
    batch dimension: (C, H, W) or (features,))."""
    if not isinstance(module, nn.Module):
        raise UnsupportedModel("compile a torch.nn.Module (an nn.Sequential of layers)")
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            layers = [_layer(name, leaf) for name, leaf in _leaves(module)]
    finally:
        module.train(was_training)
    return {
        "input_shape": [int(d) for d in input_shape],
        "layers": [layer for layer in layers if layer is not None],
    }


def compile_torch(module: Any, input_shape: Sequence[int], **options: Any) -> Plan:
    """``he.compile_model`` of the module's description; ``options`` are its keyword
    arguments (``input_range``, ``calibration``, ``margin``)."""
    return compile_model(describe(module, input_shape), **options)
