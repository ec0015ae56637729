"""Verifiable plain inference: a zero-knowledge proof (EZKL, Halo2 with KZG over BN254)
that an answer is the committed model applied to the client's input.

The statement, per row: *the circuit whose verifying key is ``vk`` maps the public input
``x`` (quantised at the bundle's input scale) to the public output ``y``*.  The model's
weights are fixed columns of the circuit (EZKL ``param_visibility = "fixed"``), so the
verifying key holds a polynomial commitment to them: a proof for any other weights fails
under this key.  The model's owner builds the public **bundle** (settings, verifying key,
SRS, the proof size) once when publishing and names it by CID in the sealed model's
manifest, whose CID is on chain (``Models.Version.manifest_cid``); the provider, which holds
the weights through its grant, rebuilds the proving key from the weights and the bundle
and refuses to serve proofs unless its verifying key is byte for byte the bundle's.

- ``build_bundle`` (the owner): ONNX from the weights, EZKL settings, the circuit, keys,
  and one proof of a zero input as a self-check; returns the bundle and a prover.
- ``ZkProver`` (the provider): ``prove(row) -> (outputs, proof)``.
- ``ZkVerifier`` (the client): ``verify(row, outputs, proof) -> logits``; raises.
- ``pack_answer`` / ``unpack_answer``: the proven answer's wire form (safetensors).

Wire formats and the security argument: ``docs/protocol/zk-inference.md``.  EZKL reads and
writes files only, so each step works in a private temporary directory; the structured
reference string (SRS) is generated here (``SrsCache``), never fetched.  Who generates it
must not be the provider: KZG is sound only while nobody knows the SRS's trapdoor, so it
is the owner, at publication, and the SRS travels in the bundle.

Errors: ``ZkError`` (a ``ChainmlError``) and below it ``ZkUnavailable`` (EZKL not
installed), ``UnsupportedModel``, ``MalformedBundle``, ``BundleMismatch`` (a provider's
keys are not the bundle's), ``MalformedProof`` (an answer of the wrong form: truncated,
oversized, not canonical) and ``InvalidProof`` (well formed, does not verify).
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from numpy.typing import NDArray
from safetensors import SafetensorError
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from chainml.crypto.hashing import keccak256
from chainml.errors import ChainmlError
from chainml.storage.cid import RAW, parse_cid
from chainml.storage.errors import StorageError
from chainml.storage.sealed import Manifest
from chainml.storage.unixfs import file_cid

BUNDLE_MAGIC = b"CMZK"
BUNDLE_VERSION = 1
CONTEXT = b"chainml/zkml/v1"
# the BN254 scalar field: EZKL's public inputs and outputs are its elements
FIELD = 21888242871839275222246405745257275088548364400416034343698204186575808495617
MAX_SECTION = 64 << 20  # a bundle's settings, verifying key or SRS
MAX_PROOF = 1 << 20
EZKL_VERSION = "23.0.5"  # the version bundles are built and checked with


class ZkError(ChainmlError):
    """Proving or verifying an inference failed; the subclass says why."""


class ZkUnavailable(ZkError):
    """EZKL is not installed (``pip install 'chainml[zk]'``)."""


class UnsupportedModel(ZkError, ValueError):
    """A model this module has no circuit for (only MLPs and softmax regressions)."""


class MalformedBundle(ZkError, ValueError):
    """Bytes that are not a verification bundle of the known format."""


class BundleMismatch(ZkError):
    """The weights at hand do not give the bundle's verifying key (another model)."""


class MalformedProof(ZkError, ValueError):
    """An answer or a proof of the wrong form: truncated, oversized or not canonical."""


class InvalidProof(ZkError):
    """A well-formed proof that does not verify for this input and output."""


MEMORY_DIR = Path("/dev/shm")  # noqa: S108 - a memory-backed directory, when there is one


def private_dir(workdir: Path | None = None) -> Path | None:
    """Where files that hold weights go: ``workdir`` if given, else a memory-backed
    directory (``/dev/shm``) where there is one, so the weights EZKL must read from files do
    not reach a disk; else the system's temporary directory."""
    if workdir is not None:
        return workdir
    if MEMORY_DIR.is_dir() and os.access(MEMORY_DIR, os.W_OK | os.X_OK):
        return MEMORY_DIR
    return None


