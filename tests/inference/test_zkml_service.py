"""Proven plain inference between the provider's state machine and the client, in one
process: an honest provider's answers verify; a provider that answers with another model
(and that model's valid proofs) is caught, its receipt rejected, and the batch that bills
it refused; a garbled answer is rejected the same way; requests the provider cannot prove
are refused with their own cause."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chainml.crypto import Identity
from chainml.inference.client import InferenceClient, ModelInfo, ProviderRefused
from chainml.inference.receipts import Batch, ReceiptBook, RejectedAnswer
from chainml.inference.service import InferenceRefused, InferenceService, Limits, ServedModel
from chainml.inference.zkml import InvalidProof, MalformedProof, ZkVerifier
from chainml.node.inference import SqliteReceipts
from chainml.node.state import NodeState, SqliteReplayCache

pytestmark = pytest.mark.slow

CHAIN_ID, RECEIPTS = 31337, "0x" + "cd" * 20
PRICE = 10


class World:
    """A provider serving ``served`` and a client holding the committed bundle."""

    def __init__(self, served: ServedModel, committed, tmp_path) -> None:
        self.provider, self.user = Identity.generate(), Identity.generate()
        db = NodeState(tmp_path / "provider.db")
        self.issuer = SqliteReceipts(
            db,
            self.provider.account,
            chain_id=CHAIN_ID,
            receipts_contract=RECEIPTS,
            clock=lambda: 1_700_000_000.0,
        )
        self.service = InferenceService(
            self.provider.account,
            self.provider.x25519,
            chain_id=CHAIN_ID,
            receipts_contract=RECEIPTS,
            model=served,
            balance=lambda who: 10**6,
            ledger=self.issuer,
            replays=SqliteReplayCache(db, horizon=120),
            clock=lambda: 1_700_000_000.0,
            limits=Limits(max_proven_rows=2),
        )
        self.answer = self.service.handle  # a test may garble what goes back
        info = ModelInfo.from_doc(
            {
                "provider": self.provider.address,
                "x25519": self.provider.x25519.public_bytes.hex(),
                **served.info(),
            }
        )
        self.book = ReceiptBook(self.user.address, CHAIN_ID, RECEIPTS)
        self.client = InferenceClient(
            self.user,
            info,
            chain_id=CHAIN_ID,
            receipts_contract=RECEIPTS,
            post=self.post,
            clock=lambda: 1_700_000_000.0,
            book=self.book,
            zk=None if committed is None else ZkVerifier(committed),
        )

    def post(self, path: str, raw: bytes) -> tuple[int, bytes]:
        try:
            return 200, self.answer(raw)
        except InferenceRefused as exc:
            return exc.status, json.dumps({"error": exc.cause, "detail": str(exc)}).encode()

    def batch(self) -> Batch:
        """What the provider would post now: every receipt it issued."""
        (batch,) = self.issuer.due(100, -1.0)
        return batch


def _served(model, prover, cid: str = "bafy-committed") -> ServedModel:
    return ServedModel(
        version=3,
        predict=model.logits,
        n_features=64,
        plan=None,
        price=PRICE,
        batch_price=0,
        prover=prover,
        zk_bundle=cid,
    )


def test_an_honest_provider_s_proven_answers_verify_and_bill(zk_digits, x2_mlp, digits, tmp_path):
    bundle, prover = zk_digits
    w = World(_served(x2_mlp, prover), bundle, tmp_path)
    assert w.client.info.zk_bundle == "bafy-committed"
    x = digits.x_test[10:12]
    logits = w.client.predict_proven(x)
    assert np.array_equal(logits.argmax(1), x2_mlp.predict(x))
    assert len(w.book.held) == 1 and not w.book.rejected
    w.book.check(w.batch(), w.provider.address)  # accepted: nothing to dispute
    assert w.book.paid == {(w.provider.address.lower(), 1)}
    plain = w.client.predict_plain(x)  # the same provider still answers plain requests
    assert np.array_equal(plain.argmax(1), logits.argmax(1))


def test_a_provider_serving_another_model_is_caught_and_its_batch_refused(
    zk_digits, zk_other, other_model, digits, tmp_path
):
    committed, _ = zk_digits
    _, other_prover = zk_other  # valid proofs, of the other model
    w = World(_served(other_model, other_prover), committed, tmp_path)
    with pytest.raises(InvalidProof):
        w.client.predict_proven(digits.x_test[:1])
    ((key, why),) = w.book.rejected.items()
    assert key == (w.provider.address.lower(), 1) and why.startswith("InvalidProof")
    with pytest.raises(RejectedAnswer):
        w.book.check(w.batch(), w.provider.address)
    assert not w.book.paid
    path = tmp_path / "book.json"  # the rejection survives a restart of the client
    w.book.save(path)
    again = ReceiptBook.load(path, w.user.address, CHAIN_ID, RECEIPTS)
    assert again.rejected == w.book.rejected


def test_a_signed_answer_with_a_truncated_proof_is_rejected(zk_digits, x2_mlp, digits, tmp_path):
    bundle, prover = zk_digits
    w = World(_served(x2_mlp, _ShortProofs(prover)), bundle, tmp_path)
    with pytest.raises(MalformedProof):
        w.client.predict_proven(digits.x_test[:1])
    assert len(w.book.held) == 1 and len(w.book.rejected) == 1
    with pytest.raises(RejectedAnswer):
        w.book.check(w.batch(), w.provider.address)


class _ShortProofs:
    """A prover whose proofs lose their last 64 bytes."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.bundle = inner.bundle

    def prove(self, row):
        outputs, proof = self.inner.prove(row)
        return outputs, proof[:-64]

    def close(self) -> None:
        pass


def test_requests_the_provider_cannot_prove_are_refused(zk_digits, x2_mlp, digits, tmp_path):
    bundle, prover = zk_digits
    w = World(_served(x2_mlp, prover), bundle, tmp_path)
    with pytest.raises(ProviderRefused) as caught:
        w.client.predict_proven(digits.x_test[:3])  # over max_proven_rows
    assert caught.value.cause == "bad_input"
    bare = World(_served(x2_mlp, None, ""), bundle, tmp_path / "bare")
    assert bare.client.info.zk_bundle == ""
    with pytest.raises(ProviderRefused) as caught:
        bare.client.predict_proven(digits.x_test[:1])
    assert caught.value.status == 501 and caught.value.cause == "mode_unavailable"
    no_bundle = World(_served(x2_mlp, prover), None, tmp_path / "nb")
    with pytest.raises(Exception, match="no proof bundle"):
        no_bundle.client.predict_proven(digits.x_test[:1])
    with pytest.raises(ValueError):
        w.client.predict_proven(np.full((1, 64), np.nan))
    assert not w.book.held and not bare.book.held  # nothing billed for any of them
