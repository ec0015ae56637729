"""The provider's state machine and the client against each other, in one process: plain
requests sealed both ways, encrypted queries and batches, receipts for each, and every
kind of bad request refused with its own cause while the provider goes on serving."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pytest

from chainml.crypto import Identity
from chainml.crypto.hashing import keccak256
from chainml.inference import he
from chainml.inference.client import InferenceClient, ModelInfo, ProviderRefused
from chainml.inference.he import BadQuery, OutOfRange, compile_model
from chainml.inference.receipts import AlteredReceipt
from chainml.inference.service import (
    ZERO32,
    InferenceRefused,
    InferenceService,
    Limits,
    ServedModel,
    decode_request,
    encode_request,
    encode_response,
    pack_batch_end,
    pack_blobs,
    pack_part,
    parts_hash,
)
from chainml.node.inference import SqliteReceipts
from chainml.node.state import NodeState, SqliteReplayCache
from chainml.training.models import MLP, LogisticRegression

CHAIN_ID, RECEIPTS = 31337, "0x" + "ab" * 20
PRICE, BATCH_PRICE = 10, 500


@pytest.fixture(scope="module")
def model(x2_mlp):
    return x2_mlp


class World:
    """One provider, one client, a clock, balances and every byte the provider received."""

    def __init__(self, model: MLP, state: Path, limits: Limits | None = None) -> None:
        limits = limits or Limits(max_body=14 << 20)
        self.now = [1_700_000_000.0]
        self.balances: dict[str, int] = {}
        self.provider_id, self.client_id = Identity.generate(), Identity.generate()
        db = NodeState(state)  # the provider node's durable receipts and replay cache
        self.issuer = SqliteReceipts(
            db,
            self.provider_id.account,
            chain_id=CHAIN_ID,
            receipts_contract=RECEIPTS,
            clock=lambda: self.now[0],
        )
        served = ServedModel(
            version=7,
            predict=model.logits,
            n_features=64,
            plan=compile_model(model),
            price=PRICE,
            batch_price=BATCH_PRICE,
        )
        self.service = InferenceService(
            self.provider_id.account,
            self.provider_id.x25519,
            chain_id=CHAIN_ID,
            receipts_contract=RECEIPTS,
            model=served,
            balance=lambda who: self.balances.get(who, 0),
            ledger=self.issuer,
            replays=SqliteReplayCache(db, horizon=120),
            clock=lambda: self.now[0],
            limits=limits,
        )
        self.received: list[bytes] = []
        info = ModelInfo.from_doc(
            {
                "provider": self.provider_id.address,
                "x25519": self.provider_id.x25519.public_bytes.hex(),
                "max_body": limits.max_body,
                **served.info(),
            }
        )
        self.client = InferenceClient(
            self.client_id,
            info,
            chain_id=CHAIN_ID,
            receipts_contract=RECEIPTS,
            post=self.post,
            clock=lambda: self.now[0],
        )

    def post(self, path: str, raw: bytes) -> tuple[int, bytes]:
        self.received.append(raw)
        try:
            return 200, self.service.handle(raw)
        except InferenceRefused as exc:
            return exc.status, json.dumps({"error": exc.cause, "detail": str(exc)}).encode()


@pytest.fixture(scope="module")
def world(model, tmp_path_factory):
    w = World(model, tmp_path_factory.mktemp("provider") / "state.db")
    w.balances[w.client_id.address] = 10**9
    return w


def test_plain_mode_is_sealed_both_ways_and_receipted(world, model, digits):
    x = digits.x_test[:16]
    logits = world.client.predict_plain(x)
    assert np.allclose(logits, model.logits(x.astype(np.float32)), atol=1e-4)
    request = world.received[-1]
    assert x.astype(np.float32).tobytes()[:64] not in request  # the input travelled sealed
    (receipt,) = [r for r in world.client.book.held.values() if r.price == 16 * PRICE]
    assert receipt.provider == world.provider_id.address and receipt.model_version == 7


def test_encrypted_queries_and_batch_agree_and_the_provider_never_holds_the_secret_key(
    world, model, digits
):
    x = digits.x_test
    singles = [world.client.predict_encrypted(x[i]).argmax() for i in range(5)]
    assert singles == list(model.predict(x[:5]))
    batch = world.client.predict_encrypted_batch(x)
    assert (batch.argmax(1) == model.predict(x)).mean() >= 0.995
    secret = he._save(world.client._he._secret)  # type: ignore[union-attr]
    for raw in world.received:
        assert secret[64:128] not in raw and secret[-64:] not in raw
    uploads = [raw for raw in world.received if b'"mode":"he-keys"' in raw[:1024]]
    assert len(uploads) == 1 and len(uploads[0]) < 25_000_000  # keys went once, seeded


def test_receipts_name_each_request_and_count_up(world):
    mine = sorted(world.client.book.held.values(), key=lambda r: r.counter)
    assert [r.counter for r in mine] == list(range(1, len(mine) + 1))
    assert world.issuer.owed(world.client_id.address) == sum(r.price for r in mine)


def _fresh(world: World, mode: str = "he", body: bytes = b"\x00" * 8, **changes: object) -> bytes:
    _, raw = world.client._request(mode, body, key_set=world.client._key_set)
    if changes:
        header = decode_request(raw)[0]
        header = type(header)(**{**header.__dict__, **changes})
        signature = world.client_id.account.sign_digest(header.digest(CHAIN_ID, RECEIPTS))
        raw = encode_request(header, signature, body)
    return raw


@pytest.mark.parametrize(
    ("cause", "make"),
    [
        ("malformed", lambda w: b"not a request"),
        ("malformed", lambda w: _fresh(w)[:-1]),  # the body no longer matches its hash
        ("wrong_provider", lambda w: _fresh(w, provider=w.client_id.address)),
        ("wrong_model", lambda w: _fresh(w, model_version=8)),
        ("stale", lambda w: _fresh(w, timestamp=int(w.now[0]) - 3600)),
        ("bad_signature", lambda w: _forged(w)),
        ("unknown_key_set", lambda w: _fresh(w, key_set=os.urandom(32))),
        ("bad_input", lambda w: _fresh(w, body=b"\x00" * 300)),  # not a ciphertext
        ("bad_input", lambda w: _fresh(w, mode="he-batch", body=pack_blobs([b"x"] * 3))),
        ("bad_input", lambda w: _fresh(w, mode="he-keys", body=pack_blobs([b"a", b"b"]))),
        ("bad_input", lambda w: _fresh(w, mode="plain", body=os.urandom(100))),  # won't open
        ("oversized", lambda w: _fresh(w, body=b"\x00" * (15 << 20))),
    ],
)
def test_bad_requests_get_their_own_cause_and_serving_goes_on(world, digits, cause, make):
    raw = make(world)
    before = world.issuer.owed(world.client_id.address)
    with pytest.raises(InferenceRefused) as caught:
        world.service.handle(raw)
    assert caught.value.cause == cause
    assert world.issuer.owed(world.client_id.address) == before  # nothing billed
    assert world.client.predict_encrypted(digits.x_test[0]).shape == (10,)


def _forged(world: World) -> bytes:
    raw = _fresh(world)
    header, signature, body = decode_request(raw)
    other = Identity.generate()
    return encode_request(
        header, other.account.sign_digest(header.digest(CHAIN_ID, RECEIPTS)), body
    )


def test_a_replayed_request_is_refused(world):
    raw = _fresh(world, mode="plain", body=b"")
    with pytest.raises(InferenceRefused):
        world.service.handle(raw)  # refused for its body, but its nonce is now spent
    with pytest.raises(InferenceRefused) as caught:
        world.service.handle(raw)
    assert caught.value.cause == "replayed"


def test_keys_of_another_context_are_refused(world):
    other = he.HEClient(
        compile_model(LogisticRegression(64, 10).params)
    )  # the parameters of a depth-1 plan, not this one's
    keys = other.evaluation_keys()
    raw = _fresh(world, mode="he-keys", body=pack_blobs([keys["relin"], keys["galois"]]))
    with pytest.raises(InferenceRefused) as caught:
        world.service.handle(raw)
    assert caught.value.cause == "bad_input"


def test_no_balance_no_answer(model, digits, tmp_path):
    poor = World(model, tmp_path / "state.db")
    poor.balances[poor.client_id.address] = 3 * PRICE
    poor.client.predict_plain(digits.x_test[:3])  # exactly what it has
    with pytest.raises(ProviderRefused) as caught:
        poor.client.predict_plain(digits.x_test[:1])  # owed receipts count against it
    assert caught.value.status == 402 and caught.value.cause == "insufficient_balance"


def test_an_unpaid_encrypted_query_costs_the_provider_no_evaluation(model, digits, tmp_path):
    poor = World(model, tmp_path / "state.db")
    poor.balances[poor.client_id.address] = PRICE  # one encrypted query's worth
    poor.client.predict_encrypted(digits.x_test[0])
    (provider,) = poor.service._keys.values()
    evaluated = []
    original = provider.evaluate_query
    provider.evaluate_query = lambda data: evaluated.append(data) or original(data)  # type: ignore[method-assign]
    with pytest.raises(ProviderRefused) as caught:
        poor.client.predict_encrypted(digits.x_test[1])
    assert caught.value.status == 402 and evaluated == []  # refused before any CKKS work


def test_keys_uploaded_for_a_replaced_model_are_not_used(model, digits, tmp_path):
    """A grant revoked, another model served: a client still holding the key set it
    uploaded before gets asked for new keys instead of answers from the old weights."""
    w = World(model, tmp_path / "state.db")
    w.balances[w.client_id.address] = 10**9
    w.client.predict_encrypted(digits.x_test[0])  # keys uploaded for version 7's plan
    other = MLP(64, 10, (32,), activation="square", seed=1)
    served = dataclasses.replace(
        w.service.model, version=8, predict=other.logits, plan=compile_model(other)
    )
    w.service.model = served
    w.client.info = ModelInfo.from_doc(
        {
            "provider": w.provider_id.address,
            "x25519": w.provider_id.x25519.public_bytes.hex(),
            **served.info(),
        }
    )
    with pytest.raises(ProviderRefused) as caught:
        w.client.predict_encrypted(digits.x_test[1])
    assert caught.value.status == 428 and caught.value.cause == "unknown_key_set"


def test_an_altered_receipt_in_an_answer_is_caught(world, digits):
    honest = world.post

    def tamper(path: str, raw: bytes) -> tuple[int, bytes]:
        status, answer = honest(path, raw)
        from chainml.inference.service import decode_response

        receipt, body = decode_response(answer)
        cheaper = type(receipt)(**{**receipt.__dict__, "price": receipt.price * 2})
        return status, encode_response(cheaper, body)

    world.client.post = tamper
    try:
        with pytest.raises(AlteredReceipt):
            world.client.predict_plain(digits.x_test[:1])
    finally:
        world.client.post = honest


def test_a_query_at_another_scale_is_bad_input_not_a_server_error(world, digits):
    """SEAL raised ValueError out of handle for 2^50 and 2^60 (a bare 500), and answered
    2^20 and 2^30 with wrong logits; every one is now a counted refusal."""
    client, _ = world.client._he_client()
    for bits in (20, 30, 50, 60):
        own = client.scale
        client.scale = 2.0**bits
        try:
            body = client.encrypt_query(digits.x_test[0])
        finally:
            client.scale = own
        before = world.issuer.owed(world.client_id.address)
        with pytest.raises(InferenceRefused) as caught:
            world.service.handle(_fresh(world, body=body))
        assert caught.value.cause == "bad_input" and "scale" in str(caught.value)
        assert world.issuer.owed(world.client_id.address) == before  # nothing billed
    assert world.client.predict_encrypted(digits.x_test[0]).shape == (10,)


def test_keys_that_do_not_fit_the_plan_are_refused_at_upload(world):
    client, _ = world.client._he_client()
    keys = client.evaluation_keys()
    short = dataclasses.replace(client.plan, rotations=client.plan.rotations[:-1])
    partial = he.HEClient(short).evaluation_keys()
    for blobs in (
        [keys["galois"], keys["relin"]],  # swapped
        [keys["relin"], keys["relin"]],
        [partial["relin"], partial["galois"]],  # a rotation the plan uses is missing
    ):
        with pytest.raises(InferenceRefused) as caught:
            world.service.handle(_fresh(world, mode="he-keys", body=pack_blobs(blobs)))
        assert caught.value.cause == "bad_input" and caught.value.status == 400


def test_the_client_checks_a_query_before_sending_it(world, digits):
    sent = len(world.received)
    for bad in (np.zeros(63), np.zeros(65), np.zeros((2, 64)), digits.x_test[0] * 10):
        with pytest.raises(BadQuery):
            world.client.predict_encrypted(bad)
    with pytest.raises(OutOfRange):
        world.client.predict_encrypted(digits.x_test[0] * 10)
    with pytest.raises(BadQuery):
        world.client.predict_encrypted_batch(np.zeros((3, 29)))
    assert len(world.received) == sent  # nothing left the client


def test_a_batch_larger_than_a_ciphertext_goes_in_chunks(world, model, digits):
    client, _ = world.client._he_client()
    x = np.resize(digits.x_test, (client.parameters.slots + 3, 64))
    sent = len(world.received)
    logits = world.client.predict_encrypted_batch(x)
    batches = [r for r in world.received[sent:] if b'"mode":"he-batch"' in r[:1024]]
    assert len(batches) == 2 and logits.shape == (len(x), 10)
    assert (logits.argmax(1) == model.predict(x)).mean() >= 0.995


@pytest.fixture(scope="module")
def capped(model, tmp_path_factory):
    """A provider that takes 1 MiB a request and holds 12 MiB of parts: a digits batch
    (64 ciphertexts, about 11 MB) must go in parts."""
    limits = Limits(max_body=1 << 20, max_pending=12 << 20)
    w = World(model, tmp_path_factory.mktemp("capped") / "state.db", limits)
    w.balances[w.client_id.address] = 10**9
    return w


def _modes(raws: list[bytes]) -> list[str]:
    return [decode_request(raw)[0].mode for raw in raws]


def test_a_batch_over_the_body_cap_goes_in_parts_and_is_billed_once(capped, model, digits):
    x = digits.x_test
    sent = len(capped.received)
    logits = capped.client.predict_encrypted_batch(x)
    assert (logits.argmax(1) == model.predict(x)).mean() >= 0.995
    raws = capped.received[sent:]
    modes = _modes(raws)
    parts = modes.count("he-part")
    assert modes == ["he-keys"] + ["he-part"] * parts + ["he-batch-end"] and parts >= 10
    assert all(len(decode_request(r)[2]) <= 1 << 20 for r in raws[1:])  # every body under
    billed = [r for r in capped.client.book.held.values() if r.price == BATCH_PRICE]
    assert len(billed) == 1 and len(capped.client.book.held) == 1  # the parts are free
    assert not capped.service._pending  # nothing left held


def test_parts_out_of_order_unnamed_or_too_many_are_refused(capped, digits):
    w = capped
    w.client._he_client()
    blob = [b"\x00" * 1000]
    before = w.issuer.owed(w.client_id.address)

    def refused(mode: str, body: bytes) -> str:
        with pytest.raises(InferenceRefused) as caught:
            w.service.handle(_fresh(w, mode, body))
        return str(caught.value.cause)

    assert refused("he-batch-end", pack_batch_end(ZERO32, 0, blob)) == "bad_input"
    assert refused("he-part", pack_part(5, blob)) == "bad_input"  # nothing held yet
    assert refused("he-part", pack_part(0, blob * 64)) == "bad_input"  # leaves no end
    assert refused("he-part", b"\x00\x00") == "bad_input"  # no offset
    first = pack_part(0, blob)
    w.service.handle(_fresh(w, "he-part", first))
    assert refused("he-batch-end", pack_batch_end(b"\x01" * 32, 1, blob * 63)) == "bad_input"
    # the wrong end consumed the parts: the right one now names nothing held
    chain = parts_hash(ZERO32, keccak256(first))
    assert refused("he-batch-end", pack_batch_end(chain, 1, blob * 63)) == "bad_input"
    # parts the provider can hold, and ciphertexts that are not ones: typed at the end
    w.service.handle(_fresh(w, "he-part", first))
    assert refused("he-batch-end", pack_batch_end(chain, 1, blob * 63)) == "bad_input"
    big = [b"\x00" * 900_000]
    for i in range(13):
        w.service.handle(_fresh(w, "he-part", pack_part(i, big)))
    assert refused("he-part", pack_part(13, big)) == "oversized"  # over the 12 MiB held
    assert not w.service._pending
    assert w.issuer.owed(w.client_id.address) == before  # nothing billed for any of it
    assert w.client.predict_encrypted(digits.x_test[0]).shape == (10,)  # still serving


def test_a_provider_that_acknowledges_other_parts_is_caught(capped, digits):
    """A provider whose answer to a batch part names another running hash (it holds, or
    claims to hold, other parts than were sent): the client stops with ``BadResponse``
    before it sends the end, and pays nothing."""
    from chainml.inference.service import BadResponse

    honest = capped.client.post
    held = len(capped.client.book.held)

    def lying(path: str, raw: bytes) -> tuple[int, bytes]:
        status, answer = honest(path, raw)
        if decode_request(raw)[0].mode == "he-part":
            doc = json.loads(answer)
            answer = json.dumps({**doc, "parts": "00" * 32}).encode()
        return status, answer

    capped.client._he_client()  # the keys are uploaded, honestly answered
    capped.client.post = lying
    try:
        sent = len(capped.received)
        with pytest.raises(BadResponse):
            capped.client.predict_encrypted_batch(digits.x_test[:8])
        assert _modes(capped.received[sent:]) == ["he-part"]
    finally:
        capped.client.post = honest
    assert len(capped.client.book.held) == held
