"""Homomorphically encrypted inference (CKKS, Microsoft SEAL through TenSEAL's ``sealapi``).

The client makes the keys and keeps the secret one; the provider gets only the public
evaluation keys (relinearisation, and Galois keys for exactly the rotations its plan uses)
and computes on ciphertexts.  A trained model is compiled into a plan:

- **logistic regression** (``x W + b``: depth 1) and **an MLP with one hidden layer and
  the x² activation** (``(x W1 + b1)² W2 + b2``: depth 3, trained with x² so that
  accuracy holds encrypted);
- parameters chosen from the depth: scale 2^40, one 40-bit prime per level, the smallest
  ring degree whose modulus stays within SEAL's 128-bit-security bound.

Two modes:

- **latency** — one query, one ciphertext.  The input is tiled into blocks of 128 slots
  (the 64 features twice), one block per hidden neuron; one plaintext product and a
  rotate-and-sum over 64 slots (6 rotations) leave every slot of block j holding neuron j;
  after x², one product with the second layer laid out per block and a rotate-and-sum
  across blocks (5 rotations) leave class k in slot k.  11 Galois keys, 3 levels.
- **throughput** — many queries, one ciphertext per feature with a query per slot; each
  neuron is a sum of plaintext-scalar products with one rescale, not one per product.

Bytes in and out are SEAL's own serialisation (via a temporary file: that is the only way
``sealapi`` offers); every load is checked against the provider's parameters, so a
malformed ciphertext, one from other parameters or another key set is refused with a
typed error.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chainml.errors import ChainmlError

try:
    import tenseal.sealapi as seal
except ImportError as exc:  # pragma: no cover - installed with chainml
    raise ChainmlError("homomorphic inference needs TenSEAL") from exc

SCALE_BITS = 40
MAX_BITS = {4096: 109, 8192: 218, 16384: 438, 32768: 881}  # SEAL's 128-bit bounds
BLOCK = 128
MAX_QUERY_BYTES = 4 << 20


class HEError(ChainmlError):
    """Homomorphic inference failed; the subclass says why."""


class BadCiphertext(HEError, ValueError):
    """Bytes that are not a ciphertext for these parameters (malformed, other parameters,
    too large, or the wrong number of them)."""


class UnsupportedModel(HEError):
    """A model this compiler has no plan for."""


@dataclass(frozen=True)
class HEParameters:
    poly_degree: int
    coeff_bits: tuple[int, ...]
    scale_bits: int = SCALE_BITS

    @classmethod
    def for_depth(cls, depth: int, scale_bits: int = SCALE_BITS) -> HEParameters:
        """The smallest ring whose modulus holds ``depth`` rescales at 128-bit security."""
        edge = scale_bits + 9  # first and last primes keep 9 bits of headroom over the scale
        bits = (edge, *([scale_bits] * depth), edge)
        for degree, limit in sorted(MAX_BITS.items()):
            if sum(bits) <= limit and degree // 2 >= BLOCK * 32:
                return cls(degree, bits, scale_bits)
        raise UnsupportedModel(f"depth {depth} needs more than SEAL's largest ring")

    def context(self) -> Any:
        parms = seal.EncryptionParameters(seal.SCHEME_TYPE.CKKS)
        parms.set_poly_modulus_degree(self.poly_degree)
        parms.set_coeff_modulus(seal.CoeffModulus.Create(self.poly_degree, list(self.coeff_bits)))
        return seal.SEALContext(parms, True, seal.SEC_LEVEL_TYPE.TC128)

    @property
    def slots(self) -> int:
        return self.poly_degree // 2


def _save(obj: Any) -> bytes:
    with tempfile.NamedTemporaryFile(delete=True) as fh:
        obj.save(fh.name)
        return open(fh.name, "rb").read()


def _load(kind: Callable[[], Any], context: Any, data: bytes, what: str) -> Any:
    if not isinstance(data, (bytes, bytearray)) or not data or len(data) > MAX_QUERY_BYTES * 16:
        raise BadCiphertext(f"{what}: empty or too large")
    obj = kind()
    with tempfile.NamedTemporaryFile(delete=True) as fh:
        fh.write(data)
        fh.flush()
        try:
            obj.load(context, fh.name)
        except (RuntimeError, ValueError, TypeError) as exc:
            raise BadCiphertext(f"{what}: not valid for these parameters") from exc
    if not seal.is_valid_for(obj, context):
        raise BadCiphertext(f"{what}: not valid for these parameters")
    return obj


def galois_elements(steps: Sequence[int], poly_degree: int) -> list[int]:
    """SEAL's Galois element for a left rotation by each step: 3^step mod 2N."""
    return [pow(3, step, 2 * poly_degree) for step in steps]


