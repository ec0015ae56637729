"""Paid inference between a client and a provider: the wire format, and the provider's
state machine.

A request is ``b"CMLQ" || u32 header length || header (JSON) || body``.  The header names
the client and the provider, the model version, the mode, the client's HE key set (for
``he`` and ``he-batch``), the client's X25519 reply key (for ``plain``), a timestamp, a
random nonce and the body's hash; the client signs it as EIP-712 typed data under the
domain ``{name: "chainml-inference", chainId, verifyingContract: Receipts}``.  The request
hash a receipt names is that digest, so it covers the body.

Modes:

- ``plain`` — the body is the input (safetensors, ``x``: rows × features) sealed with HPKE
  to the provider's registered X25519 key; the answer (``logits``) is sealed to the reply
  key.  Only the two ends see either.
- ``plain-zk`` — the same, for a model published with a proof bundle; the sealed answer is
  the quantised logits and one zero-knowledge proof per row that the committed model maps
  that row to them (``chainml.inference.zkml``, ``docs/protocol/zk-inference.md``).
- ``he-keys`` — the body is the client's public CKKS evaluation keys; the provider keeps
  them (a few clients' worth) under the key set's hash.  Free, but only for a client that
  could pay for a query.
- ``he`` — one CKKS ciphertext (latency mode) under that key set; ``he-batch`` — one
  ciphertext per feature (throughput mode).
- ``he-part`` and ``he-batch-end`` — a throughput-mode batch too large for one request
  (784 pixels: about 130 MB) in several: each ``he-part`` carries the ciphertexts of the
  next features (``u32 offset || blobs``), free but only for a client that could pay for
  the batch, answered with the running hash of the parts; the ``he-batch-end`` names that
  hash (``hash || u32 offset || blobs``), carries the last features, and is answered and
  billed as one batch.  The provider holds one pending batch per client key set, within
  ``Limits.max_pending`` bytes in all.

A response is ``b"CMLR" || u32 receipt length || receipt (JSON) || body``; the receipt is
the provider's signature over the request hash, the body's hash, the price and a
per-client counter (``chainml.inference.receipts``).

``InferenceService.handle`` checks, cheapest first: size and form, provider, model,
freshness, the signature, the nonce (replays, recorded only once the signature holds),
the client's prepaid balance on chain less what it already owes, and then the body.  Each
refusal is an ``InferenceRefused`` subclass with a ``cause`` and an HTTP status.  The
ledger view, receipt ledger, replay cache and clock are injected; nothing here sends a
transaction.
"""

from __future__ import annotations

import json
import os
import struct
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray
from safetensors import SafetensorError
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from chainml.crypto import wire
from chainml.crypto.eip712 import INFERENCE_REQUEST
from chainml.crypto.errors import CryptoError
from chainml.crypto.hashing import keccak256
from chainml.crypto.hpke import open_sealed, seal
from chainml.crypto.keys import AccountKey, X25519KeyPair, recover_address
from chainml.errors import ChainmlError
from chainml.inference.he import HEError, HEProvider, Plan
from chainml.inference.receipts import RECEIPT_SCHEMA, Receipt
from chainml.inference.zkml import ZkError, ZkProver, pack_answer

REQUEST_MAGIC, RESPONSE_MAGIC = b"CMLQ", b"CMLR"
MODES = ("plain", "plain-zk", "he-keys", "he", "he-batch", "he-part", "he-batch-end")
MAX_HEADER = 4096
FRAME = 8  # magic and the header's length, before the header
ZERO32 = bytes(32)


class InferenceRefused(ChainmlError):
    """A request the provider refuses; ``cause`` names why, ``status`` is the HTTP code."""

    cause, status = "refused", 400


class MalformedRequest(InferenceRefused):
    cause, status = "malformed", 400


class OversizedRequest(InferenceRefused):
    cause, status = "oversized", 413


