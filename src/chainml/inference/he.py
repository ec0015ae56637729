"""Homomorphically encrypted inference (CKKS, Microsoft SEAL through TenSEAL's ``sealapi``).

The client makes the keys and keeps the secret one; the provider gets only the public
evaluation keys (relinearisation, and Galois keys for exactly the rotations its plan uses)
and computes on ciphertexts.  A trained model is compiled into a plan:

- **logistic regression** (``x W + b``: depth 1) and **an MLP with any number of hidden
  layers and the x² activation** (``(x W1 + b1)² W2 + b2``: depth 3 for one hidden layer,
  2L + 1 for L; trained with x² so that accuracy holds encrypted);
- **a layer description** (``chainml.inference.layers``: 2-D convolutions, average
  pooling, flatten, dense layers, x² and degree-2 polynomial activations such as a fitted
  ReLU; a model's ``description()``, or a PyTorch ``nn.Sequential`` through
  ``chainml.inference.torch_import``), lowered exactly to affine maps with x² between
  them — the same form as an MLP, at the same depth;
- **an input range** per feature (given, measured on calibration data, or by default the
  [0, 1] of chainml's data sets widened by half its span on each side): interval
  arithmetic over that box bounds every logit, and the compiler gives the last prime of
  the modulus chain enough bits over the scale that no in-range input can overflow it;
  the client refuses an input outside the range before encrypting it, and an answer
  beyond the bound after decrypting it;
- parameters chosen from the depth and that bound: scale 2^40 (lowered to 2^30 at worst
  to make room), one prime of the scale's size per level, and the smallest ring degree
  whose modulus stays within SEAL's 128-bit-security bound — except for a network with one
  x² activation, whose square and second layer share one 60-bit prime (the chain
  (edge, 60, scale, 60), scale at most 2^36 in the block layout, 2^34 in the others): the
  square is multiplied unrescaled by the second layer's weights encoded at 2^60 / scale,
  so a query is three primes, not four, and the first layer's rotations switch keys over
  two.

Two modes, latency (one of three layouts) and throughput:

- **latency, block layout** — one query, one ciphertext.  The F features are padded to
  a period P (the next power of two) and tiled across all slots; the slots are cut into
  blocks of B slots (B ≥ P + C - 1 for C classes, a power of two), one block per hidden
  neuron, the pattern of pow2(H) blocks repeated over all the slots.  One plaintext
  product and a rotate-and-sum over P slots (log2 P rotations) leave the first B - P + 1
  slots of block j holding neuron j; after x², one product with the second layer laid
  out per block and a rotate-and-sum across blocks (log2 H rotations) leave class k in
  slot k of every block, and nothing but the logits and zeros in the answer.  For a
  regression B = P and class k ends in the first slot of block k.  Digits (64 features,
  32 hidden, 10 classes): P = 64, B = 128, 11 Galois keys.
- **latency, diagonal layout** — for shapes the blocks cannot hold (784 features, many
  hidden units or classes, more than one hidden layer): with Q the next power of two of
  the widest layer's units (classes for a regression) and P ≥ Q, each layer is a sum
  over Q generalised diagonals (Halevi–Shoup), computed baby-step giant-step (√Q baby
  rotations of the input, √Q giant rotations of partial sums, one rescale per layer);
  the first layer's P-periodic sum is folded to a Q-periodic vector (log2(P/Q)
  rotations).  Each layer's output has its own period R (the next power of two of its
  units) and the next layer reads it at that period, its baby steps chosen among those
  that need no new Galois key where one does; class k ends in slot k of every period.
  784→32→10: 15 Galois keys.  The compiler refuses a plan whose keys could exceed the
  64 MiB an upload may take.
- **latency, conv layout** — when the first layer is one unpadded convolution with at
  most slots / P output channels: the input is tiled as in the diagonal layout, output
  channel c uses the c-th copy, and unit (c, y, x) is computed in the slot where its
  window starts (c·P + s·y·W + s·x): per kernel tap a plaintext mask holding the tap's
  weight at every output slot, baby steps over the kernel's columns (kw - 1 rotations of
  the input) and giant steps over its rows and input channels (C_in·kh - 1 rotations of
  partial sums, the masks pre-rotated to match).  The next layer reads the units where
  they sit (a diagonal product over all the slots, folded to its period), and the rest
  is the diagonal layout.  Fashion-MNIST's conv 4×7×7 stride 3 → 256 units → 10: 22
  Galois keys instead of the diagonal layout's 32, 49 plaintext products instead of 256.
- **throughput** — many queries, one ciphertext per feature with a query per slot; each
  neuron is a sum of plaintext-scalar products with one rescale, not one per product.

Bytes in and out are SEAL's own serialisation (through an anonymous in-memory file where
the system has them, else a temporary file: ``sealapi`` saves and loads files only);
every load is checked against the provider's parameters, so a malformed ciphertext, one
from other parameters or another key set is refused with a typed error, and so is a
query encoded at another scale than the plan's, and evaluation keys that lack a rotation
the plan needs.

Errors::

    HEError
     ├── BadCiphertext (ValueError)   bytes the provider cannot evaluate
     │    └── BadKeys                 evaluation keys that do not fit the plan
     ├── BadQuery (ValueError)        a client's input that does not fit the plan
     │    └── OutOfRange              a feature outside the plan's input range
     ├── BadResult                    an answer outside the range the plan proves
     └── UnsupportedModel (ValueError) a model this compiler has no plan for
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chainml.errors import ChainmlError
from chainml.inference import layers

try:
    import tenseal.sealapi as seal
except ImportError as exc:  # pragma: no cover - installed with chainml
    raise ChainmlError("homomorphic inference needs TenSEAL") from exc

SCALE_BITS = 40
MIN_SCALE_BITS = 30  # the compiler lowers the scale this far to make room for large logits
MAX_PRIME_BITS = 60  # SEAL's largest prime
HEADROOM_BITS = 9  # the last prime's bits over the scale, at least
MAX_BITS = {4096: 109, 8192: 218, 16384: 438, 32768: 881}  # SEAL's 128-bit bounds
MIN_SLOTS = 4096
# the fused chain's scale: 2^24 left for the block layout's second layer's weights; the
# diagonal and conv layouts sum many more weighted terms per logit and keep 2^26 (measured
# single queries: the digits MLP's logits within 1e-4 at 2^36, 6e-4 at 2^32; the
# Fashion-MNIST CNN's within 6e-5 at 2^32, 2e-4 at 2^34, 7e-4 at 2^36 — and batched 4e-4
# at 2^32, its fresh noise over 784 ciphertexts)
FUSED_SCALE_BITS = {"block": 36, "diagonal": 34, "conv": 34}
MAX_QUERY_BYTES = 4 << 20
MAX_KEY_BYTES = MAX_QUERY_BYTES * 16  # one evaluation-key upload (the service's max_keys)
DEFAULT_INPUT_RANGE = (-0.5, 1.5)  # chainml's data sets are [0, 1] on the training split


class HEError(ChainmlError):
    """Homomorphic inference failed; the subclass says why."""


class BadCiphertext(HEError, ValueError):
    """Bytes that are not a ciphertext for these parameters (malformed, other parameters,
    another scale, too large, or the wrong number of them), or that cannot be evaluated."""


class BadKeys(BadCiphertext):
    """Evaluation keys that do not fit the plan: missing, of another context, not
    relinearisation and Galois keys in that order, or without a rotation the plan uses."""


class BadQuery(HEError, ValueError):
    """An input the client must not encrypt for this plan: the wrong shape, not finite,
    or more rows than a batch holds."""


class OutOfRange(BadQuery):
    """A feature outside the input range the plan was compiled for (an input there could
    overflow the modulus and decrypt to a wrong answer); ``feature`` is its index."""

    def __init__(self, feature: int, value: float, low: float, high: float) -> None:
        super().__init__(
            f"feature {feature} is {value:.6g}, outside the plan's range [{low:.6g}, {high:.6g}]"
        )
        self.feature = feature


class BadResult(HEError):
    """A decrypted answer outside the range the plan proves for in-range inputs (the
    provider did not evaluate this plan on this query)."""


class UnsupportedModel(HEError, ValueError):
    """A model this compiler has no plan for (its shape, its activation, weights that are
    not finite, or inputs whose range could overflow any parameters it can pick)."""


@dataclass(frozen=True)
class HEParameters:
    poly_degree: int
    coeff_bits: tuple[int, ...]
    scale_bits: int = SCALE_BITS

    @classmethod
    def for_depth(
        cls, depth: int, scale_bits: int = SCALE_BITS, headroom_bits: int = HEADROOM_BITS
    ) -> HEParameters:
        """The smallest ring whose modulus holds ``depth`` rescales at 128-bit security,
        with ``headroom_bits`` over the scale in the first and last primes."""
        edge = scale_bits + headroom_bits
        if edge > MAX_PRIME_BITS:
            raise UnsupportedModel(f"a {edge}-bit prime: SEAL's largest is {MAX_PRIME_BITS}")
        bits = (edge, *([scale_bits] * depth), edge)
        for degree, limit in sorted(MAX_BITS.items()):
            if sum(bits) <= limit and degree // 2 >= MIN_SLOTS:
                return cls(degree, bits, scale_bits)
        raise UnsupportedModel(f"depth {depth} needs more than SEAL's largest ring")

    @classmethod
    def for_bound(cls, depth: int, bound: float) -> HEParameters:
        """Parameters under which a result of magnitude up to ``bound`` cannot overflow:
        the largest scale (2^40 down to 2^30) that leaves room for it in the smallest ring
        that has room at all."""
        if not math.isfinite(bound):
            raise UnsupportedModel("the logits are unbounded over the input range")
        # values below 2^(edge - scale - 1) decode; one more bit for noise and for primes
        # that are not exactly 2^scale
        headroom = max(HEADROOM_BITS, math.ceil(math.log2(max(bound, 1.0))) + 2)
        for degree, limit in sorted(MAX_BITS.items()):
            if degree // 2 < MIN_SLOTS:
                continue
            for scale in range(SCALE_BITS, MIN_SCALE_BITS - 1, -1):
                edge = scale + headroom
                if edge <= MAX_PRIME_BITS and 2 * edge + depth * scale <= limit:
                    return cls(degree, (edge, *([scale] * depth), edge), scale)
        raise UnsupportedModel(
            f"logits up to {bound:.3g} over the input range need more headroom than any "
            "parameters have: narrow the input range"
        )

    @classmethod
    def fused_for_bound(cls, bound: float, max_scale: int = 36) -> HEParameters | None:
        """A one-hidden-layer MLP's chain with the square and the second layer sharing one
        60-bit prime: ``(edge, 60, scale, 60)`` — the first layer rescales by the scale's
        prime, the square is multiplied unrescaled by the second layer's weights encoded
        at 2^60 / scale and the product rescaled by the 60-bit prime.  One prime fewer
        than ``for_bound(3, …)``: a query is three primes, and the first layer's
        rotations switch keys over two.  ``bound`` covers every partial sum of the second
        layer; None if no scale from 2^``max_scale`` down to 2^30 leaves room for it."""
        if not math.isfinite(bound):
            return None
        headroom = max(HEADROOM_BITS, math.ceil(math.log2(max(bound, 1.0))) + 2)
        limit = MAX_BITS[8192]
        for scale in range(max_scale, MIN_SCALE_BITS - 1, -1):
            edge = scale + headroom
            if edge <= MAX_PRIME_BITS and edge + scale + 2 * MAX_PRIME_BITS <= limit:
                return cls(8192, (edge, MAX_PRIME_BITS, scale, MAX_PRIME_BITS), scale)
        return None

    def context(self) -> Any:
        parms = seal.EncryptionParameters(seal.SCHEME_TYPE.CKKS)
        parms.set_poly_modulus_degree(self.poly_degree)
        parms.set_coeff_modulus(seal.CoeffModulus.Create(self.poly_degree, list(self.coeff_bits)))
        return seal.SEALContext(parms, True, seal.SEC_LEVEL_TYPE.TC128)

    @property
    def slots(self) -> int:
        return self.poly_degree // 2

    @property
    def scale(self) -> float:
        return float(2.0**self.scale_bits)


def _memfd() -> int | None:
    """An anonymous in-memory file for SEAL's file-only serialisation, where the system
    has them (Linux): a 206 KB ciphertext saves in about 1.6 ms there and 10 ms through
    a temporary file on this machine's disk."""
    create = getattr(os, "memfd_create", None)
    if create is None or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        return int(create("chainml-he", getattr(os, "MFD_CLOEXEC", 0)))
    except OSError:
        return None