# -- plans ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanShape:
    """What a client needs of a provider's plan: parameters and Galois keys to make, and
    where the logits sit in the answer.  Published by the provider; no weights."""

    depth: int
    n_classes: int
    regression: bool
    rotations: tuple[int, ...]

    def to_doc(self) -> dict[str, Any]:
        return {
            "depth": self.depth,
            "n_classes": self.n_classes,
            "regression": self.regression,
            "rotations": list(self.rotations),
        }

    @classmethod
    def from_doc(cls, doc: Any) -> PlanShape:
        """Parse ``to_doc``'s form; ``ValueError`` if malformed."""
        try:
            return cls(
                int(doc["depth"]),
                int(doc["n_classes"]),
                bool(doc["regression"]),
                tuple(int(r) for r in doc["rotations"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a plan shape: {exc}") from None


@dataclass(frozen=True)
class Plan:
    """A model compiled for CKKS: weights in float64, and what the evaluation needs."""

    w1: NDArray[np.float64]
    b1: NDArray[np.float64]
    w2: NDArray[np.float64] | None  # None: logistic regression
    b2: NDArray[np.float64] | None

    @property
    def regression(self) -> bool:
        return self.w2 is None

    @property
    def shape(self) -> PlanShape:
        return PlanShape(self.depth, self.n_classes, self.regression, tuple(self.rotations))

    @property
    def depth(self) -> int:
        return 1 if self.w2 is None else 3

    @property
    def n_features(self) -> int:
        return int(self.w1.shape[0])

    @property
    def n_classes(self) -> int:
        return int((self.w1 if self.w2 is None else self.w2).shape[1])

    @property
    def rotations(self) -> list[int]:
        """The Galois steps latency mode uses: sum within a block, then across blocks."""
        within = [1 << k for k in range(int(np.log2(BLOCK // 2)))]
        blocks = self.w1.shape[1] if self.w2 is not None else 1
        across = [BLOCK << k for k in range(int(np.ceil(np.log2(max(blocks, 1)))))]
        return within + across

    def plaintext(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        z = x @ self.w1 + self.b1
        if self.w2 is None:
            return np.asarray(z)
        assert self.b2 is not None
        return np.asarray((z * z) @ self.w2 + self.b2)


def compile_model(params: dict[str, NDArray[np.float32]], activation: str | None = None) -> Plan:
    """A plan for a logistic regression (``w``, ``b``) or a one-hidden-layer MLP with the
    x² activation (``w0, b0, w1, b1``)."""
    p = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    if set(p) == {"w", "b"}:
        plan = Plan(p["w"], p["b"], None, None)
    elif set(p) == {"w0", "b0", "w1", "b1"}:
        if activation != "square":
            raise UnsupportedModel("CKKS evaluates the MLP only with the x² activation")
        plan = Plan(p["w0"], p["b0"], p["w1"], p["b1"])
    else:
        raise UnsupportedModel("a logistic regression or a one-hidden-layer MLP")
    if plan.n_features > BLOCK // 2 or (plan.w2 is not None and plan.w1.shape[1] > 32):
        raise UnsupportedModel("at most 64 features and 32 hidden neurons in one ciphertext")
    if plan.w2 is None and plan.n_classes > 32:
        raise UnsupportedModel("at most 32 classes")
    return plan


# -- the client: keys, encryption, decryption -------------------------------------------------


class HEClient:
    """Holds the secret key; gives the provider only public material."""

    def __init__(self, plan_depth: int, rotations: Sequence[int]) -> None:
        self.parameters = HEParameters.for_depth(plan_depth)
        self.context = self.parameters.context()
        keygen = seal.KeyGenerator(self.context)
        self._secret = keygen.secret_key()
        # the serialisable forms keep the seed of each key's uniform half: half the bytes
        self._relin = keygen.create_relin_keys()
        self._galois = keygen.create_galois_keys(
            galois_elements(rotations, self.parameters.poly_degree)
        )
        self._encoder = seal.CKKSEncoder(self.context)
        self._encryptor = seal.Encryptor(self.context, self._secret)
        self._decryptor = seal.Decryptor(self.context, self._secret)
        self.scale = 2.0**self.parameters.scale_bits

    def __repr__(self) -> str:  # never the secret key
        return f"HEClient(N={self.parameters.poly_degree})"

    def evaluation_keys(self) -> dict[str, bytes]:
        """What the provider receives: public evaluation keys, nothing secret."""
        return {"relin": _save(self._relin), "galois": _save(self._galois)}

    def _encrypt(self, values: NDArray[np.float64]) -> bytes:
        plain = seal.Plaintext()
        self._encoder.encode(values.astype(float).tolist(), self.scale, plain)
        # the serialisable form keeps the seed of the uniform half: half the bytes
        return _save(self._encryptor.encrypt_symmetric(plain))

    def encrypt_query(self, x: NDArray[np.float64]) -> bytes:
        """One input, tiled for latency mode."""
        row = np.zeros(BLOCK // 2)
        row[: len(x)] = x
        return self._encrypt(np.tile(row, self.parameters.slots // (BLOCK // 2)))

    def encrypt_batch(self, x: NDArray[np.float64]) -> list[bytes]:
        """Up to ``slots`` inputs, one ciphertext per feature."""
        if len(x) > self.parameters.slots:
            raise BadCiphertext(f"at most {self.parameters.slots} inputs per batch")
        return [self._encrypt(x[:, i]) for i in range(x.shape[1])]

    def _decrypt(self, data: bytes) -> NDArray[np.float64]:
        ct = _load(seal.Ciphertext, self.context, data, "result")
        plain = seal.Plaintext()
        self._decryptor.decrypt(ct, plain)
        return np.asarray(self._encoder.decode_double(plain))

    def decrypt_query(self, data: bytes, plan: Plan | PlanShape) -> NDArray[np.float64]:
        """The logits: slot k for the MLP, block k's first slot for a regression."""
        values = self._decrypt(data)
        if plan.regression:
            return values[: plan.n_classes * BLOCK : BLOCK]
        return values[: plan.n_classes]

    def decrypt_batch(self, data: Sequence[bytes], n: int) -> NDArray[np.float64]:
        return np.stack([self._decrypt(d)[:n] for d in data], axis=1)


# -- the provider: evaluation on ciphertexts only ---------------------------------------------


class HEProvider:
    """Evaluates a plan on ciphertexts with public keys only."""

    def __init__(self, plan: Plan, keys: dict[str, bytes]) -> None:
        self.plan = plan
        self.parameters = HEParameters.for_depth(plan.depth)
        self.context = self.parameters.context()
        self._relin = _load(seal.RelinKeys, self.context, keys["relin"], "relinearisation keys")
        self._galois = _load(seal.GaloisKeys, self.context, keys["galois"], "Galois keys")
        self._encoder = seal.CKKSEncoder(self.context)
        self._ev = seal.Evaluator(self.context)
        self.scale = 2.0**self.parameters.scale_bits
        self._layouts = self._latency_layouts()
        self._cache: dict[tuple[str, Any, float], Any] = {}

    def _latency_layouts(self) -> dict[str, list[float]]:
        """The plan's weights laid out in slots for latency mode (see the module doc)."""
        p, slots, half = self.plan, self.parameters.slots, BLOCK // 2
        neurons = p.w1.shape[1]
        w1 = np.zeros((slots // BLOCK, BLOCK))
        for j in range(neurons):
            column = np.zeros(half)
            column[: p.n_features] = p.w1[:, j]
            w1[j] = np.tile(column, 2)
        b1 = np.zeros((slots // BLOCK, BLOCK))
        b1[:neurons] = p.b1[:, None]
        layouts = {"w1": w1.ravel().tolist(), "b1": b1.ravel().tolist()}
        if p.w2 is not None and p.b2 is not None:
            w2 = np.zeros((slots // BLOCK, BLOCK))
            w2[:neurons, : p.n_classes] = p.w2
            b2 = np.zeros(slots)
            b2[: p.n_classes] = p.b2
            layouts |= {"w2": w2.ravel().tolist(), "b2": b2.tolist()}
        return layouts

    def _layout(self, name: str, ct: Any, scale: float | None = None) -> Any:
        """A layout encoded at the ciphertext's level and scale, encoded once."""
        key = (name, tuple(ct.parms_id()), scale or self.scale)
        if key not in self._cache:
            self._cache[key] = self._plain(self._layouts[name], ct, scale)
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
        return ct

    def _rotate_sum(self, ct: Any, steps: Sequence[int]) -> None:
        for step in steps:
            rotated = seal.Ciphertext()
            self._ev.rotate_vector(ct, step, self._galois, rotated)
            self._ev.add_inplace(ct, rotated)

    def evaluate_query(self, data: bytes) -> bytes:
        """Latency mode: one ciphertext in, one out (class k in slot k; for a regression,
        class k in the first slot of block k)."""
        p = self.plan
        ct = self._query(data)
        self._ev.multiply_plain_inplace(ct, self._layout("w1", ct))
        self._ev.rescale_to_next_inplace(ct)
        self._rotate_sum(ct, [1 << k for k in range(int(np.log2(BLOCK // 2)))])
        self._ev.add_plain_inplace(ct, self._layout("b1", ct, ct.scale))
        if p.w2 is None:
            return _save(ct)
        self._ev.square_inplace(ct)
        self._ev.relinearize_inplace(ct, self._relin)
        self._ev.rescale_to_next_inplace(ct)
        self._ev.multiply_plain_inplace(ct, self._layout("w2", ct))
        self._ev.rescale_to_next_inplace(ct)
        self._rotate_sum(ct, [BLOCK << k for k in range(int(np.ceil(np.log2(p.w1.shape[1]))))])
        self._ev.add_plain_inplace(ct, self._layout("b2", ct, ct.scale))
        return _save(ct)

    def evaluate_batch(self, data: Sequence[bytes]) -> list[bytes]:
        """Throughput mode: one ciphertext per feature in, one per class out."""
        p = self.plan
        if len(data) != p.n_features:
            raise BadCiphertext(f"a batch is {p.n_features} ciphertexts, one per feature")
        cts = [self._query(d) for d in data]
        layer = self._dense(cts, p.w1, p.b1)
        if p.w2 is None:
            return [_save(c) for c in layer]
        assert p.b2 is not None
        for c in layer:
            self._ev.square_inplace(c)
            self._ev.relinearize_inplace(c, self._relin)
            self._ev.rescale_to_next_inplace(c)
        return [_save(c) for c in self._dense(layer, p.w2, p.b2)]

    def _dense(self, cts: list[Any], w: NDArray[np.float64], b: NDArray[np.float64]) -> list[Any]:
        """Each output a sum of plaintext-scalar products, rescaled once."""
        out = []
        for j in range(w.shape[1]):
            acc = None
            for i, ct in enumerate(cts):
                if w[i, j] == 0.0:
                    continue
                prod = seal.Ciphertext()
                self._ev.multiply_plain(ct, self._plain(float(w[i, j]), ct), prod)
                if acc is None:
                    acc = prod
                else:
                    self._ev.add_inplace(acc, prod)
            if acc is None:
                raise UnsupportedModel(f"output {j} has no weight")
            self._ev.add_plain_inplace(acc, self._plain(float(b[j]), acc, acc.scale))
            self._ev.rescale_to_next_inplace(acc)
            out.append(acc)
        return out