class WrongProvider(InferenceRefused):
    cause, status = "wrong_provider", 421


class WrongModel(InferenceRefused):
    cause, status = "wrong_model", 409


class StaleRequest(InferenceRefused):
    cause, status = "stale", 400


class ForgedRequest(InferenceRefused):
    cause, status = "bad_signature", 401


class ReplayedRequest(InferenceRefused):
    cause, status = "replayed", 409


class InsufficientBalance(InferenceRefused):
    cause, status = "insufficient_balance", 402


class UnknownKeySet(InferenceRefused):
    cause, status = "unknown_key_set", 428


class BadInput(InferenceRefused):
    cause, status = "bad_input", 400


class ModeUnavailable(InferenceRefused):
    cause, status = "mode_unavailable", 501


CAUSES = tuple(
    c.cause
    for c in (
        MalformedRequest,
        OversizedRequest,
        WrongProvider,
        WrongModel,
        StaleRequest,
        ForgedRequest,
        ReplayedRequest,
        InsufficientBalance,
        UnknownKeySet,
        BadInput,
        ModeUnavailable,
    )
)


# -- the wire ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestHeader:
    client: str
    provider: str
    model_version: int
    mode: str
    key_set: bytes  # keccak of the HE evaluation keys, or zero
    reply_key: bytes  # the client's X25519 public key for a sealed answer, or zero
    timestamp: int
    nonce: bytes
    body_hash: bytes

    def digest(self, chain_id: int, receipts: str) -> bytes:
        """The EIP-712 digest the client signs: also the request hash on receipts."""
        return INFERENCE_REQUEST.digest(
            chain_id,
            receipts,
            self.client,
            self.provider,
            self.model_version,
            self.mode,
            self.key_set,
            self.reply_key,
            self.timestamp,
            self.nonce,
            self.body_hash,
        )

    def seal_info(self) -> bytes:
        return seal_info(self.client, self.provider, self.nonce)


def seal_info(client: str, provider: str, nonce: bytes) -> bytes:
    """HPKE ``info`` for a plain body: binds it to the client, the provider and the nonce."""
    return b"chainml-infer/" + bytes.fromhex(client[2:] + provider[2:]) + nonce


def _frame(magic: bytes, doc: dict[str, Any], body: bytes) -> bytes:
    head = json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
    return magic + struct.pack(">I", len(head)) + head + body


def _unframe(
    magic: bytes, raw: bytes, schema: Sequence[tuple[str, wire.Check]], error: type[ChainmlError]
) -> tuple[dict[str, Any], bytes]:
    """The frame's header parsed against ``schema``: its one canonical spelling only (sorted
    keys, no whitespace, lower-case hex, EIP-55 addresses), so no two readers of one
    message can read it differently."""
    if len(raw) < FRAME or raw[:4] != magic:
        raise error("not a chainml inference message")
    (size,) = struct.unpack(">I", raw[4:8])
    if size > MAX_HEADER or FRAME + size > len(raw):
        raise error("bad header length")
    try:
        doc = wire.decode(raw[FRAME : FRAME + size], schema)
    except wire.WireError as exc:
        raise error(f"not a canonical header: {exc}") from None
    return doc, raw[FRAME + size :]


REQUEST_SCHEMA = (  # sorted keys: the order _frame writes
    ("body_hash", wire.hex_bytes(32)),
    ("client", wire.address),
    ("key_set", wire.hex_bytes(32)),
    ("mode", wire.text(16)),
    ("model_version", wire.uint(256)),
    ("nonce", wire.hex_bytes(32)),
    ("provider", wire.address),
    ("reply_key", wire.hex_bytes(32)),
    ("signature", wire.hex_bytes(65)),
    ("timestamp", wire.uint(64)),
)


