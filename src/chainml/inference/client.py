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
from chainml.inference.he import HEClient
from chainml.inference.receipts import ReceiptBook
from chainml.inference.service import (
    ZERO32,
    BadResponse,
    RequestHeader,
    decode_response,
    encode_request,
    new_nonce,
    pack_arrays,
    pack_blobs,
    seal_info,
    unpack_arrays,
    unpack_blobs,
)

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
    he: dict[str, Any] | None

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
                doc.get("he"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise BadResponse(f"not a model description: {exc}") from None


class _Shape:
    """What decryption needs of a plan: how many classes, and where they sit."""

    def __init__(self, he: dict[str, Any]) -> None:
        self.n_classes = int(he["n_classes"])
        self.w2 = None if he["regression"] else True


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
    ) -> None:
        self.identity = identity
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
    ) -> tuple[RequestHeader, bytes]:
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
        signature = self.identity.account.sign_digest(digest)
        return header, encode_request(header, signature, body)

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

    def _paid(self, path: str, header: RequestHeader, raw: bytes) -> bytes:
        """Send, check the receipt names this request and answer, keep it; the answer."""
        receipt, body = decode_response(self._send(path, raw))
        self.book.record(
            receipt, header.digest(self.chain_id, self.receipts_contract), keccak256(body)
        )
        return body

    # -- plain, sealed both ways ------------------------------------------------------------

    def predict_plain(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Logits for rows ``x``; the input is sealed to the provider, the answer to a
        fresh reply key of this request."""
        reply = X25519KeyPair.generate()
        nonce = new_nonce()
        info = seal_info(self.identity.address, self.info.provider, nonce)
        body = seal(self.info.x25519, pack_arrays({"x": np.asarray(x, dtype=np.float32)}), info)
        header, raw = self._request("plain", body, reply_key=reply.public_bytes, nonce=nonce)
        answer = self._paid("/v1/infer", header, raw)
        try:
            opened = open_sealed(
                reply, answer, header.digest(self.chain_id, self.receipts_contract)
            )
            return np.asarray(unpack_arrays(opened)["logits"], dtype=np.float64)
        except (CryptoError, ValueError, KeyError) as exc:
            raise BadResponse(f"the sealed answer does not open: {type(exc).__name__}") from None

    # -- homomorphic ------------------------------------------------------------------------

    def _he_client(self) -> HEClient:
        he = self.info.he
        if he is None:
            raise BadResponse("the provider's model has no homomorphic plan")
        if self._he is None:
            client = HEClient(int(he["depth"]), [int(r) for r in he["rotations"]])
            keys = client.evaluation_keys()
            body = pack_blobs([keys["relin"], keys["galois"]])
            _, raw = self._request("he-keys", body)
            doc = json.loads(self._send("/v1/infer/he", raw))
            if bytes.fromhex(doc["key_set"]) != keccak256(body):
                raise BadResponse("the provider names another key set")
            self._he, self._key_set = client, keccak256(body)
        return self._he

    def predict_encrypted(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Logits for one row, computed by the provider on a CKKS ciphertext."""
        he = self._he_client()
        header, raw = self._request("he", he.encrypt_query(x), key_set=self._key_set)
        answer = self._paid("/v1/infer/he", header, raw)
        return he.decrypt_query(answer, _Shape(self.info.he or {}))  # type: ignore[arg-type]

    def predict_encrypted_batch(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Logits for up to a ciphertext's slots of rows (throughput mode)."""
        he = self._he_client()
        body = pack_blobs(he.encrypt_batch(x))
        header, raw = self._request("he-batch", body, key_set=self._key_set)
        answer = self._paid("/v1/infer/he", header, raw)
        try:
            parts = unpack_blobs(answer, int((self.info.he or {})["n_classes"]))
        except ValueError as exc:
            raise BadResponse(str(exc)) from None
        return he.decrypt_batch(parts, len(x))