def _save(obj: Any) -> bytes:
    fd = _memfd()
    if fd is not None:
        try:
            obj.save(f"/proc/self/fd/{fd}")
            return os.pread(fd, os.fstat(fd).st_size, 0)
        finally:
            os.close(fd)
    tmp, name = tempfile.mkstemp()
    try:
        os.close(tmp)
        obj.save(name)
        with open(name, "rb") as fh:
            return fh.read()
    finally:
        os.unlink(name)


def _load_from(obj: Any, context: Any, data: bytes) -> None:
    fd = _memfd()
    if fd is not None:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            obj.load(context, f"/proc/self/fd/{fd}")
            return
        finally:
            os.close(fd)
    with tempfile.NamedTemporaryFile(delete=True) as fh:
        fh.write(data)
        fh.flush()
        obj.load(context, fh.name)


def _load(
    kind: Callable[[], Any],
    context: Any,
    data: bytes,
    what: str,
    error: type[BadCiphertext] = BadCiphertext,
) -> Any:
    if not isinstance(data, (bytes, bytearray)) or not data or len(data) > MAX_KEY_BYTES:
        raise error(f"{what}: empty or too large")
    obj = kind()
    try:
        _load_from(obj, context, data)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise error(f"{what}: not valid for these parameters") from exc
    if not seal.is_valid_for(obj, context):
        raise error(f"{what}: not valid for these parameters")
    return obj


def galois_elements(steps: Sequence[int], poly_degree: int) -> list[int]:
    """SEAL's Galois element for a left rotation by each step: 3^step mod 2N."""
    return [pow(3, step, 2 * poly_degree) for step in steps]


def _key_bytes(parameters: HEParameters, rotations: int) -> int:
    """An upper bound on a key set's size: per key (relinearisation, and one per rotation)
    L components of one polynomial over L + 1 primes in the seeded form, L the number of
    data primes."""
    primes = len(parameters.coeff_bits)
    return (rotations + 1) * (primes - 1) * primes * parameters.poly_degree * 8