# EZKL's long steps hold the GIL for seconds (a proof: ~4 s in which no other thread of the
# process runs), which would stall a provider node's API and workers; they run in a child
# process instead, reading and writing files only (nothing crosses the boundary pickled).
_CHILD = """
import sys
import ezkl
op, args = sys.argv[1], sys.argv[2:]
try:
    if op == "srs":
        ezkl.gen_srs(args[0], int(args[1]))
    elif op == "setup":
        ezkl.compile_circuit(args[0], args[1], args[2])
        ezkl.setup(args[1], args[3], args[4], args[5])
    elif op == "prove":
        ezkl.gen_witness(args[0], args[1], args[2])
        ezkl.prove(args[2], args[1], args[3], args[4], args[5])
    else:
        sys.exit(2)
except RuntimeError as exc:
    sys.stderr.write(str(exc))
    sys.exit(3)
"""
CHILD_TIMEOUT = 1800.0  # seconds for one step (an SRS of 2^20 takes minutes)


class StepFailed(RuntimeError):
    """An EZKL step in the child process refused its input (its message)."""


def _in_child(op: str, *args: object) -> None:
    """One EZKL step (``srs``, ``setup`` or ``prove``) in a child process; raises
    ``StepFailed`` with EZKL's message if EZKL refused, ``ZkError`` if the child died."""
    _ezkl()  # installed at all: the child would fail the same way, less clearly
    try:
        done = subprocess.run(
            [sys.executable, "-c", _CHILD, op, *map(str, args)],
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise ZkError(f"EZKL {op} took over {CHILD_TIMEOUT:g} s") from None
    if done.returncode == 3:
        raise StepFailed(done.stderr.strip()[-500:])
    if done.returncode != 0:
        raise ZkError(f"EZKL {op} failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")


def _ezkl() -> ModuleType:
    try:
        import ezkl
    except ImportError as exc:  # an optional dependency: the zk extra
        raise ZkUnavailable("EZKL is not installed: pip install 'chainml[zk]'") from exc
    return ezkl


# -- the model as ONNX --------------------------------------------------------------------


def model_onnx(params: Mapping[str, NDArray[Any]], activation: str | None) -> bytes:
    """The ONNX graph (opset 13) of a softmax regression (``w``, ``b``) or an MLP (``w0, b0,
    …``, ``relu`` or ``square`` between layers) on one row: ``x[1, n] → logits[1, k]``.
    Built node by node from the weights (float32), so the same weights give the same
    graph byte for byte."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as exc:
        raise ZkUnavailable("onnx is not installed: pip install 'chainml[zk]'") from exc
    if set(params) == {"w", "b"}:
        names = [("w", "b")]
    else:
        layers = len(params) // 2
        names = [(f"w{i}", f"b{i}") for i in range(layers)]
        if layers < 1 or set(params) != {n for pair in names for n in pair}:
            raise UnsupportedModel("neither a softmax regression nor an MLP")
        if layers > 1 and activation not in ("relu", "square"):
            raise UnsupportedModel(f"activation {activation!r}: only relu and square")
    weights = []
    for w, b in names:
        wa = np.asarray(params[w], dtype=np.float32)
        ba = np.asarray(params[b], dtype=np.float32)
        if wa.ndim != 2 or ba.shape != (wa.shape[1],) or not np.isfinite(wa).all():
            raise UnsupportedModel(f"layer {w}: weights of shape {wa.shape}, bias {ba.shape}")
        if not np.isfinite(ba).all():
            raise UnsupportedModel(f"layer {b}: bias not finite")
        weights.append((w, wa, b, ba))
    for (_, prev, _, _), (name, nxt, _, _) in itertools.pairwise(weights):
        if prev.shape[1] != nxt.shape[0]:
            raise UnsupportedModel(f"layer {name} does not take the previous layer's output")
    nodes, inits, h = [], [], "x"
    for i, (w, wa, b, ba) in enumerate(weights):
        inits += [numpy_helper.from_array(wa, w), numpy_helper.from_array(ba, b)]
        nodes.append(helper.make_node("MatMul", [h, w], [f"m{i}"]))
        out = "logits" if i == len(weights) - 1 else f"z{i}"
        nodes.append(helper.make_node("Add", [f"m{i}", b], [out]))
        if out != "logits":
            h = f"a{i}"
            if activation == "relu":
                nodes.append(helper.make_node("Relu", [out], [h]))
            else:
                nodes.append(helper.make_node("Mul", [out, out], [h]))
    n, k = weights[0][1].shape[0], weights[-1][1].shape[1]
    graph = helper.make_graph(
        nodes,
        "chainml-model",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, n])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, k])],
        inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="chainml"
    )
    onnx.checker.check_model(model)
    return bytes(model.SerializeToString())


# -- the structured reference string -------------------------------------------------------


class SrsCache:
    """KZG structured reference strings generated locally, one per ``logrows``, kept in
    ``directory`` (generating one takes seconds to minutes; nothing is downloaded)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._lock = threading.Lock()

    def path(self, logrows: int) -> Path:
        if not 1 <= logrows <= 26:
            raise ValueError("logrows is 1 to 26")
        target = self.directory / f"kzg{logrows}.srs"
        with self._lock:
            if not target.exists():
                self.directory.mkdir(parents=True, exist_ok=True)
                tmp = self.directory / f".kzg{logrows}.{os.getpid()}.tmp"
                _in_child("srs", tmp, logrows)
                os.replace(tmp, target)  # whole or not at all
        return target


# -- the public bundle ---------------------------------------------------------------------


@dataclass(frozen=True)
class CircuitConfig:
    """EZKL's run arguments chainml sets: fixed-point scale (bits after the point) of the
    inputs and the weights, the circuit's size (2^logrows rows) and the base and legs of
    the decomposition that range-checks rescaled values (base^legs must exceed every
    intermediate value at the scale)."""

    scale: int = 8
    logrows: int = 12
    decomp_base: int = 2048
    decomp_legs: int = 3


@dataclass(frozen=True)
class ZkBundle:
    """What a client needs to verify proofs of one model version: EZKL's settings (JSON),
    the verifying key, the SRS and the size every proof of this circuit has."""

    settings: bytes
    vk: bytes
    srs: bytes
    proof_len: int
    # read from the settings
    n_inputs: int = field(init=False)
    n_outputs: int = field(init=False)
    input_scale: int = field(init=False)
    output_scale: int = field(init=False)
    logrows: int = field(init=False)

    def __post_init__(self) -> None:
        try:
            doc = json.loads(self.settings)
            args = doc["run_args"]
            shapes = doc["model_instance_shapes"]
            ok = (
                args["input_visibility"] == "Public"
                and args["output_visibility"] == "Public"
                and args["param_visibility"] == "Fixed"
                and len(shapes) == 2
                and all(len(s) == 2 and s[0] == 1 for s in shapes)
                and len(doc["model_input_scales"]) == 1
                and len(doc["model_output_scales"]) == 1
            )
            info = {
                "n_inputs": int(shapes[0][1]),
                "n_outputs": int(shapes[1][1]),
                "input_scale": int(doc["model_input_scales"][0]),
                "output_scale": int(doc["model_output_scales"][0]),
                "logrows": int(args["logrows"]),
            }
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise MalformedBundle(f"settings: {type(exc).__name__}") from None
        if not ok:
            raise MalformedBundle(
                "settings: the input and output must be public, the weights fixed, and the "
                "model one row in, one row out"
            )
        if not (
            0 < info["n_inputs"] <= 1 << 16
            and 0 < info["n_outputs"] <= 1 << 16
            and 0 <= info["input_scale"] <= 32
            and 0 <= info["output_scale"] <= 64
            and 1 <= info["logrows"] <= 26
        ):
            raise MalformedBundle("settings: shapes, scales or size out of range")
        if not (0 < self.proof_len <= MAX_PROOF and self.vk and self.srs):
            raise MalformedBundle("no verifying key or SRS, or a proof size out of range")
        for name, value in info.items():
            object.__setattr__(self, name, value)

    def encode(self) -> bytes:
        """``"CMZK" || u8 1 || u32 proof_len || (u32 len || bytes)`` for the settings, the
        verifying key and the SRS, in that order; integers big-endian."""
        out = [BUNDLE_MAGIC, bytes([BUNDLE_VERSION]), struct.pack(">I", self.proof_len)]
        for part in (self.settings, self.vk, self.srs):
            out += [struct.pack(">I", len(part)), part]
        return b"".join(out)

    @classmethod
    def decode(cls, raw: bytes) -> ZkBundle:
        if len(raw) < 9 or raw[:4] != BUNDLE_MAGIC or raw[4] != BUNDLE_VERSION:
            raise MalformedBundle("not a chainml verification bundle (v1)")
        (proof_len,) = struct.unpack(">I", raw[5:9])
        parts, at = [], 9
        for name in ("settings", "verifying key", "SRS"):
            if at + 4 > len(raw):
                raise MalformedBundle(f"truncated before the {name}")
            (size,) = struct.unpack(">I", raw[at : at + 4])
            if size > MAX_SECTION or at + 4 + size > len(raw):
                raise MalformedBundle(f"the {name} runs past the end")
            parts.append(raw[at + 4 : at + 4 + size])
            at += 4 + size
        if at != len(raw):
            raise MalformedBundle("bytes after the SRS")
        return cls(parts[0], parts[1], parts[2], proof_len)

    def digest(self) -> bytes:
        """keccak256 of the encoding under chainml's label: names the bundle in logs."""
        return keccak256(CONTEXT + self.encode())

    def write(self, directory: Path) -> tuple[Path, Path, Path]:
        """The settings, verifying key and SRS as files (EZKL reads only files)."""
        paths = directory / "settings.json", directory / "vk.key", directory / "kzg.srs"
        for path, data in zip(paths, (self.settings, self.vk, self.srs), strict=True):
            path.write_bytes(data)
        return paths


def content_matches(cid: str, data: bytes) -> bool:
    """Whether ``data`` is the blob ``cid`` names (a raw block, or a file as ``ipfs add``
    builds it), whoever handed it over."""
    try:
        parsed = parse_cid(cid)
    except StorageError:
        return False
    if parsed.codec == RAW:
        return parsed.matches(data)
    return file_cid(data).multihash == parsed.multihash


def committed_bundle(manifest_cid: str, fetch: Callable[[str], bytes]) -> tuple[ZkBundle, str]:
    """(the bundle, its CID) that the model version whose manifest CID is on chain commits
    to: the manifest and the bundle are fetched from anyone (``fetch(cid)``) and each
    checked against its CID.  Raises ``MalformedBundle`` if the manifest names none or a
    blob is not the one its CID names."""
    raw = fetch(manifest_cid)
    if not content_matches(manifest_cid, raw):
        raise MalformedBundle("the manifest handed over is not the one on chain")
    try:
        manifest = Manifest.decode(raw)
    except StorageError as exc:
        raise MalformedBundle(f"the manifest: {exc}") from None
    if not manifest.zk_bundle:
        raise MalformedBundle("this model version was published without a proof bundle")
    blob = fetch(manifest.zk_bundle)
    if not content_matches(manifest.zk_bundle, blob):
        raise MalformedBundle("the bundle handed over is not the one the manifest names")
    return ZkBundle.decode(blob), manifest.zk_bundle


# -- field elements ------------------------------------------------------------------------


def felt(value: int) -> str:
    """A signed integer as EZKL writes a field element: 32 bytes little-endian, hex."""
    return (value % FIELD).to_bytes(32, "little").hex()


def felt_value(text: str) -> int:
    """EZKL's field element back to a signed integer (above (p-1)/2: negative)."""
    v = int.from_bytes(bytes.fromhex(text), "little")
    if v >= FIELD:
        raise MalformedProof("a field element past the modulus")
    return v - FIELD if v > FIELD // 2 else v


def input_felts(row: NDArray[Any], scale: int) -> list[str]:
    """The public input: each value (float32) quantised as EZKL quantises it."""
    ezkl = _ezkl()
    kind = ezkl.PyInputType.F32
    return [str(ezkl.float_to_felt(float(v), scale, kind)) for v in np.asarray(row, np.float32)]


# -- the prover ----------------------------------------------------------------------------


class ZkProver:
    """The provider's side: proofs that the bundle's circuit maps a row to its logits.

    Holds the compiled circuit and the proving key (which contain the weights) in a private
    temporary directory (``private_dir``: in memory where it can), removed by ``close``;
    one proof at a time."""

    def __init__(
        self,
        bundle: ZkBundle,
        params: Mapping[str, NDArray[Any]],
        activation: str | None,
        *,
        workdir: Path | None = None,
    ) -> None:
        _ezkl()
        self.bundle = bundle
        self._dir = Path(tempfile.mkdtemp(prefix="chainml-zk-", dir=private_dir(workdir)))
        self._lock = threading.Lock()
        try:
            onnx_path = self._dir / "model.onnx"
            onnx_path.write_bytes(model_onnx(params, activation))
            self._settings, self._vk, self._srs = bundle.write(self._dir)
            self._circuit = self._dir / "model.compiled"
            self._pk = self._dir / "pk.key"
            mine = self._dir / "mine.vk"
            try:
                _in_child(
                    "setup", onnx_path, self._circuit, self._settings, mine, self._pk, self._srs
                )
            except StepFailed as exc:
                raise BundleMismatch(
                    f"the weights do not fit the bundle's circuit: {exc}"
                ) from None
            if mine.read_bytes() != bundle.vk:
                raise BundleMismatch("these weights give another verifying key than the bundle's")
        except BaseException:
            self.close()
            raise

    def prove(self, row: NDArray[Any]) -> tuple[NDArray[np.int64], bytes]:
        """(the quantised logits, the proof) for one row of ``n_inputs`` float32 values."""
        x = np.asarray(row, dtype=np.float32)
        if x.shape != (self.bundle.n_inputs,) or not np.isfinite(x).all():
            raise ValueError(f"one row of {self.bundle.n_inputs} finite values")
        with self._lock:
            work = Path(tempfile.mkdtemp(dir=self._dir))
            try:
                data, witness, proof = work / "input.json", work / "witness.json", work / "p.json"
                data.write_text(json.dumps({"input_data": [[float(v) for v in x]]}))
                try:
                    _in_child("prove", data, self._circuit, witness, self._pk, proof, self._srs)
                except StepFailed as exc:
                    raise ZkError(f"EZKL could not prove: {exc}") from None
                doc = json.loads(proof.read_text())
            finally:
                shutil.rmtree(work, ignore_errors=True)
        instances = doc["instances"][0]
        outputs = np.array(
            [felt_value(v) for v in instances[self.bundle.n_inputs :]], dtype=np.int64
        )
        return outputs, bytes(doc["proof"])

    @property
    def proving_key_size(self) -> int:
        """Bytes of the proving key on disk (it never leaves the provider)."""
        return self._pk.stat().st_size

    def close(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> ZkProver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def build_bundle(
    params: Mapping[str, NDArray[Any]],
    activation: str | None,
    *,
    srs: SrsCache,
    config: CircuitConfig | None = None,
    workdir: Path | None = None,
) -> tuple[ZkBundle, ZkProver]:
    """The owner's side, at publication: the bundle for these weights (with an SRS made
    here) and a prover for them.  Proves and verifies a zero input as a self-check, which
    also fixes the proof size the bundle records."""
    ezkl = _ezkl()
    cfg = config or CircuitConfig()
    work = Path(tempfile.mkdtemp(prefix="chainml-zkbuild-", dir=private_dir(workdir)))
    try:
        onnx_path, settings = work / "model.onnx", work / "settings.json"
        onnx_path.write_bytes(model_onnx(params, activation))
        args = ezkl.PyRunArgs()
        args.input_visibility, args.output_visibility = "public", "public"
        args.param_visibility = "fixed"
        args.input_scale = args.param_scale = cfg.scale
        args.logrows = cfg.logrows
        args.decomp_base, args.decomp_legs = cfg.decomp_base, cfg.decomp_legs
        try:
            ezkl.gen_settings(str(onnx_path), str(settings), py_run_args=args)
            circuit, vk, pk = work / "model.compiled", work / "vk.key", work / "pk.key"
            srs_path = srs.path(cfg.logrows)
            _in_child("setup", onnx_path, circuit, settings, vk, pk, srs_path)
        except (RuntimeError, StepFailed) as exc:
            raise UnsupportedModel(f"EZKL: {exc}") from None
        draft = ZkBundle(settings.read_bytes(), vk.read_bytes(), srs_path.read_bytes(), MAX_PROOF)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    prover = ZkProver(draft, params, activation, workdir=workdir)
    try:
        zero = np.zeros(draft.n_inputs, dtype=np.float32)
        outputs, proof = prover.prove(zero)
        bundle = ZkBundle(draft.settings, draft.vk, draft.srs, len(proof))
        prover.bundle = bundle
        ZkVerifier(bundle, workdir=workdir).verify(zero, outputs, proof)
    except BaseException:
        prover.close()
        raise
    return bundle, prover


# -- the verifier --------------------------------------------------------------------------


class ZkVerifier:
    """The client's side: checks a proof against the bundle and the row it sent."""

    def __init__(self, bundle: ZkBundle, *, workdir: Path | None = None) -> None:
        _ezkl()
        self.bundle = bundle
        self._workdir = workdir

    def verify(self, row: NDArray[Any], outputs: NDArray[Any], proof: bytes) -> NDArray[np.float64]:
        """The logits ``outputs`` stand for, once ``proof`` shows that the bundle's circuit
        maps ``row`` (the float32 values the client sent) to them; raises
        ``MalformedProof`` for a proof or outputs of the wrong form, ``InvalidProof`` if it
        does not verify."""
        b = self.bundle
        x = np.asarray(row, dtype=np.float32)
        if x.shape != (b.n_inputs,):
            raise ValueError(f"one row of {b.n_inputs} values")
        y = np.asarray(outputs)
        if y.shape != (b.n_outputs,) or y.dtype != np.int64:
            raise MalformedProof(f"outputs: {b.n_outputs} int64 values, not {y.dtype}{y.shape}")
        if len(proof) != b.proof_len:
            raise MalformedProof(
                f"a proof of this circuit is {b.proof_len} bytes, not {len(proof)}"
            )
        instances = input_felts(x, b.input_scale) + [felt(int(v)) for v in y]
        ezkl = _ezkl()
        work = Path(tempfile.mkdtemp(prefix="chainml-zkv-", dir=self._workdir))
        try:
            settings, vk, srs = b.write(work)
            path = work / "proof.json"
            path.write_text(json.dumps({"instances": [instances], "proof": list(proof)}))
            try:
                ok = ezkl.verify(str(path), str(settings), str(vk), str(srs))
            except RuntimeError as exc:  # halo2: not satisfied, bad point encoding, ...
                raise InvalidProof(f"the proof does not verify: {_reason(exc)}") from None
        finally:
            shutil.rmtree(work, ignore_errors=True)
        if ok is not True:
            raise InvalidProof("the proof does not verify")
        return y.astype(np.float64) * 2.0**-b.output_scale


def _reason(exc: Exception) -> str:
    text = str(exc)
    return text.split("[halo2]", 1)[-1].strip()[:120] if "[halo2]" in text else "rejected"


# -- the answer on the wire ----------------------------------------------------------------


def pack_answer(outputs: NDArray[np.int64], proofs: list[bytes]) -> bytes:
    """A proven answer: safetensors with ``outputs`` (int64, rows × classes: the quantised
    logits) and ``proofs`` (uint8, rows × proof size)."""
    width = len(proofs[0]) if proofs else 0
    if any(len(p) != width for p in proofs):
        raise ValueError("every proof of one circuit has the same size")
    table = np.frombuffer(b"".join(proofs), dtype=np.uint8).reshape(len(proofs), width)
    arrays: dict[str, NDArray[Any]] = {
        "outputs": np.ascontiguousarray(outputs, dtype=np.int64),
        "proofs": table,
    }
    return bytes(st_save(arrays))


def unpack_answer(
    blob: bytes, bundle: ZkBundle, rows: int
) -> tuple[NDArray[np.int64], list[bytes]]:
    """``pack_answer``'s form for ``rows`` rows of this bundle's model; ``MalformedProof``
    for anything else."""
    try:
        arrays = dict(st_load(blob))
    except (SafetensorError, ValueError, OSError):
        raise MalformedProof("not a safetensors answer") from None
    if sorted(arrays) != ["outputs", "proofs"]:
        raise MalformedProof("a proven answer holds exactly outputs and proofs")
    outputs, proofs = arrays["outputs"], arrays["proofs"]
    if outputs.dtype != np.int64 or outputs.shape != (rows, bundle.n_outputs):
        raise MalformedProof(
            f"outputs: int64 {rows}×{bundle.n_outputs}, not {outputs.dtype}{outputs.shape}"
        )
    if proofs.dtype != np.uint8 or proofs.shape != (rows, bundle.proof_len):
        raise MalformedProof(
            f"proofs: uint8 {rows}×{bundle.proof_len}, not {proofs.dtype}{proofs.shape}"
        )
    return outputs, [bytes(p) for p in proofs]
