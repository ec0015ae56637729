"""Receipts for paid inference: signed per request, batched under a root on the Receipts
contract, checked by the client, disputed on chain when they do not add up."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from chainml.crypto import Identity
from chainml.inference.receipts import (
    AlteredReceipt,
    Batch,
    BatchMismatch,
    CountedTwice,
    ReceiptBook,
    ReceiptLeftOut,
    reason_hash,
)
from chainml.ledger.bindings import Chainml
from chainml.ledger.client import LedgerClient, LocalSigner
from chainml.ledger.deploy import SystemParameters, deploy_system
from chainml.ledger.devchain import DEV_KEY, DevChainProcess
from chainml.node.inference import SqliteReceipts
from chainml.node.state import NodeState

ETHER = 10**18
PRICE = 10**15
WINDOW = 600


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LedgerClient, Chainml]]:
    with DevChainProcess(Path(tmp_path_factory.mktemp("receipts")) / "chain") as process:
        client = LedgerClient(process.url, timeout=20)
        dev = LocalSigner.from_key(DEV_KEY)
        params = SystemParameters(dispute_window=WINDOW)
        yield client, Chainml.connect(client, deploy_system(client, dev, params))
        client.close()


class Issuer:
    """The provider's durable receipts, with the batching rule of the tests: 5 receipts or
    30 seconds."""

    def __init__(self, receipts: SqliteReceipts) -> None:
        self.receipts = receipts
        self.issue = receipts.issue

    def due(self) -> list[Batch]:
        return self.receipts.due(5, 30)


def _parties(client: LedgerClient, cm: Chainml, tmp: Path):
    dev = LocalSigner.from_key(DEV_KEY)
    provider, user = Identity.generate(), Identity.generate()
    for ident in (provider, user):
        client.transact(dev, to=ident.address, value=2 * ETHER)
    cm.receipts.deposit(user.account, ETHER // 10)
    now = [0.0]
    issuer = Issuer(
        SqliteReceipts(
            NodeState(tmp / "provider.db"),
            provider.account,
            chain_id=client.chain_id,
            receipts_contract=cm.receipts.address,
            clock=lambda: now[0],
        )
    )
    book = ReceiptBook(user.address, client.chain_id, cm.receipts.address)
    return provider, user, issuer, book, now


def _serve(issuer: Issuer, book: ReceiptBook, n: int) -> None:
    for _ in range(n):
        request, response = os.urandom(32), os.urandom(32)
        book.record(issuer.issue(book.client, 1, request, response, PRICE), request, response)


def _post(cm: Chainml, provider: Identity, batch: Batch, issuer: Issuer) -> tuple[int, Batch]:
    """Post ``batch`` as the provider's account, billed in the provider's store."""
    batch_id = cm.receipts.post_batch(
        provider.account, batch.client, batch.root, batch.count, batch.amount
    )
    issuer.receipts.mark(batch, batch_id)
    info = cm.receipts.batch(batch_id)  # what the client reads back from chain
    return batch_id, Batch(
        info.client, info.receipt_root, info.receipt_count, info.amount, batch.receipts
    )


def test_an_honest_batch_is_accepted_and_settles(chain, tmp_path):
    client, cm = chain
    provider, user, issuer, book, now = _parties(client, cm, tmp_path)
    _serve(issuer, book, 3)
    assert issuer.due() == []  # neither 5 receipts nor 30 seconds yet
    _serve(issuer, book, 2)
    (batch,) = issuer.due()
    batch_id, posted = _post(cm, provider, batch, issuer)
    book.check(posted, provider.address)
    assert cm.receipts.available(user.address) == ETHER // 10 - 5 * PRICE
    client.increase_time(WINDOW + 1)
    cm.receipts.settle(provider.account, batch_id)
    assert cm.receipts.earnings(provider.address) == 5 * PRICE
    _serve(issuer, book, 1)
    now[0] = 31.0  # the age rule cuts a batch of one
    (late,) = issuer.due()
    assert late.count == 1 and late.receipts[0].counter == 6
    with pytest.raises(CountedTwice):  # an old receipt billed again in a new batch
        book.check(dataclasses.replace(batch, receipts=batch.receipts[:1]), provider.address)


def test_a_batch_cut_before_a_crash_is_posted_again_as_it_was(chain, tmp_path):
    """The provider cut a batch and stopped before recording it; receipts issued since do
    not join it: the next pass offers the same receipts (same root, so the same durable
    action finds it on chain), and the new ones in a batch of their own."""
    client, cm = chain
    provider, user, issuer, book, now = _parties(client, cm, tmp_path)
    _serve(issuer, book, 5)
    (batch,) = issuer.due()
    issuer.receipts.cut(batch)  # ... then the node is killed
    _serve(issuer, book, 2)
    now[0] = 31.0
    again, rest = issuer.due()
    assert again == batch
    assert [r.counter for r in rest.receipts] == [6, 7]
    for b in (again, rest):
        _, posted = _post(cm, provider, b, issuer)
        book.check(posted, provider.address)
    assert issuer.due() == []
    assert cm.receipts.available(user.address) == ETHER // 10 - 7 * PRICE


def _cheat(batch: Batch, receipts) -> Batch:
    return Batch.of(batch.client, receipts)


@pytest.mark.parametrize(
    ("cheat", "error"),
    [
        (
            lambda b: _cheat(
                b, [dataclasses.replace(b.receipts[0], price=PRICE * 9), *b.receipts[1:]]
            ),
            AlteredReceipt,
        ),
        (
            lambda b: _cheat(b, [b.receipts[0], b.receipts[1], b.receipts[3], b.receipts[4]]),
            ReceiptLeftOut,
        ),
        (lambda b: _cheat(b, [*b.receipts, b.receipts[2]]), CountedTwice),
        (lambda b: dataclasses.replace(b, amount=b.amount + PRICE), BatchMismatch),
    ],
    ids=["altered", "left-out", "twice", "amount"],
)
def test_a_dishonest_batch_is_caught_and_disputed(chain, tmp_path, cheat, error):
    client, cm = chain
    provider, user, issuer, book, _ = _parties(client, cm, tmp_path)
    _serve(issuer, book, 5)
    (honest,) = issuer.due()
    batch_id, posted = _post(cm, provider, cheat(honest), issuer)
    with pytest.raises(error) as caught:
        book.check(posted, provider.address)
    before = cm.receipts.available(user.address)
    cm.receipts.dispute(user.account, batch_id, reason_hash(caught.value))
    info = cm.receipts.batch(batch_id)
    assert info.status == 3 and info.reason_hash == reason_hash(caught.value)
    assert cm.receipts.available(user.address) == before + posted.amount  # nothing paid


def test_a_receipt_is_checked_when_it_arrives(chain, tmp_path):
    client, cm = chain
    provider, user, issuer, book, _ = _parties(client, cm, tmp_path)
    request, response = os.urandom(32), os.urandom(32)
    receipt = issuer.issue(user.address, 1, request, response, PRICE)
    with pytest.raises(AlteredReceipt):
        book.record(receipt, request, os.urandom(32))  # not the answer it got
    with pytest.raises(AlteredReceipt):
        book.record(dataclasses.replace(receipt, price=1), request, response)
    impostor = Identity.generate()
    forged = dataclasses.replace(
        receipt,
        signature=impostor.account.sign_digest(
            receipt.digest(client.chain_id, cm.receipts.address)
        ),
    )
    with pytest.raises(AlteredReceipt):
        book.record(forged, request, response)
    book.record(receipt, request, response)
    with pytest.raises(CountedTwice):
        book.record(receipt, request, response)