def _diagonal_steps(rows: int, width: int, n1: int) -> set[int]:
    """The rotations of one diagonal-layout layer: baby steps, giant steps, folds."""
    steps = set(range(1, min(n1, rows)))
    steps.update(g * n1 for g in range(1, -(-rows // n1)))
    steps.update(rows << k for k in range((width // rows).bit_length() - 1))
    return steps


def _pow2(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


# -- plans ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanShape:
    """What a client needs of a provider's plan: the parameters and Galois keys to make,
    the input's shape and range, the latency layout, and where the logits sit in the
    answer.  Published by the provider; no weights."""

    depth: int
    n_classes: int
    regression: bool
    rotations: tuple[int, ...]
    n_features: int
    period: int  # latency mode: the input is tiled with this period
    block: int  # latency mode: slots per hidden neuron (per class for a regression), or Q
    layout: str  # latency mode: "block", "diagonal" or "conv"
    parameters: HEParameters
    input_low: tuple[float, ...]
    input_high: tuple[float, ...]
    logit_bound: float  # |logit| over the input range, proven at compile time

    def to_doc(self) -> dict[str, Any]:
        return {
            "depth": self.depth,
            "n_classes": self.n_classes,
            "regression": self.regression,
            "rotations": list(self.rotations),
            "n_features": self.n_features,
            "period": self.period,
            "block": self.block,
            "layout": self.layout,
            "poly_degree": self.parameters.poly_degree,
            "coeff_bits": list(self.parameters.coeff_bits),
            "scale_bits": self.parameters.scale_bits,
            "input_low": list(self.input_low),
            "input_high": list(self.input_high),
            "logit_bound": self.logit_bound,
        }

    @classmethod
    def from_doc(cls, doc: Any) -> PlanShape:
        """Parse ``to_doc``'s form (docs/protocol/he-plan.md); ``ValueError`` if a field
        is missing, of another JSON type, or the shape is one no compiler makes."""
        if not isinstance(doc, dict) or set(doc) != set(_PLAN_FIELDS):
            raise ValueError(f"not a plan shape: the fields are {', '.join(_PLAN_FIELDS)}")
        params = HEParameters(
            _int(doc["poly_degree"]),
            tuple(_int(b) for b in _list(doc["coeff_bits"])),
            _int(doc["scale_bits"]),
        )
        if not isinstance(doc["regression"], bool) or not isinstance(doc["layout"], str):
            raise ValueError("not a plan shape: regression is a boolean, layout a string")
        shape = cls(
            _int(doc["depth"]),
            _int(doc["n_classes"]),
            doc["regression"],
            tuple(_int(r) for r in _list(doc["rotations"])),
            _int(doc["n_features"]),
            _int(doc["period"]),
            _int(doc["block"]),
            doc["layout"],
            params,
            tuple(_float(v) for v in _list(doc["input_low"])),
            tuple(_float(v) for v in _list(doc["input_high"])),
            _float(doc["logit_bound"]),
        )
        shape.check()
        return shape

    @property
    def fused(self) -> bool:
        """A network with one x² activation whose square and second layer share a prime
        (``HEParameters.fused_for_bound``): depth 3 over three data primes."""
        return not self.regression and len(self.parameters.coeff_bits) == self.depth + 1

    def check(self) -> None:
        """``ValueError`` unless the shape is one a compiler could have made."""
        p = self.parameters
        problems = [
            (p.poly_degree not in MAX_BITS, "ring degree"),
            (sum(p.coeff_bits) > MAX_BITS.get(p.poly_degree, 0), "modulus over 128-bit bound"),
            (len(p.coeff_bits) != self.depth + 2 - self.fused or self.depth < 1, "depth"),
            (self.depth > 1 and self.regression, "depth"),
            (self.layout == "block" and self.depth not in (1, 3), "depth"),
            (self.fused and (self.depth != 3 or p.coeff_bits[1] != MAX_PRIME_BITS), "depth"),
            (not MIN_SCALE_BITS <= p.scale_bits <= SCALE_BITS, "scale"),
            (self.layout not in ("block", "diagonal", "conv"), "layout"),
            (not 0 < self.n_features <= self.period <= p.slots, "layout"),
            (self.layout == "block" and not self.period <= self.block <= p.slots, "layout"),
            (self.layout != "block" and not 0 < self.block <= self.period, "layout"),
            (self.period != _pow2(self.period) or self.block != _pow2(self.block), "layout"),
            (not 0 < self.n_classes <= p.slots, "classes"),
            (len(self.input_low) != self.n_features, "input range"),
            (len(self.input_high) != self.n_features, "input range"),
            (not all(math.isfinite(v) for v in (*self.input_low, *self.input_high)), "range"),
            (
                any(lo > hi for lo, hi in zip(self.input_low, self.input_high, strict=False)),
                "range",
            ),
            (not math.isfinite(self.logit_bound) or self.logit_bound < 0, "logit bound"),
            (any(not 0 < r < p.slots for r in self.rotations), "rotations"),
            (len(set(self.rotations)) != len(self.rotations), "rotations"),
            (_key_bytes(p, len(self.rotations)) > MAX_KEY_BYTES, "keys over the upload cap"),
        ]
        for bad, what in problems:
            if bad:
                raise ValueError(f"not a plan shape: {what}")


_PLAN_FIELDS = (
    "depth",
    "n_classes",
    "regression",
    "rotations",
    "n_features",
    "period",
    "block",
    "layout",
    "poly_degree",
    "coeff_bits",
    "scale_bits",
    "input_low",
    "input_high",
    "logit_bound",
)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("not a plan shape: expected an integer")
    return value


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("not a plan shape: expected a number")
    return float(value)


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise ValueError("not a plan shape: expected a list")
    return value


@dataclass(frozen=True, eq=False)
class Plan:
    """A model compiled for CKKS: weights in float64, the input range it was compiled
    for, and the parameters and layout its evaluation uses.  Its weight layouts, once
    encoded, are kept with it and shared by every provider of the plan (one per client
    key set), not encoded again for each."""

    weights: tuple[NDArray[np.float64], ...]  # one per layer; one layer: a regression
    biases: tuple[NDArray[np.float64], ...]
    input_low: NDArray[np.float64]
    input_high: NDArray[np.float64]
    logit_bound: float
    parameters: HEParameters
    conv: layers.ConvSpec | None = None  # the first layer's convolution, if it is one
    # after each layer but the last: None for x², p for the cubic t ↦ t·(t² + p)
    activations: tuple[float | None, ...] = ()
    encodings: dict[Any, Any] = field(default_factory=dict, init=False, repr=False)

    @property
    def w1(self) -> NDArray[np.float64]:
        return self.weights[0]

    @property
    def b1(self) -> NDArray[np.float64]:
        return self.biases[0]

    @property
    def w2(self) -> NDArray[np.float64] | None:
        """The second layer's weights (None for a regression)."""
        return self.weights[1] if len(self.weights) > 1 else None

    @property
    def b2(self) -> NDArray[np.float64] | None:
        return self.biases[1] if len(self.biases) > 1 else None

    @property
    def regression(self) -> bool:
        return len(self.weights) == 1

    @property
    def shape(self) -> PlanShape:
        return PlanShape(
            self.depth,
            self.n_classes,
            self.regression,
            tuple(self.rotations),
            self.n_features,
            self.period,
            self.block,
            self.layout,
            self.parameters,
            tuple(float(v) for v in self.input_low),
            tuple(float(v) for v in self.input_high),
            self.logit_bound,
        )

    @property
    def fused(self) -> bool:
        """The square and the second layer share one 60-bit prime (see ``PlanShape``)."""
        return (
            len(self.weights) == 2
            and self.activation(0) is None
            and len(self.parameters.coeff_bits) == self.depth + 1
        )

    def activation(self, i: int) -> float | None:
        """After layer i: None for x², p for the cubic t·(t² + p)."""
        return self.activations[i] if i < len(self.activations) else None

    @property
    def depth(self) -> int:
        """A product per layer; a square (one level) or a cubic (two) per hidden one."""
        cubics = sum(1 for i in range(len(self.weights) - 1) if self.activation(i) is not None)
        return 2 * len(self.weights) - 1 + cubics

    @property
    def n_features(self) -> int:
        return int(self.w1.shape[0])

    @property
    def n_hidden(self) -> int:
        """The widest hidden layer (0 for a regression)."""
        return max((int(w.shape[1]) for w in self.weights[:-1]), default=0)

    @property
    def n_classes(self) -> int:
        return int(self.weights[-1].shape[1])

    def _fits_blocks(self) -> bool:
        p0 = _pow2(self.n_features)
        if len(self.weights) > 2 or self.activation(0) is not None:
            return False
        if self.w2 is None:
            return self.n_classes * p0 <= self.parameters.slots
        return self.n_hidden * _pow2(p0 + self.n_classes - 1) <= self.parameters.slots

    def _fits_conv(self) -> bool:
        """The packed convolution layout: a copy of the input per output channel."""
        if self.conv is None or len(self.weights) < 2:
            return False
        period = max(_pow2(self.n_features), _pow2(max(self.n_hidden, self.n_classes)))
        return self.conv.out_shape[0] * period <= self.parameters.slots

    @property
    def layout(self) -> str:
        """Latency mode's layout: blocks where they fit (fewest rotations), else the
        packed convolution when the first layer is one that fits, else diagonals."""
        if self._fits_blocks():
            return "block"
        return "conv" if self._fits_conv() else "diagonal"

    @property
    def period(self) -> int:
        if self.layout == "block":
            return _pow2(self.n_features)
        return max(_pow2(self.n_features), self.block)

    @property
    def block(self) -> int:
        """Block layout: slots per hidden neuron (the first ``block - period + 1`` slots
        of a block hold the neuron after the rotate-and-sum, and the classes must fit
        there).  Diagonal and conv layouts: Q, the next power of two of the widest
        layer."""
        if self.layout in ("diagonal", "conv"):
            return _pow2(max(self.n_hidden, self.n_classes))
        if self.w2 is None:
            return _pow2(self.n_features)
        return _pow2(_pow2(self.n_features) + self.n_classes - 1)

    @property
    def diagonal_layers(self) -> list[tuple[int, int, int]]:
        """Diagonal layout, per layer: ``(rows, width, n1)`` — the period of its output
        (the next power of two of its units), the period it reads its input at, and its
        baby steps (n1 · n2 = rows).  The first layer takes n1 ≈ √rows; each later one
        the n1 with fewest rotations among those that need no Galois key the layers
        before it did not (√rows if none)."""
        out: list[tuple[int, int, int]] = []
        used: set[int] = set()
        period, weights = self.period, self.weights
        if self.layout == "conv":  # the conv layer's output is spread over every slot
            used, period, weights = self.conv_steps, self.parameters.slots, weights[1:]
        for w in weights:
            rows = _pow2(int(w.shape[1]))
            width = max(period, rows)
            n1 = 1 << (rows.bit_length() // 2)
            if used:
                fits = [
                    1 << k
                    for k in range(rows.bit_length())
                    if _diagonal_steps(rows, width, 1 << k) <= used
                ]
                if fits:
                    n1 = min(fits, key=lambda n: n + rows // n)
            used |= _diagonal_steps(rows, width, n1)
            out.append((rows, width, n1))
            period = rows
        return out

    @property
    def conv_steps(self) -> set[int]:
        """Conv layout, the first layer's rotations: the kernel's columns (baby steps)
        and its rows in each input channel (giant steps)."""
        assert self.conv is not None
        (c_in, h, w), kh, kw = self.conv.in_shape, *self.conv.weight.shape[2:]
        giant = {ci * h * w + dy * w for ci in range(c_in) for dy in range(kh)}
        return (set(range(1, kw)) | giant) - {0}

    @property
    def rotations(self) -> list[int]:
        """The Galois steps latency mode uses.  Block layout: sum within a period, then
        across blocks.  Diagonal layout: each layer's baby steps, giant steps, and folds
        from the period of its input to that of its output."""
        if self.layout in ("diagonal", "conv"):
            steps = self.conv_steps if self.layout == "conv" else set()
            for rows, width, n1 in self.diagonal_layers:
                steps |= _diagonal_steps(rows, width, n1)
            return sorted(steps)
        within = [1 << k for k in range(self.period.bit_length() - 1)]
        blocks = max(self.n_hidden, 1)
        across = [self.block << k for k in range((blocks - 1).bit_length())]
        return within + across

    @property
    def key_bytes(self) -> int:
        """An upper bound on the evaluation keys' size: per key (relinearisation, and one
        per rotation) L components of one polynomial over L + 1 primes in the seeded form,
        L the number of data primes."""
        return _key_bytes(self.parameters, len(self.rotations))

    def plaintext(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        h = np.asarray(x, dtype=np.float64)
        for i, (w, b) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = h @ w + b
            if i < len(self.weights) - 1:
                h = _activate(h, self.activation(i))
        return np.asarray(h)


def _activate(h: NDArray[np.float64], p: float | None) -> NDArray[np.float64]:
    """x² (``p`` None) or the cubic t·(t² + p)."""
    return np.asarray(h * h if p is None else h * (h * h + p))


def _activation_interval(
    lo: NDArray[np.float64], hi: NDArray[np.float64], p: float | None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Bounds of the activation over [lo, hi]: its values at the ends and at its critical
    points inside (0 for x²; ±√(−p/3) for the cubic when p < 0)."""
    crit: list[NDArray[np.float64]] = []
    if p is None:
        crit = [np.zeros_like(lo)]
    elif p < 0:
        root = math.sqrt(-p / 3)
        crit = [np.full_like(lo, -root), np.full_like(lo, root)]
    values = [_activate(lo, p), _activate(hi, p)]
    values += [_activate(np.clip(c, lo, hi), p) for c in crit]
    return np.minimum.reduce(values), np.maximum.reduce(values)


def _interval(
    w: NDArray[np.float64], b: NDArray[np.float64], lo: NDArray[np.float64], hi: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Bounds of ``x w + b`` for x in the box [lo, hi]."""
    pos, neg = np.maximum(w, 0.0), np.minimum(w, 0.0)
    return lo @ pos + hi @ neg + b, hi @ pos + lo @ neg + b


def _params_of(model: Any, activation: str | None) -> tuple[dict[str, Any], str | None]:
    if isinstance(model, Mapping):
        return dict(model), activation
    params = getattr(model, "params", None)
    if not isinstance(params, Mapping):
        raise UnsupportedModel("compile a model with .params, or a mapping of its parameters")
    own = getattr(model, "activation", None)
    if activation is not None and own is not None and activation != own:
        raise UnsupportedModel(f"the model's activation is {own}, not {activation}")
    return dict(params), activation or own


def _description_of(model: Any) -> Mapping[str, Any] | None:
    """A model's layer description (``chainml.inference.layers``), if it has one."""
    if isinstance(model, Mapping):
        return model if "layers" in model else None
    describe = getattr(model, "description", None)
    if not callable(describe):
        return None
    description = describe()
    if not isinstance(description, Mapping):
        raise UnsupportedModel("a model's description() is a mapping of its layers")
    return description


def _affine_layers(
    model: Any, activation: str | None
) -> tuple[
    list[NDArray[np.float64]],
    list[NDArray[np.float64]],
    layers.ConvSpec | None,
    list[float | None],
]:
    """The model as affine maps, the activation after each but the last (None for x², p
    for t ↦ t·(t² + p)), and the first map's convolution."""
    description = _description_of(model)
    if description is not None:
        if activation is not None:
            raise UnsupportedModel("a layer description names its own activations")
        try:
            lowered = layers.lower(description)
        except layers.LoweringError as exc:
            raise UnsupportedModel(str(exc)) from None
        return lowered.weights, lowered.biases, lowered.conv, lowered.activations
    raw, activation = _params_of(model, activation)
    try:
        p = {k: np.asarray(v, dtype=np.float64) for k, v in raw.items()}
    except (TypeError, ValueError) as exc:
        raise UnsupportedModel(f"parameters are not numeric arrays: {exc}") from None
    if not all(np.isfinite(v).all() for v in p.values()):
        raise UnsupportedModel("the model has weights that are not finite (NaN or infinity)")
    hidden = sum(1 for k in p if k.startswith("w") and k[1:].isdigit())
    if set(p) == {"w", "b"}:
        return [p["w"]], [p["b"]], None, []
    if hidden >= 2 and set(p) == {f"{c}{i}" for i in range(hidden) for c in "wb"}:
        if activation != "square":
            raise UnsupportedModel("CKKS evaluates an MLP only with the x² activation")
        weights = [p[f"w{i}"] for i in range(hidden)]
        return weights, [p[f"b{i}"] for i in range(hidden)], None, [None] * (hidden - 1)
    raise UnsupportedModel(
        "a logistic regression (w, b), an MLP (w0, b0, w1, b1, …) or a layer description"
    )


def compile_model(
    model: Any,
    activation: str | None = None,
    *,
    input_range: tuple[Any, Any] | None = None,
    calibration: NDArray[np.float64] | None = None,
    margin: float = 0.25,
) -> Plan:
    """A plan for a logistic regression (``w``, ``b``), an MLP with the x² activation
    after each hidden layer (``w0, b0, w1, b1, …``), or a layer description
    (``chainml.inference.layers``: convolutions, average pooling, dense layers, x² and
    degree-2 polynomial activations), lowered to affine maps with x² between them.

    ``model`` is a model (its ``description()`` if it has one, else its ``params`` and
    ``activation``), a layer description (a mapping with ``layers``), or a mapping of
    parameters (then ``activation="square"`` names an MLP's activation).  The input range
    the plan accepts is, in order of precedence: the per-feature minimum and maximum of
    ``calibration`` rows widened by ``margin`` times their span on each side;
    ``input_range`` (low, high: scalars or one per feature); or ``DEFAULT_INPUT_RANGE``.
    A hidden unit whose input weights are all zero is a constant and is folded into the
    output bias.  Raises ``UnsupportedModel`` for any other architecture or activation,
    weights that are not finite, inconsistent shapes, a class whose logit ignores the
    input, a layout that does not fit one ciphertext, or an input range whose logits no
    parameters can hold."""
    weights, biases, conv, acts = _affine_layers(model, activation)
    width = None
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        if w.ndim != 2 or b.shape != (w.shape[1],) or 0 in w.shape:
            raise UnsupportedModel(f"layer {i}'s weights and bias do not fit together")
        if width is not None and w.shape[0] != width:
            raise UnsupportedModel(f"layer {i} does not fit the layer before it")
        width = w.shape[1]
    for i in range(len(weights) - 1):
        live = np.any(weights[i] != 0.0, axis=0)
        if not live.any():
            raise UnsupportedModel(f"no unit of hidden layer {i} depends on the input")
        # a unit with no input weights is the constant b_j: fold its activation times
        # w_next[j] into the next layer's bias
        biases[i + 1] = biases[i + 1] + _activate(biases[i][~live], acts[i]) @ weights[i + 1][~live]
        weights[i], biases[i] = weights[i][:, live], biases[i][live]
        if i == 0 and not live.all():
            conv = None  # the packed layout places every unit of the convolution
        weights[i + 1] = weights[i + 1][live]
    dead = np.flatnonzero(~np.any(weights[-1] != 0.0, axis=0))
    if len(dead):
        raise UnsupportedModel(f"class {int(dead[0])}'s logit does not depend on the input")

    n_features = weights[0].shape[0]
    if calibration is not None:
        cal = np.asarray(calibration, dtype=np.float64)
        if cal.ndim != 2 or cal.shape[1] != n_features or not len(cal):
            raise UnsupportedModel(f"calibration data must be rows of {n_features} features")
        if not np.isfinite(cal).all():
            raise UnsupportedModel("calibration data that is not finite")
        span = cal.max(axis=0) - cal.min(axis=0)
        low, high = cal.min(axis=0) - margin * span, cal.max(axis=0) + margin * span
    else:
        given = input_range if input_range is not None else DEFAULT_INPUT_RANGE
        try:
            low = np.broadcast_to(np.asarray(given[0], dtype=np.float64), (n_features,)).copy()
            high = np.broadcast_to(np.asarray(given[1], dtype=np.float64), (n_features,)).copy()
        except (TypeError, ValueError, IndexError) as exc:
            raise UnsupportedModel(f"an input range is (low, high) per feature: {exc}") from None
    if not (np.isfinite(low).all() and np.isfinite(high).all() and (low <= high).all()):
        raise UnsupportedModel("the input range must be finite with low <= high")

    lo, hi, inner = low, high, 0.0
    for i, (w, b) in enumerate(zip(weights, biases, strict=True)):
        lo, hi = _interval(w, b, lo, hi)
        if i < len(weights) - 1:
            square_hi = np.maximum(lo**2, hi**2)
            inner = max(inner, float(square_hi.max()) + abs(acts[i] or 0.0))
            lo, hi = _activation_interval(lo, hi, acts[i])
            inner = max(inner, float(np.abs(lo).max()), float(np.abs(hi).max()))
    bound = float(np.max(np.maximum(np.abs(lo), np.abs(hi))))
    # a hidden value sits over at least one more prime than the logits: 2^40 is far inside
    if not inner <= 2.0**40:
        raise UnsupportedModel("hidden values over the input range could overflow")
    depth = len(weights) + sum(1 if a is None else 2 for a in acts)
    plan = Plan(
        tuple(weights),
        tuple(biases),
        low,
        high,
        bound,
        HEParameters.for_bound(depth, bound),
        conv,
        tuple(acts),
    )
    if plan.period > plan.parameters.slots:
        raise UnsupportedModel(
            f"latency mode needs a period of {plan.period} slots ({n_features} features, "
            f"{plan.n_hidden} hidden units, {plan.n_classes} classes): over a ciphertext's "
            f"{plan.parameters.slots}"
        )
    if plan.key_bytes > MAX_KEY_BYTES:
        raise UnsupportedModel(
            f"the evaluation keys would take up to {plan.key_bytes >> 20} MiB "
            f"({len(plan.rotations)} rotations at N = {plan.parameters.poly_degree}), over "
            f"the {MAX_KEY_BYTES >> 20} MiB an upload may take: fewer or narrower layers"
        )
    if len(weights) == 2 and list(acts) == [None]:
        # every partial sum of the second layer, not only its total, must fit the last
        # prime's headroom: bound them by the sum of the terms' magnitudes
        h_lo, h_hi = _interval(weights[0], biases[0], low, high)
        square_hi = np.maximum(h_lo**2, h_hi**2)
        partial = float(np.max(square_hi @ np.abs(weights[1]) + np.abs(biases[1])))
        fused = HEParameters.fused_for_bound(max(bound, partial), FUSED_SCALE_BITS[plan.layout])
        # the square, at the scale squared, sits over the first and the 60-bit prime
        if fused is not None and inner < 2.0 ** (
            sum(fused.coeff_bits[:2]) - 2 * fused.scale_bits - 2
        ):
            layout = plan.layout
            plan = dataclasses.replace(plan, parameters=fused)
            assert plan.fused and plan.layout == layout  # the same ring: the same slots
    return plan


# -- the client: keys, encryption, decryption -------------------------------------------------


class HEClient:
    """Holds the secret key; gives the provider only public material.  Built from the
    plan's shape, it refuses queries that do not fit it."""

    def __init__(self, plan: Plan | PlanShape) -> None:
        shape = plan.shape if isinstance(plan, Plan) else plan
        shape.check()
        self.plan = shape
        self.parameters = shape.parameters
        self.context = self.parameters.context()
        keygen = seal.KeyGenerator(self.context)
        self._secret = keygen.secret_key()
        # the serialisable forms keep the seed of each key's uniform half: half the bytes
        self._relin = keygen.create_relin_keys()
        self._galois = keygen.create_galois_keys(
            galois_elements(shape.rotations, self.parameters.poly_degree)
        )
        self._encoder = seal.CKKSEncoder(self.context)
        self._encryptor = seal.Encryptor(self.context, self._secret)
        self._decryptor = seal.Decryptor(self.context, self._secret)
        self.scale = self.parameters.scale
        self._low = np.asarray(shape.input_low)
        self._high = np.asarray(shape.input_high)

    def __repr__(self) -> str:  # never the secret key
        return f"HEClient(N={self.parameters.poly_degree})"

    def evaluation_keys(self) -> dict[str, bytes]:
        """What the provider receives: public evaluation keys, nothing secret."""
        return {"relin": _save(self._relin), "galois": _save(self._galois)}

    def check(self, x: Any) -> NDArray[np.float64]:
        """Rows (or one row) of the plan's features, finite and inside its input range;
        ``BadQuery`` or ``OutOfRange`` (naming the first feature outside) if not."""
        try:
            a = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError):
            raise BadQuery("the input is not numeric") from None
        if a.ndim not in (1, 2) or a.shape[-1] != self.plan.n_features or a.size == 0:
            raise BadQuery(f"expected rows of {self.plan.n_features} features, got {a.shape}")
        if not np.isfinite(a).all():
            raise BadQuery("the input has values that are not finite")
        rows = a.reshape(-1, a.shape[-1])
        outside = (rows < self._low) | (rows > self._high)
        if outside.any():
            row, feature = (int(i) for i in np.argwhere(outside)[0])
            raise OutOfRange(feature, rows[row, feature], self._low[feature], self._high[feature])
        return a

    def _encrypt(self, values: NDArray[np.float64]) -> bytes:
        plain = seal.Plaintext()
        self._encoder.encode(values.astype(float).tolist(), self.scale, plain)
        # the serialisable form keeps the seed of the uniform half: half the bytes
        return _save(self._encryptor.encrypt_symmetric(plain))

    def encrypt_query(self, x: NDArray[np.float64]) -> bytes:
        """One input (``n_features`` values in the plan's range), tiled for latency mode."""
        a = self.check(x)
        if a.ndim != 1:
            raise BadQuery("one query is one row")
        row = np.zeros(self.plan.period)
        row[: len(a)] = a
        return self._encrypt(np.tile(row, self.parameters.slots // self.plan.period))

    def encrypt_batch(self, x: NDArray[np.float64]) -> list[bytes]:
        """Up to ``slots`` inputs, one ciphertext per feature (see ``batches``)."""
        a = self.check(x)
        if a.ndim != 2 or len(a) > self.parameters.slots:
            raise BadQuery(f"a batch is 1 to {self.parameters.slots} rows")
        return [self._encrypt(a[:, i]) for i in range(a.shape[1])]

    def batches(self, x: NDArray[np.float64]) -> list[NDArray[np.float64]]:
        """``x`` cut into batches of at most ``slots`` rows each, checked."""
        a = self.check(x)
        if a.ndim != 2:
            raise BadQuery("a batch is rows")
        step = self.parameters.slots
        return [a[i : i + step] for i in range(0, len(a), step)]

    def _decrypt(self, data: bytes) -> NDArray[np.float64]:
        ct = _load(seal.Ciphertext, self.context, data, "result")
        plain = seal.Plaintext()
        try:
            self._decryptor.decrypt(ct, plain)
            return np.asarray(self._encoder.decode_double(plain))
        except (RuntimeError, ValueError, TypeError) as exc:
            raise BadCiphertext("result: cannot be decrypted") from exc

    def _checked(self, logits: NDArray[np.float64]) -> NDArray[np.float64]:
        # in-range inputs give |logit| <= the bound; noise adds far less than this slack
        if not (np.abs(logits) <= self.plan.logit_bound * 1.01 + 1e-3).all():
            raise BadResult("the answer is outside the range the plan proves for the query")
        return logits

    def decrypt_query(
        self, data: bytes, plan: Plan | PlanShape | None = None
    ) -> NDArray[np.float64]:
        """The logits: slot k for the MLP, block k's first slot for a regression."""
        shape = self.plan if plan is None else plan.shape if isinstance(plan, Plan) else plan
        if shape != self.plan:
            raise BadQuery("this client was built for another plan")
        values = self._decrypt(data)
        if shape.regression and shape.layout == "block":
            return self._checked(values[: shape.n_classes * shape.block : shape.block])
        return self._checked(values[: shape.n_classes])

    def decrypt_batch(self, data: Sequence[bytes], n: int) -> NDArray[np.float64]:
        """Logits for the ``n`` rows of a batch: one ciphertext per class."""
        if len(data) != self.plan.n_classes:
            raise BadCiphertext(f"a batch's answer is {self.plan.n_classes} ciphertexts")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
            raise BadQuery("n is the number of rows in the batch")
        if not 0 < n <= self.parameters.slots:
            raise BadQuery(f"a batch is 1 to {self.parameters.slots} rows, not {n}")
        return self._checked(np.stack([self._decrypt(d)[:n] for d in data], axis=1))


# -- the provider: evaluation on ciphertexts only ---------------------------------------------


class HEProvider:
    """Evaluates a plan on ciphertexts with public keys only."""

    def __init__(self, plan: Plan, keys: Mapping[str, bytes]) -> None:
        self.plan = plan
        self.parameters = plan.parameters
        self.context = self.parameters.context()
        if not isinstance(keys, Mapping) or set(keys) != {"relin", "galois"}:
            raise BadKeys("evaluation keys are a relinearisation and a Galois key set")
        self._relin = _load(
            seal.RelinKeys, self.context, keys["relin"], "relinearisation keys", BadKeys
        )
        self._galois = _load(seal.GaloisKeys, self.context, keys["galois"], "Galois keys", BadKeys)
        # swapped or partial key sets load as the other kind: check what the plan uses
        if plan.depth > 1 and not self._relin.has_key(2):
            raise BadKeys("the relinearisation keys hold no key for a product's square")
        for step, element in zip(
            plan.rotations,
            galois_elements(plan.rotations, self.parameters.poly_degree),
            strict=True,
        ):
            if not self._galois.has_key(element):
                raise BadKeys(f"the Galois keys lack the rotation by {step} the plan uses")
        self._encoder = seal.CKKSEncoder(self.context)
        self._ev = seal.Evaluator(self.context)
        self.scale = self.parameters.scale
        # plaintexts encoded under one context serve another of the same parameters
        self._cache = plan.encodings
        if "layouts" not in self._cache:
            self._cache["layouts"] = (
                self._latency_layouts() if plan.layout == "block" else self._diagonal_layouts()
            )
            if plan.layout == "conv":
                self._cache["layouts"] |= self._conv_layouts()
        self._layouts: dict[str, NDArray[np.float64]] = self._cache["layouts"]

    def _latency_layouts(self) -> dict[str, NDArray[np.float64]]:
        """The plan's weights laid out in slots for latency mode (see the module doc).
        For an MLP the pattern of pow2(H) blocks repeats over all the slots, so that the
        rotate-and-sum across blocks leaves the whole sum in every block: the answer holds
        the logits (and zeros), never one hidden unit's share of them."""
        p, slots = self.plan, self.parameters.slots
        block, blocks = p.block, slots // p.block
        units = p.w1.shape[1]  # hidden neurons, or classes for a regression
        repeat = _pow2(units) if p.w2 is not None else blocks
        unit = np.arange(blocks) % repeat  # the unit block b computes
        live = unit < units
        columns = np.zeros((units, p.period))
        columns[:, : p.n_features] = p.w1.T
        w1 = np.zeros((blocks, block))
        w1[live] = np.tile(columns, (1, block // p.period))[unit[live]]
        b1 = np.zeros((blocks, block))
        b1[live] = p.b1[unit[live], None]
        layouts = {"w1": w1.ravel(), "b1": b1.ravel()}
        if p.w2 is not None and p.b2 is not None:
            w2 = np.zeros((blocks, block))
            w2[live, : p.n_classes] = p.w2[unit[live]]
            b2 = np.zeros((blocks, block))
            b2[:, : p.n_classes] = p.b2
            layouts |= {"w2": w2.ravel(), "b2": b2.ravel()}
        return layouts

    def _diagonals(
        self, name: str, m: NDArray[np.float64], width: int, n1: int
    ) -> dict[str, NDArray[np.float64]]:
        """Matrix ``m`` (rows × width, one row per output) as the plaintexts of a
        baby-step giant-step diagonal product: ``name:g:b`` holds
        ``m[(s - g n1) mod rows, (s + b) mod width]`` in slot s (tiled) for each
        diagonal g n1 + b < rows, and is left out when it is all zero."""
        rows = len(m)
        s = np.arange(width)
        out: dict[str, NDArray[np.float64]] = {}
        for j in range(rows):
            g, b = divmod(j, n1)
            values = m[(s - g * n1) % rows, (s + b) % width]
            if values.any():
                out[f"{name}:{g}:{b}"] = np.tile(values, self.parameters.slots // width)
        return out

    def _conv_placement(self) -> NDArray[np.int64]:
        """Conv layout: the slot of each output unit (c, y, x) of the convolution — in
        channel c's copy of the input, at the pixel its window starts at."""
        conv, period = self.plan.conv, self.plan.period
        assert conv is not None
        (_, _, w), (sh, sw) = conv.in_shape, conv.stride
        c_out, h_out, w_out = conv.out_shape
        c, y, x = np.meshgrid(np.arange(c_out), np.arange(h_out), np.arange(w_out), indexing="ij")
        return np.asarray((c * period + sh * y * w + sw * x).ravel(), dtype=np.int64)

    def _conv_layouts(self) -> dict[str, NDArray[np.float64]]:
        """Conv layout: per kernel tap (input channel ci, row dy, column dx) a mask with
        the tap's weight for channel c at each output unit's slot, rotated right by the
        tap's giant step (ci·H·W + dy·W) so the giant rotation lands it back; and the
        bias at the output slots."""
        conv, slots = self.plan.conv, self.parameters.slots
        assert conv is not None
        (c_in, h, w), (_, _, kh, kw) = conv.in_shape, conv.weight.shape
        place = self._conv_placement()
        channel = np.repeat(np.arange(conv.out_shape[0]), len(place) // conv.out_shape[0])
        layouts: dict[str, NDArray[np.float64]] = {}
        for ci in range(c_in):
            for dy in range(kh):
                for dx in range(kw):
                    mask = np.zeros(slots)
                    mask[place] = conv.weight[channel, ci, dy, dx]
                    if mask.any():
                        layouts[f"c:{ci}:{dy}:{dx}"] = np.roll(mask, ci * h * w + dy * w)
        bias = np.zeros(slots)
        bias[place] = self.plan.biases[0]
        layouts["b0"] = bias
        return layouts

    def _conv_product(self, ct: Any) -> Any:
        """Σ_{ci,dy} rot(Σ_dx M_{ci,dy,dx} ⊙ rot(ct, dx), ci·H·W + dy·W), rescaled once."""
        conv = self.plan.conv
        assert conv is not None
        (c_in, h, w), (_, _, kh, kw) = conv.in_shape, conv.weight.shape
        babies: dict[int, Any] = {0: ct}
        total = None
        for ci in range(c_in):
            for dy in range(kh):
                inner = None
                for dx in range(kw):
                    key = f"c:{ci}:{dy}:{dx}"
                    if key not in self._layouts:
                        continue
                    if dx not in babies:
                        babies[dx] = seal.Ciphertext()
                        self._ev.rotate_vector(ct, dx, self._galois, babies[dx])
                    prod = seal.Ciphertext()
                    self._ev.multiply_plain(babies[dx], self._layout(key, ct), prod)
                    if inner is None:
                        inner = prod
                    else:
                        self._ev.add_inplace(inner, prod)
                if inner is None:
                    continue
                if ci * h * w + dy * w:
                    self._ev.rotate_vector_inplace(inner, ci * h * w + dy * w, self._galois)
                if total is None:
                    total = inner
                else:
                    self._ev.add_inplace(total, inner)
        assert total is not None  # a convolution with no weight has no live unit
        self._ev.rescale_to_next_inplace(total)
        return total

    def _diagonal_layouts(self) -> dict[str, NDArray[np.float64]]:
        p, slots = self.plan, self.parameters.slots
        layouts: dict[str, NDArray[np.float64]] = {}
        first = 1 if p.layout == "conv" else 0
        for i, (w, b, (rows, width, n1)) in enumerate(
            zip(p.weights[first:], p.biases[first:], p.diagonal_layers, strict=True), first
        ):
            m = np.zeros((rows, width))
            if i and i == first:  # after the convolution: its units sit at their slots
                m[: w.shape[1], self._conv_placement()] = w.T
            else:
                m[: w.shape[1], : w.shape[0]] = w.T
            layouts |= self._diagonals(f"w{i}", m, width, n1)
            # rows-periodic like the output it is added to: every period of the answer
            # holds the logits, none shows them without the bias
            tiled = np.zeros(rows)
            tiled[: len(b)] = b
            layouts[f"b{i}"] = np.tile(tiled, slots // rows)
        return layouts

    def _diagonal_product(
        self, ct: Any, name: str, rows: int, n1: int, scale: float | None = None
    ) -> Any:
        """Σ_g rot(Σ_b D'_{g,b} ⊙ rot(ct, b), g n1), the diagonals encoded at ``scale``
        (by default the plan's), rescaled once."""
        babies: dict[int, Any] = {0: ct}
        total = None
        for g in range(-(-rows // n1)):
            inner = None
            for b in range(min(n1, rows - g * n1)):
                key = f"{name}:{g}:{b}"
                if key not in self._layouts:
                    continue
                if b not in babies:
                    babies[b] = seal.Ciphertext()
                    self._ev.rotate_vector(ct, b, self._galois, babies[b])
                prod = seal.Ciphertext()
                self._ev.multiply_plain(babies[b], self._layout(key, ct, scale), prod)
                if inner is None:
                    inner = prod
                else:
                    self._ev.add_inplace(inner, prod)
            if inner is None:
                continue
            if g:
                self._ev.rotate_vector_inplace(inner, g * n1, self._galois)
            if total is None:
                total = inner
            else:
                self._ev.add_inplace(total, inner)
        assert total is not None  # the compiler refuses a layer with no weight
        self._ev.rescale_to_next_inplace(total)
        return total

    def _evaluate_diagonal(self, ct: Any) -> bytes:
        first = 0
        if self.plan.layout == "conv":
            ct = self._conv_product(ct)
            self._ev.add_plain_inplace(ct, self._layout("b0", ct, ct.scale))
            first = 1
        for i, (rows, width, n1) in enumerate(self.plan.diagonal_layers, first):
            scale = None
            if i and self.plan.fused:  # the square, unrescaled, meets weights at 2^60 / s
                scale = self._fused_scale(ct)
                self._ev.square_inplace(ct)
                self._ev.relinearize_inplace(ct, self._relin)
            elif i:
                ct = self._activate(ct, self.plan.activation(i - 1))
            ct = self._diagonal_product(ct, f"w{i}", rows, n1, scale)
            self._rotate_sum(ct, [rows << k for k in range((width // rows).bit_length() - 1)])
            self._ev.add_plain_inplace(ct, self._layout(f"b{i}", ct, ct.scale))
        return _save(ct)

    def _layout(self, name: str, ct: Any, scale: float | None = None) -> Any:
        """A layout encoded at the ciphertext's level and scale, encoded once."""
        key = (name, tuple(ct.parms_id()), scale or self.scale)
        if key not in self._cache:
            self._cache[key] = self._plain(self._layouts[name].tolist(), ct, scale)
        return self._cache[key]

    def _plain(self, values: Any, ct: Any, scale: float | None = None) -> Any:
        plain = seal.Plaintext()
        self._encoder.encode(values, ct.parms_id(), scale or self.scale, plain)
        return plain

    def _query(self, data: bytes) -> Any:
        if len(data) > MAX_QUERY_BYTES:
            raise BadCiphertext("query too large")
        ct = _load(seal.Ciphertext, self.context, data, "query")
        if ct.size() != 2 or ct.parms_id() != self.context.first_parms_id():
            raise BadCiphertext("query: not a fresh ciphertext of these parameters")
        if ct.is_transparent():
            raise BadCiphertext("query: a transparent ciphertext")
        # the scale travels with the ciphertext: any other than the plan's decodes wrong
        if not math.isclose(ct.scale, self.scale, rel_tol=1e-9):
            bits = math.log2(ct.scale) if ct.scale > 0 else float("nan")
            raise BadCiphertext(
                f"query: encoded at scale 2^{bits:.1f}, the plan's is "
                f"2^{self.parameters.scale_bits}"
            )
        return ct

    def _activate(self, ct: Any, p: float | None, *, relin: bool = True) -> Any:
        """x² (one level) or t·(t² + p) (two: the square plus p, then a product with t
        brought down to its level); every slot at once, so any layout.  ``relin=False``
        leaves a square unrelinearised (the caller relinearises later)."""
        square = seal.Ciphertext()
        self._ev.square(ct, square)
        if relin or p is not None:
            self._ev.relinearize_inplace(square, self._relin)
        self._ev.rescale_to_next_inplace(square)
        if p is None:
            return square
        self._ev.add_plain_inplace(square, self._plain(p, square, square.scale))
        self._ev.mod_switch_to_inplace(ct, square.parms_id())
        self._ev.multiply_inplace(square, ct)
        self._ev.relinearize_inplace(square, self._relin)
        self._ev.rescale_to_next_inplace(square)
        return square

    def _rotate_sum(self, ct: Any, steps: Sequence[int]) -> None:
        for step in steps:
            rotated = seal.Ciphertext()
            self._ev.rotate_vector(ct, step, self._galois, rotated)
            self._ev.add_inplace(ct, rotated)

    def evaluate_query(self, data: bytes) -> bytes:
        """Latency mode: one ciphertext in, one out (class k in slot k; for a regression,
        class k in the first slot of block k)."""
        ct = self._query(data)
        try:
            return self._evaluate_query(ct)
        except (RuntimeError, ValueError, TypeError) as exc:  # SEAL's, on this ciphertext
            raise BadCiphertext(f"query: cannot be evaluated ({type(exc).__name__})") from exc

    def _evaluate_query(self, ct: Any) -> bytes:
        p = self.plan
        if p.layout in ("diagonal", "conv"):
            return self._evaluate_diagonal(ct)
        within = [1 << k for k in range(p.period.bit_length() - 1)]
        across = [p.block << k for k in range((max(p.n_hidden, 1) - 1).bit_length())]
        self._ev.multiply_plain_inplace(ct, self._layout("w1", ct))
        self._ev.rescale_to_next_inplace(ct)
        self._rotate_sum(ct, within)
        self._ev.add_plain_inplace(ct, self._layout("b1", ct, ct.scale))
        if p.w2 is None:
            return _save(ct)
        # the square stays unrelinearised (three components) through the product with
        # the second layer and the rescales: relinearised at the last level, where a key
        # switch costs least
        if p.fused:
            self._square_times(ct, "w2")
        else:
            self._ev.square_inplace(ct)
            self._ev.rescale_to_next_inplace(ct)
            self._ev.multiply_plain_inplace(ct, self._layout("w2", ct))
            self._ev.rescale_to_next_inplace(ct)
        self._ev.relinearize_inplace(ct, self._relin)
        self._rotate_sum(ct, across)
        self._ev.add_plain_inplace(ct, self._layout("b2", ct, ct.scale))
        return _save(ct)

    def _fused_scale(self, ct: Any) -> float:
        """Fused chain: the scale of the second layer's weights for a ciphertext at scale
        s before its square — the 60-bit prime over s, so the product rescales to s."""
        data = self.context.get_context_data(ct.parms_id())
        return float(data.parms().coeff_modulus()[-1].value()) / float(ct.scale)

    def _square_times(self, ct: Any, name: str) -> None:
        """Fused chain: ct ← (ct² ⊙ layout) rescaled once by the 60-bit prime; left
        unrelinearised."""
        scale = self._fused_scale(ct)
        self._ev.square_inplace(ct)
        self._ev.multiply_plain_inplace(ct, self._layout(name, ct, scale))
        self._ev.rescale_to_next_inplace(ct)

    def evaluate_batch(self, data: Sequence[bytes]) -> list[bytes]:
        """Throughput mode: one ciphertext per feature in, one per class out."""
        p = self.plan
        if len(data) != p.n_features:
            raise BadCiphertext(f"a batch is {p.n_features} ciphertexts, one per feature")
        cts = [self._query(d) for d in data]
        try:
            return self._evaluate_batch(cts)
        except (RuntimeError, ValueError, TypeError) as exc:  # SEAL's, on these ciphertexts
            raise BadCiphertext(f"batch: cannot be evaluated ({type(exc).__name__})") from exc

    def _evaluate_batch(self, cts: list[Any]) -> list[bytes]:
        p = self.plan
        if p.fused:  # the square and the second layer share a prime
            hidden = self._dense(cts, p.w1, p.b1)
            scale = self._fused_scale(hidden[0])
            for c in hidden:
                self._ev.square_inplace(c)
            assert p.w2 is not None and p.b2 is not None
            out = self._dense(hidden, p.w2, p.b2, scale)
            for c in out:
                self._ev.relinearize_inplace(c, self._relin)
            return [_save(c) for c in out]
        layer = cts
        for i, (w, b) in enumerate(zip(p.weights, p.biases, strict=True)):
            # after x² the next layer's products and sums take the squares unrelinearised
            # (three components): its outputs are relinearised instead, 10 rather than
            # 256 for the Fashion-MNIST CNN
            lazy = i > 0 and p.activation(i - 1) is None
            if i:
                layer = [self._activate(c, p.activation(i - 1), relin=not lazy) for c in layer]
            layer = self._dense(layer, w, b)
            if lazy:
                for c in layer:
                    self._ev.relinearize_inplace(c, self._relin)
        return [_save(c) for c in layer]

    def _dense(
        self,
        cts: list[Any],
        w: NDArray[np.float64],
        b: NDArray[np.float64],
        scale: float | None = None,
    ) -> list[Any]:
        """Each output a sum of plaintext-scalar products (the weights encoded at
        ``scale``, by default the plan's), rescaled once (the compiler guarantees every
        output has a non-zero weight)."""
        out = []
        for j in range(w.shape[1]):
            acc = None
            for i, ct in enumerate(cts):
                if w[i, j] == 0.0:
                    continue
                prod = seal.Ciphertext()
                self._ev.multiply_plain(ct, self._plain(float(w[i, j]), ct, scale), prod)
                if acc is None:
                    acc = prod
                else:
                    self._ev.add_inplace(acc, prod)
            assert acc is not None
            self._ev.add_plain_inplace(acc, self._plain(float(b[j]), acc, acc.scale))
            self._ev.rescale_to_next_inplace(acc)
            out.append(acc)
        return out