def encode_request(header: RequestHeader, signature: bytes, body: bytes) -> bytes:
    h = header
    doc = {
        "client": h.client,
        "provider": h.provider,
        "model_version": h.model_version,
        "mode": h.mode,
        "key_set": h.key_set.hex(),
        "reply_key": h.reply_key.hex(),
        "timestamp": h.timestamp,
        "nonce": h.nonce.hex(),
        "body_hash": h.body_hash.hex(),
        "signature": signature.hex(),
    }
    return _frame(REQUEST_MAGIC, doc, body)


def decode_request(raw: bytes) -> tuple[RequestHeader, bytes, bytes]:
    """(header, signature, body); raises ``MalformedRequest``."""
    d, body = _unframe(REQUEST_MAGIC, raw, REQUEST_SCHEMA, MalformedRequest)
    if d["mode"] not in MODES:
        raise MalformedRequest(f"bad field: mode must be one of {', '.join(MODES)}")
    header = RequestHeader(
        client=d["client"],
        provider=d["provider"],
        model_version=d["model_version"],
        mode=d["mode"],
        key_set=d["key_set"],
        reply_key=d["reply_key"],
        timestamp=d["timestamp"],
        nonce=d["nonce"],
        body_hash=d["body_hash"],
    )
    if keccak256(body) != header.body_hash:
        raise MalformedRequest("the body does not match its hash")
    return header, d["signature"], body


def encode_response(receipt: Receipt, body: bytes) -> bytes:
    return _frame(RESPONSE_MAGIC, receipt.to_doc(), body)


class BadResponse(ChainmlError):
    """A provider's answer that is not a well-formed response."""


def decode_response(raw: bytes) -> tuple[Receipt, bytes]:
    fields, body = _unframe(RESPONSE_MAGIC, raw, RECEIPT_SCHEMA, BadResponse)
    try:
        return Receipt.from_fields(fields), body
    except ValueError as exc:
        raise BadResponse(str(exc)) from None


def pack_arrays(arrays: dict[str, NDArray[Any]]) -> bytes:
    return bytes(st_save({k: np.ascontiguousarray(v) for k, v in arrays.items()}))


def unpack_arrays(blob: bytes) -> dict[str, NDArray[Any]]:
    """safetensors bytes → arrays (data only, nothing executed); ``ValueError`` if bad."""
    try:
        return dict(st_load(blob))
    except (SafetensorError, ValueError, OSError) as exc:
        raise ValueError("not a safetensors body") from exc


def pack_blobs(blobs: Sequence[bytes]) -> bytes:
    """Length-prefixed byte strings (HE ciphertexts and keys)."""
    return b"".join(struct.pack(">I", len(b)) + b for b in blobs)


def parts_hash(previous: bytes, body_hash: bytes) -> bytes:
    """The running hash of a batch's parts: ``keccak256(previous || body_hash)`` with the
    part's body hash (its request header's ``body_hash``), from 32 zero bytes
    (``ZERO32``) before the first part."""
    return keccak256(previous + body_hash)


def pack_part(offset: int, blobs: Sequence[bytes]) -> bytes:
    """An ``he-part`` body: the ciphertexts of features ``offset`` … of a batch."""
    return struct.pack(">I", offset) + pack_blobs(blobs)


def pack_batch_end(parts: bytes, offset: int, blobs: Sequence[bytes]) -> bytes:
    """An ``he-batch-end`` body: the parts' running hash, then the last features'."""
    return parts + struct.pack(">I", offset) + pack_blobs(blobs)


def unpack_blobs(data: bytes, limit: int) -> list[bytes]:
    out: list[bytes] = []
    at = 0
    while at < len(data):
        if len(out) >= limit or at + 4 > len(data):
            raise ValueError("too many or truncated parts")
        (size,) = struct.unpack(">I", data[at : at + 4])
        if at + 4 + size > len(data):
            raise ValueError("a part runs past the end")
        out.append(data[at + 4 : at + 4 + size])
        at += 4 + size
    return out


