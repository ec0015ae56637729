"""The client's side of paid inference: sign requests, check answers and receipts.

``InferenceClient`` is given the transport (``post(path, body) -> (status, bytes)``) and
the clock; it signs every request with the client's account, seals plain inputs to the
provider's registered X25519 key, keeps the CKKS secret key to itself, and records every
receipt in its ``ReceiptBook`` after checking that it names this request and this answer.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chainml.crypto.errors import CryptoError
from chainml.crypto.hashing import keccak256
from chainml.crypto.hpke import open_sealed, seal
from chainml.crypto.keys import Identity, X25519KeyPair
from chainml.errors import ChainmlError
from chainml.inference.he import BadQuery, HEClient, PlanShape
from chainml.inference.receipts import Receipt, ReceiptBook
from chainml.inference.service import (
    ZERO32,
    BadResponse,
    Limits,
    RequestHeader,
    decode_response,
    encode_request,
    new_nonce,
    pack_arrays,
    pack_batch_end,
    pack_blobs,
    pack_part,
    parts_hash,
    seal_info,
    unpack_arrays,
    unpack_blobs,
)
from chainml.inference.zkml import MalformedProof, ZkError, ZkVerifier, unpack_answer

Transport = Callable[[str, bytes], tuple[int, bytes]]


class ProviderRefused(ChainmlError):
    """The provider answered with an error; ``cause`` is its typed cause."""

    def __init__(self, status: int, cause: str, detail: str) -> None:
        super().__init__(f"{status} {cause}: {detail}")
        self.status, self.cause = status, cause


@dataclass(frozen=True)
class ModelInfo:
    provider: str
    x25519: bytes
    model_version: int
    n_features: int
    price: int
    batch_price: int
    he: PlanShape | None  # None: the model is served in plain mode only
    max_body: int = Limits.max_body  # the provider's cap on a request's body
    zk_bundle: str = ""  # the CID of the proof bundle, when the provider proves its answers

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> ModelInfo:
        try:
            return cls(
                str(doc["provider"]),
                bytes.fromhex(doc["x25519"]),
                int(doc["model_version"]),
                int(doc["n_features"]),
                int(doc["price"]),
                int(doc["batch_price"]),
                None if doc.get("he") is None else PlanShape.from_doc(doc["he"]),
                int(doc.get("max_body", Limits.max_body)),
                str((doc.get("zk") or {}).get("bundle", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BadResponse(f"not a model description: {exc}") from None


class InferenceClient:
    def __init__(
        self,
        identity: Identity,
        info: ModelInfo,
        *,
        chain_id: int,
        receipts_contract: str,
        post: Transport,
        clock: Callable[[], float],
        book: ReceiptBook | None = None,
        zk: ZkVerifier | None = None,
    ) -> None:
        self.identity = identity
        self.zk = zk  # the committed model's proof bundle, for predict_proven
        self.info = info
        self.chain_id = chain_id
        self.receipts_contract = receipts_contract
        self.post = post
        self.clock = clock
        self.book = book or ReceiptBook(identity.address, chain_id, receipts_contract)
        self._he: HEClient | None = None
        self._key_set = ZERO32
        self.sent = self.received = 0  # bytes

    def _request(
        self,
        mode: str,
        body: bytes,
        *,
        key_set: bytes = ZERO32,
        reply_key: bytes = ZERO32,
        nonce: bytes | None = None,
    ) -> tuple[bytes, bytes]:
        """(request hash, the signed request's wire bytes)."""
        header = RequestHeader(
            client=self.identity.address,
            provider=self.info.provider,
            model_version=self.info.model_version,
            mode=mode,
            key_set=key_set,
            reply_key=reply_key,
            timestamp=int(self.clock()),
            nonce=nonce or new_nonce(),
            body_hash=keccak256(body),
        )
        digest = header.digest(self.chain_id, self.receipts_contract)
        return digest, encode_request(header, self.identity.account.sign_digest(digest), body)

    def _send(self, path: str, raw: bytes) -> bytes:
        status, answer = self.post(path, raw)
        self.sent += len(raw)
        self.received += len(answer)
        if status != 200:
            try:
                doc = json.loads(answer)
                cause, detail = str(doc["error"]), str(doc["detail"])
            except (ValueError, KeyError, TypeError):
                cause, detail = "http", answer[:200].decode(errors="replace")
            raise ProviderRefused(status, cause, detail)
        return answer

    def _paid(self, path: str, request_hash: bytes, raw: bytes) -> bytes:
        """Send, check the receipt names this request and answer, keep it; the answer."""
        return self._paid_receipt(path, request_hash, raw)[1]

    def _paid_receipt(self, path: str, request_hash: bytes, raw: bytes) -> tuple[Receipt, bytes]:
        receipt, body = decode_response(self._send(path, raw))
        self.book.record(receipt, request_hash, keccak256(body))
        return receipt, body

    # -- plain, sealed both ways ------------------------------------------------------------

    def predict_plain(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Logits for rows ``x``; the input is sealed to the provider, the answer to a
        fresh reply key of this request."""
        reply = X25519KeyPair.generate()
        nonce = new_nonce()
        info = seal_info(self.identity.address, self.info.provider, nonce)
        body = seal(self.info.x25519, pack_arrays({"x": np.asarray(x, dtype=np.float32)}), info)
        request_hash, raw = self._request("plain", body, reply_key=reply.public_bytes, nonce=nonce)
        answer = self._paid("/v1/infer", request_hash, raw)
        try:
            opened = open_sealed(reply, answer, request_hash)
            return np.asarray(unpack_arrays(opened)["logits"], dtype=np.float64)
        except (CryptoError, ValueError, KeyError) as exc:
            raise BadResponse(f"the sealed answer does not open: {type(exc).__name__}") from None

    def predict_proven(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Logits for rows ``x`` (float32 on the wire, as in ``predict_plain``), each with a
        zero-knowledge proof that the committed model (``self.zk``'s bundle, which the
        model's manifest on chain names) maps that row to them.  An answer whose proof
        fails or does not parse is rejected: its receipt is marked in the book, so the
        batch that bills it is disputed (``RejectedAnswer``), and ``InvalidProof`` or
        ``MalformedProof`` is raised.  The logits are the circuit's fixed-point ones."""
        if self.zk is None:
            raise BadResponse("no proof bundle for this model: connect with its bundle")
        rows = np.asarray(x, dtype=np.float32)
        bundle = self.zk.bundle
        if rows.ndim != 2 or rows.shape[1] != bundle.n_inputs or not np.isfinite(rows).all():
            raise ValueError(f"rows of {bundle.n_inputs} finite values, not {rows.shape}")
        reply = X25519KeyPair.generate()
        nonce = new_nonce()
        info = seal_info(self.identity.address, self.info.provider, nonce)
        body = seal(self.info.x25519, pack_arrays({"x": rows}), info)
        request_hash, raw = self._request(
            "plain-zk", body, reply_key=reply.public_bytes, nonce=nonce
        )
        receipt, answer = self._paid_receipt("/v1/infer", request_hash, raw)
        try:
            try:
                opened = open_sealed(reply, answer, request_hash)
            except CryptoError:
                raise MalformedProof("the sealed answer does not open") from None
            outputs, proofs = unpack_answer(opened, bundle, len(rows))
            return np.stack(
                [self.zk.verify(r, o, p) for r, o, p in zip(rows, outputs, proofs, strict=True)]
            )
        except ZkError as exc:
            self.book.reject(receipt, f"{type(exc).__name__}: {exc}")
            raise

    # -- homomorphic ------------------------------------------------------------------------

    def _he_client(self) -> tuple[HEClient, PlanShape]:
        shape = self.info.he
        if shape is None:
            raise BadResponse("the provider's model has no homomorphic plan")
        if self._he is None:
            if shape.n_features != self.info.n_features:
                raise BadResponse("the provider's plan and model disagree on the features")
            client = HEClient(shape)
            keys = client.evaluation_keys()
            body = pack_blobs([keys["relin"], keys["galois"]])
            _, raw = self._request("he-keys", body)
            try:
                named = bytes.fromhex(json.loads(self._send("/v1/infer/he", raw))["key_set"])
            except (ValueError, KeyError, TypeError):
                raise BadResponse("the provider's answer to the keys is malformed") from None
            if named != keccak256(body):
                raise BadResponse("the provider names another key set")
            self._he, self._key_set = client, named
        return self._he, shape

    def predict_encrypted(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Logits for one row, computed by the provider on a CKKS ciphertext.  The row is
        checked before anything is sent: ``BadQuery`` if it is not ``n_features`` finite
        values, ``OutOfRange`` if a feature is outside the plan's input range."""
        row = np.asarray(x, dtype=np.float64)
        if row.shape != (self.info.n_features,):
            raise BadQuery(f"one row of {self.info.n_features} features, not {row.shape}")
        he, shape = self._he_client()
        request_hash, raw = self._request("he", he.encrypt_query(row), key_set=self._key_set)
        return he.decrypt_query(self._paid("/v1/infer/he", request_hash, raw), shape)

    def predict_encrypted_batch(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Logits for rows ``x`` (throughput mode), sent in batches of at most a
        ciphertext's slots of rows, one paid request each; every row is checked first.  A
        batch whose ciphertexts (one per feature) exceed the provider's body cap goes in
        parts (``he-part`` requests, then an ``he-batch-end``), each under the cap."""
        rows = np.asarray(x, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != self.info.n_features or not len(rows):
            raise BadQuery(f"rows of {self.info.n_features} features, not {rows.shape}")
        he, shape = self._he_client()
        out = []
        for chunk in he.batches(rows):
            answer = self._batch(he.encrypt_batch(chunk))
            try:
                parts = unpack_blobs(answer, shape.n_classes)
            except ValueError as exc:
                raise BadResponse(str(exc)) from None
            out.append(he.decrypt_batch(parts, len(chunk)))
        return np.concatenate(out)

    def _batch(self, cts: list[bytes]) -> bytes:
        """One batch's answer: in one ``he-batch`` request if it fits the provider's cap,
        else in parts, each checked against the running hash the provider answers."""
        body = pack_blobs(cts)
        if len(body) <= self.info.max_body:
            request_hash, raw = self._request("he-batch", body, key_set=self._key_set)
            return self._paid("/v1/infer/he", request_hash, raw)
        room = self.info.max_body - 36  # an he-batch-end's hash and offset
        groups: list[list[bytes]] = [[]]
        used = 0
        for ct in cts:
            if 4 + len(ct) > room:
                raise BadQuery("a ciphertext is larger than the provider takes in a request")
            if used + 4 + len(ct) > room:
                groups.append([])
                used = 0
            groups[-1].append(ct)
            used += 4 + len(ct)
        chain, offset = ZERO32, 0
        for group in groups[:-1]:
            body = pack_part(offset, group)
            _, raw = self._request("he-part", body, key_set=self._key_set)
            chain, offset = parts_hash(chain, keccak256(body)), offset + len(group)
            try:
                ack = json.loads(self._send("/v1/infer/he", raw))
                if bytes.fromhex(ack["parts"]) != chain or ack["received"] != offset:
                    raise BadResponse("the provider holds other parts than were sent")
            except (ValueError, KeyError, TypeError):
                raise BadResponse("the provider's answer to a batch part is malformed") from None
        body = pack_batch_end(chain, offset, groups[-1])
        request_hash, raw = self._request("he-batch-end", body, key_set=self._key_set)
        return self._paid("/v1/infer/he", request_hash, raw)
