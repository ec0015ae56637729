"""A model described as layers, lowered to the dense-and-x² form the CKKS compiler runs.

A **model description** is a mapping ``{"input_shape": [C, H, W] or [F], "layers": [...]}``
whose layers are mappings with a ``type``:

=============  ===========================================================================
``conv2d``     ``weight`` (C_out, C_in, kh, kw), ``bias`` (C_out) or absent, ``stride``
               and ``padding`` (an integer or a pair; zero padding); no dilation, no groups
``avgpool2d``  ``kernel`` and ``stride`` (an integer or a pair; ``stride`` defaults to the
               kernel); windows that do not fit are dropped, as PyTorch does
``flatten``    (C, H, W) to C·H·W in that order (a ``dense`` after a 3-D shape flattens too)
``dense``      ``weight`` (in, out) — ``x @ weight + bias`` — and ``bias`` (out) or absent
``square``     x²
``poly``       ``coeffs`` [c0, c1, c2] or [c0, c1, c2, c3] (ascending), e.g. a fitted
               approximation of ReLU or SiLU the model was trained with
=============  ===========================================================================

Every run of consecutive linear layers (convolutions, pooling, flattening, dense layers) is
one affine map, found exactly by applying the run to the basis vectors; a degree-2
polynomial c2·x² + c1·x + c0 is rewritten as c2·(x + c1/(2 c2))² + (c0 − c1²/(4 c2)): the
shift goes into the bias before it and the factor and constant into the affine map after
it, so it costs one square like x².  (With c2 = 0 it is affine and joins its neighbours.)
A cubic c3·x³ + c2·x² + c1·x + c0 is c3·t·(t² + p) + e0 with t = x + c2/(3 c3): the
shift goes into the bias before it, c3 and e0 into the map after it, and it costs two
levels (a square, then a product with t).  The result is a list of affine maps with x²
or t·(t² + p) between them: what ``he.compile_model`` compiles.  Refused with
``UnsupportedModel``: unknown layer types, polynomials of degree 4 or more, shapes that
do not fit together, weights that are not finite, and a model that does not end with a
linear layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from chainml.errors import ChainmlError

MAX_UNITS = 1 << 14  # widest vector a lowered layer may have (the basis is units² floats)

LINEAR = ("conv2d", "avgpool2d", "flatten", "dense")
ACTIVATIONS = ("square", "poly")

Array = NDArray[np.float64]


class LoweringError(ChainmlError, ValueError):
    """A model description the compiler cannot lower (``he.UnsupportedModel`` wraps it)."""


def _pair(value: Any, what: str, low: int) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        pair = (int(value), int(value))
    elif (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    ):
        pair = (int(value[0]), int(value[1]))
    else:
        raise LoweringError(f"{what} is an integer or a pair of integers")
    if min(pair) < low:
        raise LoweringError(f"{what} must be at least {low}")
    return pair


def _array(layer: Mapping[str, Any], name: str, ndim: int, i: int) -> Array:
    try:
        a = np.asarray(layer[name], dtype=np.float64)
    except KeyError:
        raise LoweringError(f"layer {i} ({layer['type']}) has no {name}") from None
    except (TypeError, ValueError):
        raise LoweringError(f"layer {i}'s {name} is not a numeric array") from None
    if a.ndim != ndim or 0 in a.shape:
        raise LoweringError(f"layer {i}'s {name} must have {ndim} non-empty dimensions")
    if not np.isfinite(a).all():
        raise LoweringError(f"layer {i}'s {name} is not finite (NaN or infinity)")
    return a


def _conv(x: Array, layer: Mapping[str, Any], i: int) -> Array:
    w = _array(layer, "weight", 4, i)
    c_out, c_in, kh, kw = w.shape
    bias = np.zeros(c_out) if layer.get("bias") is None else _array(layer, "bias", 1, i)
    if bias.shape != (c_out,):
        raise LoweringError(f"layer {i}'s bias does not fit its {c_out} channels")
    if x.ndim != 4 or x.shape[1] != c_in:
        raise LoweringError(f"layer {i} wants {c_in} input channels, not shape {x.shape[1:]}")
    sh, sw = _pair(layer.get("stride", 1), f"layer {i}'s stride", 1)
    ph, pw = _pair(layer.get("padding", 0), f"layer {i}'s padding", 0)
    x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    if x.shape[2] < kh or x.shape[3] < kw:
        raise LoweringError(f"layer {i}'s kernel is larger than its (padded) input")
    cols = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    out = np.einsum("bchwij,ocij->bohw", cols, w, optimize=True)
    return np.asarray(out + bias[None, :, None, None], dtype=np.float64)


def _pool(x: Array, layer: Mapping[str, Any], i: int) -> Array:
    kh, kw = _pair(layer.get("kernel"), f"layer {i}'s kernel", 1)
    sh, sw = _pair(layer.get("stride", (kh, kw)), f"layer {i}'s stride", 1)
    if x.ndim != 4 or x.shape[2] < kh or x.shape[3] < kw:
        raise LoweringError(f"layer {i} pools a (C, H, W) input at least its kernel's size")
    windows = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    return np.asarray(windows.mean(axis=(4, 5)), dtype=np.float64)


def _dense(x: Array, layer: Mapping[str, Any], i: int) -> Array:
    w = _array(layer, "weight", 2, i)
    bias = np.zeros(w.shape[1]) if layer.get("bias") is None else _array(layer, "bias", 1, i)
    x = x.reshape(len(x), -1)
    if x.shape[1] != w.shape[0] or bias.shape != (w.shape[1],):
        raise LoweringError(
            f"layer {i} takes {w.shape[0]} inputs and {bias.shape} biases; it gets {x.shape[1]}"
        )
    return np.asarray(x @ w + bias)


def _apply(x: Array, layer: Mapping[str, Any], i: int) -> Array:
    kind = layer["type"]
    if kind == "conv2d":
        return _conv(x, layer, i)
    if kind == "avgpool2d":
        return _pool(x, layer, i)
    if kind == "flatten":
        return x.reshape(len(x), -1)
    return _dense(x, layer, i)


def _affine(
    run: Sequence[tuple[int, Mapping[str, Any]]], shape: tuple[int, ...]
) -> tuple[Array, Array, tuple[int, ...]]:
    """The run of linear layers as (W, b, output shape): its value at 0 and at each basis
    vector."""
    n = int(np.prod(shape))
    if n > MAX_UNITS:
        raise LoweringError(f"a {n}-unit vector is over the {MAX_UNITS} units lowered")
    x = np.concatenate([np.zeros((1, n)), np.eye(n)]).reshape(n + 1, *shape)
    for i, layer in run:
        x = _apply(x, layer, i)
        if int(np.prod(x.shape[1:])) > MAX_UNITS:
            raise LoweringError(f"layer {i} makes more than {MAX_UNITS} units")
    out_shape = tuple(int(d) for d in x.shape[1:])
    flat = x.reshape(n + 1, -1)
    return flat[1:] - flat[0], flat[0].copy(), out_shape


def _poly(layer: Mapping[str, Any], i: int) -> tuple[float, float, float, float]:
    if layer["type"] == "square":
        return 0.0, 0.0, 1.0, 0.0
    try:
        coeffs = [float(c) for c in layer["coeffs"]]
    except (KeyError, TypeError, ValueError):
        raise LoweringError(f"layer {i}: a poly layer has coeffs [c0, c1, c2(, c3)]") from None
    if not all(np.isfinite(coeffs)):
        raise LoweringError(f"layer {i}'s coefficients are not finite")
    # a fit's rounding noise is not a term (SiLU's cubic on [-4, 4] has c3 ≈ -7e-18, and
    # as a cubic its shift c2/(3 c3) would overflow every parameter set)
    largest = max((abs(c) for c in coeffs), default=0.0)
    coeffs = [0.0 if abs(c) <= 1e-12 * largest else c for c in coeffs]
    while len(coeffs) > 1 and coeffs[-1] == 0.0:
        coeffs.pop()
    if len(coeffs) > 4:
        raise LoweringError(
            f"layer {i}: a polynomial of degree {len(coeffs) - 1}; CKKS plans take 2 or 3"
        )
    c0, c1, c2, c3 = [*coeffs, 0.0, 0.0, 0.0][:4]
    return c0, c1, c2, c3


@dataclass(frozen=True, eq=False)
class ConvSpec:
    """The first affine map when it is one unpadded convolution: what the provider's
    packed convolution layout needs (``he``'s ``conv`` layout).  Output unit
    (c, y, x) is column c·H'·W' + y·W' + x of the lowered matrix."""

    weight: Array  # (C_out, C_in, kh, kw), float64; the bias is the lowered map's
    stride: tuple[int, int]
    in_shape: tuple[int, int, int]  # (C_in, H, W)
    out_shape: tuple[int, int, int]  # (C_out, H', W')


@dataclass(frozen=True, eq=False)
class Lowered:
    weights: list[Array]
    biases: list[Array]
    input_shape: tuple[int, ...]
    conv: ConvSpec | None  # the first map's convolution, if it is exactly one
    # after each map but the last: None for x², p for the cubic t ↦ t·(t² + p)
    activations: list[float | None]


def _conv_spec(
    run: Sequence[tuple[int, Mapping[str, Any]]],
    shape: tuple[int, ...],
    out_shape: tuple[int, ...],
) -> ConvSpec | None:
    if len(run) != 1 or run[0][1]["type"] != "conv2d" or len(shape) != 3:
        return None
    i, layer = run[0]
    if _pair(layer.get("padding", 0), "padding", 0) != (0, 0):
        return None
    c_out, h_out, w_out = out_shape
    return ConvSpec(
        _array(layer, "weight", 4, i),
        _pair(layer.get("stride", 1), "stride", 1),
        (shape[0], shape[1], shape[2]),
        (c_out, h_out, w_out),
    )


def lower(description: Mapping[str, Any]) -> Lowered:
    """Affine maps ``(weights, biases)`` with x² or a cubic between consecutive ones, the
    input shape, and the first map's convolution if it is one; ``LoweringError`` for anything
    this compiler cannot run (see the module doc)."""
    if not isinstance(description, Mapping) or "layers" not in description:
        raise LoweringError("a model description is {'input_shape': [...], 'layers': [...]}")
    try:
        shape = tuple(int(d) for d in description["input_shape"])
    except (KeyError, TypeError, ValueError):
        raise LoweringError("input_shape is [C, H, W] or [features]") from None
    if len(shape) not in (1, 3) or min(shape) < 1:
        raise LoweringError("input_shape is [C, H, W] or [features]")
    layers = description["layers"]
    if not isinstance(layers, Sequence) or not layers:
        raise LoweringError("a model description has at least one layer")
    for i, layer in enumerate(layers):
        if not isinstance(layer, Mapping) or layer.get("type") not in LINEAR + ACTIVATIONS:
            raise LoweringError(f"layer {i}: the types are {', '.join(LINEAR + ACTIVATIONS)}")
    if layers[-1]["type"] not in LINEAR:
        raise LoweringError("the model must end with a linear layer (its logits)")
    if len(shape) == 1:
        shape = (shape[0],)
    input_shape = shape

    # split into runs of linear layers separated by activations
    runs: list[list[tuple[int, Mapping[str, Any]]]] = [[]]
    polys: list[tuple[float, float, float, float]] = []
    for i, layer in enumerate(layers):
        if layer["type"] in ACTIVATIONS:
            polys.append(_poly(layer, i))
            runs.append([])
        else:
            runs[-1].append((i, layer))

    weights: list[Array] = []
    biases: list[Array] = []
    pending: tuple[float, float] | None = None  # (factor, constant) from the last activation
    activations: list[float | None] = []
    conv = None
    for k, run in enumerate(runs):
        w, b, out_shape = _affine(run, shape)
        if k == 0:
            conv = _conv_spec(run, shape, out_shape)
        shape = out_shape
        if pending is not None:  # y = a·g(t) + const feeds this map: scale W, const into b
            a, const = pending
            b = b + const * w.sum(axis=0)
            w = a * w
            pending = None
        if k and polys[k - 1][2:] == (0.0, 0.0):  # an affine "activation": merge with the last
            conv = None if k == 1 else conv
            c0, c1, _, _ = polys[k - 1]
            weights[-1], biases[-1] = c1 * weights[-1] @ w, (c1 * biases[-1] + c0) @ w + b
        else:
            weights.append(w)
            biases.append(b)
        if k < len(polys):
            c0, c1, c2, c3 = polys[k]
            if c3 != 0.0:  # z = t - h with h = c2 / (3 c3): c3·t·(t² + p) + e0
                h = c2 / (3 * c3)
                e1 = 3 * c3 * h * h - 2 * c2 * h + c1
                e0 = -c3 * h**3 + c2 * h * h - c1 * h + c0
                biases[-1] = biases[-1] + h
                pending = (c3, e0)
                activations.append(e1 / c3)
            elif c2 != 0.0:
                biases[-1] = biases[-1] + c1 / (2 * c2)
                pending = (c2, c0 - c1 * c1 / (4 * c2))
                activations.append(None)
    return Lowered(weights, biases, input_shape, conv, activations)


def evaluate(description: Mapping[str, Any], x: Array) -> Array:
    """The model in numpy, layer by layer as described (rows of flattened inputs): what
    the lowered plan must agree with."""
    shape = tuple(int(d) for d in description["input_shape"])
    h = np.asarray(x, dtype=np.float64).reshape(len(x), *shape)
    for i, layer in enumerate(description["layers"]):
        if layer["type"] in ACTIVATIONS:
            c0, c1, c2, c3 = _poly(layer, i)
            h = c0 + h * (c1 + h * (c2 + c3 * h))
        else:
            h = _apply(h, layer, i)
    return np.asarray(h.reshape(len(h), -1))