# -- the provider -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ServedModel:
    """A model version the provider serves, and its prices in wei."""

    version: int
    predict: Callable[[NDArray[np.float64]], NDArray[np.float64]]  # rows → logits
    n_features: int
    plan: Plan | None  # None: no CKKS plan for this model (plain mode only)
    price: int  # per row (plain, plain-zk) or per query (he)
    batch_price: int  # per throughput-mode batch
    prover: ZkProver | None = None  # None: no proofs (mode plain-zk unavailable)
    zk_bundle: str = ""  # the CID of the proof bundle the version's manifest names

    def info(self) -> dict[str, Any]:
        p = self.plan
        return {
            "model_version": self.version,
            "n_features": self.n_features,
            "price": str(self.price),
            "batch_price": str(self.batch_price),
            "he": None if p is None else p.shape.to_doc(),
            "zk": None if self.prover is None else {"bundle": self.zk_bundle},
        }


class ReceiptLedger(Protocol):
    """Where the provider's receipts live until they are posted (durable in a node)."""

    def issue(
        self, client: str, model_version: int, request_hash: bytes, response_hash: bytes, price: int
    ) -> Receipt: ...
    def owed(self, client: str) -> int:
        """What the client owes in receipts not yet posted on chain."""
        ...


class Replays(Protocol):
    def remember(self, sender: str, nonce: bytes, timestamp: int) -> bool: ...


@dataclass(frozen=True)
class Limits:
    max_skew: int = 120
    max_rows: int = 1024  # plain mode, per request
    max_proven_rows: int = 4  # plain-zk, per request (a proof takes seconds)
    max_body: int = 16 << 20  # queries and batches (a batch: 64 ciphertexts of ~206 KB)
    max_keys: int = 64 << 20  # one evaluation-key upload
    key_sets: int = 8  # clients whose keys are kept at once
    max_pending: int = 256 << 20  # parts of batches sent in several requests, in all


class InferenceService:
    """The provider's side: refuse what it must, answer and sign a receipt for the rest."""

    def __init__(
        self,
        account: AccountKey,
        x25519: X25519KeyPair,
        *,
        chain_id: int,
        receipts_contract: str,
        model: ServedModel | None,
        balance: Callable[[str], int],
        ledger: ReceiptLedger,
        replays: Replays,
        clock: Callable[[], float],
        limits: Limits | None = None,
    ) -> None:
        self.account = account
        self.x25519 = x25519
        self.chain_id = chain_id
        self.receipts_contract = receipts_contract
        self.model = model
        self.balance = balance
        self.ledger = ledger
        self.replays = replays
        self.clock = clock
        self.limits = limits or Limits()
        self._keys: OrderedDict[tuple[str, bytes], HEProvider] = OrderedDict()
        # per client key set, the parts of a batch sent so far: (ciphertexts, running hash)
        self._pending: OrderedDict[tuple[str, bytes], tuple[list[bytes], bytes]] = OrderedDict()
        self._lock = threading.Lock()  # receipts are issued one at a time

    def max_request(self, mode: str) -> int:
        """The most bytes a request in ``mode`` may take on the wire (frame included)."""
        body = self.limits.max_keys if mode == "he-keys" else self.limits.max_body
        return FRAME + MAX_HEADER + body

    def handle(self, raw: bytes, modes: Sequence[str] = MODES) -> bytes:
        """A response for ``raw`` (a request in one of ``modes``), or an
        ``InferenceRefused``."""
        if len(raw) > max(self.max_request(m) for m in modes):
            raise OversizedRequest(f"{len(raw)} bytes")
        header, signature, body = decode_request(raw)
        if header.mode not in modes:
            raise MalformedRequest(f"mode {header.mode} is not served here")
        if len(raw) > self.max_request(header.mode):
            raise OversizedRequest(f"{len(raw)} bytes for mode {header.mode}")
        model = self.model
        if header.provider != self.account.address:
            raise WrongProvider("addressed to another provider")
        if model is None or header.model_version != model.version:
            raise WrongModel("this provider does not serve that model version")
        if abs(self.clock() - header.timestamp) > self.limits.max_skew:
            raise StaleRequest(f"timestamp {header.timestamp} is too far off")
        request_hash = header.digest(self.chain_id, self.receipts_contract)
        try:
            signer = recover_address(request_hash, signature)
        except CryptoError:
            signer = None
        if signer != header.client:
            raise ForgedRequest("not signed by the client it names")
        if not self.replays.remember(header.client, header.nonce, header.timestamp):
            raise ReplayedRequest("nonce already seen")
        if header.mode == "he-keys":
            self._need(header.client, model.price, self.balance(header.client))
            return self._keys_in(header, body, model)
        if header.mode == "he-part":
            self._need(header.client, model.batch_price, self.balance(header.client))
            return self._part_in(header, body, model)
        work, price = self._prepare(header, body, model, request_hash)
        balance = self.balance(header.client)
        self._need(header.client, price, balance)  # before any work is done for it
        answer = work()
        with self._lock:  # again, against what the client's other requests now owe
            self._need(header.client, price, balance)
            receipt = self.ledger.issue(
                header.client, model.version, request_hash, keccak256(answer), price
            )
        return encode_response(receipt, answer)

    def _need(self, client: str, price: int, balance: int) -> None:
        if balance - self.ledger.owed(client) < max(price, 1):
            raise InsufficientBalance("the prepaid balance on chain does not cover this request")

    def _keys_in(self, header: RequestHeader, body: bytes, model: ServedModel) -> bytes:
        if model.plan is None:
            raise ModeUnavailable("this model has no homomorphic plan")
        try:
            relin, galois = unpack_blobs(body, 2)
            provider = HEProvider(model.plan, {"relin": relin, "galois": galois})
        except (ValueError, HEError) as exc:  # HEError: keys that do not fit the plan
            raise BadInput(f"evaluation keys: {exc}") from None
        key_set = header.body_hash  # decode_request checked it is the body's hash
        with self._lock:
            self._keys.pop((header.client, key_set), None)
            self._keys[(header.client, key_set)] = provider
            while len(self._keys) > self.limits.key_sets:
                gone, _ = self._keys.popitem(last=False)
                self._pending.pop(gone, None)
        return json.dumps({"key_set": key_set.hex()}).encode()

    def _he_provider(self, header: RequestHeader, model: ServedModel) -> HEProvider:
        if model.plan is None:
            raise ModeUnavailable("this model has no homomorphic plan")
        provider = self._keys.get((header.client, header.key_set))
        if provider is None or provider.plan is not model.plan:  # keys of a model since replaced
            raise UnknownKeySet("upload the evaluation keys first (mode he-keys)")
        return provider

    def _part_in(self, header: RequestHeader, body: bytes, model: ServedModel) -> bytes:
        """Keep the next part of a batch; answer the parts' running hash.  A part at
        offset 0 starts a new batch; any other must follow the parts held, and leave at
        least one feature for the ``he-batch-end``."""
        self._he_provider(header, model)
        key = (header.client, header.key_set)
        try:
            if len(body) < 4:
                raise ValueError("no offset")
            (offset,) = struct.unpack(">I", body[:4])
            blobs = unpack_blobs(body[4:], model.n_features)
        except ValueError as exc:
            raise BadInput(f"batch part: {exc}") from None
        with self._lock:
            prior = self._pending.pop(key, ([], ZERO32))  # a part out of order ends it
            held, chain = prior if offset else ([], ZERO32)
            if offset != len(held):
                raise BadInput(f"batch part at feature {offset}: {len(held)} are held")
            if not blobs or offset + len(blobs) >= model.n_features:
                raise BadInput(
                    f"a part holds 1 to {model.n_features - offset - 1} ciphertexts here: "
                    "the last features go in the he-batch-end"
                )
            held, chain = held + blobs, parts_hash(chain, header.body_hash)
            size = sum(map(len, held))
            if size > self.limits.max_pending:
                raise OversizedRequest(f"a batch's parts over {self.limits.max_pending} bytes")
            while (
                self._pending
                and size + sum(sum(map(len, parts)) for parts, _ in self._pending.values())
                > self.limits.max_pending
            ):
                self._pending.popitem(last=False)  # the oldest other pending batch
            self._pending[key] = (held, chain)
        return json.dumps({"parts": chain.hex(), "received": len(held)}).encode()

    def _prepare(
        self, header: RequestHeader, body: bytes, model: ServedModel, request_hash: bytes
    ) -> tuple[Callable[[], bytes], int]:
        """The request checked as far as it can be without evaluating it: the work that
        answers it, and its price."""
        if header.mode in ("plain", "plain-zk"):
            prover = model.prover
            if header.mode == "plain-zk" and prover is None:
                raise ModeUnavailable("this model was published without a proof bundle")
            try:
                x = unpack_arrays(open_sealed(self.x25519, body, header.seal_info()))["x"]
            except (CryptoError, ValueError, KeyError) as exc:
                raise BadInput(f"plain input: {type(exc).__name__}") from None
            zk = header.mode == "plain-zk"
            most = self.limits.max_proven_rows if zk else self.limits.max_rows
            if x.ndim != 2 or x.shape[1] != model.n_features or not 0 < len(x) <= most:
                raise BadInput(f"x must be 1..{most} rows of {model.n_features}")
            if zk and not np.isfinite(x).all():
                raise BadInput("x holds a value that is not finite")
            if header.reply_key == ZERO32:
                raise BadInput("a plain request needs a reply key")

            def plain() -> bytes:
                logits = model.predict(np.asarray(x, dtype=np.float64)).astype(np.float32)
                return seal(header.reply_key, pack_arrays({"logits": logits}), request_hash)

            def proven(p: ZkProver) -> bytes:
                try:
                    answers = [p.prove(row) for row in np.asarray(x, dtype=np.float32)]
                except (ZkError, ValueError) as exc:
                    raise BadInput(f"no proof for this input: {exc}") from None
                blob = pack_answer(np.stack([o for o, _ in answers]), [q for _, q in answers])
                return seal(header.reply_key, blob, request_hash)

            if zk and prover is not None:
                return (lambda: proven(prover)), model.price * len(x)
            return plain, model.price * len(x)
        provider = self._he_provider(header, model)
        if header.mode == "he":
            return _typed(lambda: provider.evaluate_query(body)), model.price
        held: list[bytes] = []
        if header.mode == "he-batch-end":  # consumes the parts held, whatever follows
            with self._lock:
                held, chain = self._pending.pop((header.client, header.key_set), ([], ZERO32))
            if len(body) < 36 or body[:32] != chain or not held:
                raise BadInput("the batch's end names parts this provider does not hold")
            if struct.unpack(">I", body[32:36])[0] != len(held):
                raise BadInput(f"the batch's end does not follow its {len(held)} features")
            body = body[36:]
        try:
            parts = held + unpack_blobs(body, model.n_features - len(held))
        except ValueError as exc:
            raise BadInput(f"ciphertext: {exc}") from None
        return _typed(lambda: pack_blobs(provider.evaluate_batch(parts))), model.batch_price


def _typed(work: Callable[[], bytes]) -> Callable[[], bytes]:
    """``work``, with a ciphertext it cannot evaluate (malformed, of other parameters or
    another scale, or one SEAL refuses during the evaluation) refused as bad input."""

    def run() -> bytes:
        try:
            return work()
        except HEError as exc:
            raise BadInput(f"ciphertext: {exc}") from None

    return run


def new_nonce() -> bytes:
    return os.urandom(32)
