"""Signed inference receipts, their batches on chain, and the client's checks.

For every request it serves, a provider signs a receipt (EIP-712 under the Receipts
contract's domain): provider, client, model version, the hashes of the request and the
response, the price and a per-client counter that starts at 1 and never repeats.  Every
``max_receipts`` receipts or ``max_age`` seconds it posts, per client, one batch on chain:
the Merkle root of the receipts' struct hashes, their count and the amount due (the
provider's durable side is ``chainml.node.inference.SqliteReceipts``).

The client keeps every receipt it was given (``ReceiptBook``) and checks each batch
against the receipts the provider lists for it.  It refuses — each with its own error —
a receipt whose signature or content differs from the one it holds (``AlteredReceipt``),
a batch that leaves out a receipt it holds from the counters the batch covers
(``ReceiptLeftOut``), a counter listed twice or already paid in an earlier batch
(``CountedTwice``), a root, count or amount that do not match the listing
(``BatchMismatch``), and a batch that bills a receipt the client rejected when it got it —
an answer whose proof of inference failed (``RejectedAnswer``); it then disputes the batch
on chain within the dispute window.
Both sides are pure: nothing here sends a transaction or reads a clock of its own.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chainml.crypto import wire
from chainml.crypto.eip712 import RECEIPT, domain_separator
from chainml.crypto.errors import CryptoError
from chainml.crypto.hashing import keccak256
from chainml.crypto.keys import AccountKey, recover_address
from chainml.crypto.merkle import MerkleTree
from chainml.errors import ChainmlError

RECEIPT_SCHEMA = (  # a receipt's JSON form (``Receipt.to_doc``), keys sorted
    ("client", wire.address),
    ("counter", wire.uint(64)),
    ("model_version", wire.uint(256)),
    ("price", wire.decimal(256)),  # a string: past what every JSON reader holds exactly
    ("provider", wire.address),
    ("request_hash", wire.hex_bytes(32)),
    ("response_hash", wire.hex_bytes(32)),
    ("signature", wire.hex_bytes(65)),
)


class ReceiptError(ChainmlError):
    """A receipt or a batch the client does not accept; the subclass says why."""


class AlteredReceipt(ReceiptError):
    """Not signed by the provider, or not the receipt the client was given."""


class ReceiptLeftOut(ReceiptError):
    """A receipt the client holds is missing from a batch that covers its counter."""


class CountedTwice(ReceiptError):
    """A counter listed twice, or already paid in an earlier batch."""


class BatchMismatch(ReceiptError):
    """The batch on chain does not match the receipts listed for it."""


class RejectedAnswer(ReceiptError):
    """The batch bills a receipt for an answer the client rejected (its proof failed)."""


@dataclass(frozen=True)
class Receipt:
    provider: str
    client: str
    model_version: int
    request_hash: bytes
    response_hash: bytes
    price: int
    counter: int
    signature: bytes = b""

    def struct_hash(self) -> bytes:
        return RECEIPT.hash(
            self.provider,
            self.client,
            self.model_version,
            self.request_hash,
            self.response_hash,
            self.price,
            self.counter,
        )

    def to_doc(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "client": self.client,
            "model_version": self.model_version,
            "request_hash": self.request_hash.hex(),
            "response_hash": self.response_hash.hex(),
            "price": str(self.price),
            "counter": self.counter,
            "signature": self.signature.hex(),
        }

    @classmethod
    def from_doc(cls, doc: Any) -> Receipt:
        """Parse ``to_doc``'s form, each value in its one spelling (``RECEIPT_SCHEMA``);
        raises ``ValueError`` on anything else."""
        names = [name for name, _ in RECEIPT_SCHEMA]
        if not isinstance(doc, dict) or sorted(doc) != names:
            raise ValueError(f"not a receipt: expected exactly the keys {', '.join(names)}")
        try:
            d = {name: check(doc[name]) for name, check in RECEIPT_SCHEMA}
        except (TypeError, ValueError) as exc:
            raise ValueError(f"not a receipt: {exc}") from None
        return cls.from_fields(d)

    @classmethod
    def from_fields(cls, d: dict[str, Any]) -> Receipt:
        """From ``RECEIPT_SCHEMA``'s decoded values."""
        if d["counter"] == 0:
            raise ValueError("not a receipt: counters start at 1")
        return cls(
            provider=d["provider"],
            client=d["client"],
            model_version=d["model_version"],
            request_hash=d["request_hash"],
            response_hash=d["response_hash"],
            price=d["price"],
            counter=d["counter"],
            signature=d["signature"],
        )

    def digest(self, chain_id: int, receipts_contract: str) -> bytes:
        return keccak256(
            b"\x19\x01" + domain_separator(chain_id, receipts_contract) + self.struct_hash()
        )

    def signed(self, account: AccountKey, chain_id: int, receipts_contract: str) -> Receipt:
        """This receipt signed by ``account`` (the provider)."""
        signature = account.sign_digest(self.digest(chain_id, receipts_contract))
        return Receipt(**{**self.__dict__, "signature": signature})

    def verify(self, chain_id: int, receipts_contract: str) -> None:
        try:
            signer = recover_address(self.digest(chain_id, receipts_contract), self.signature)
        except CryptoError:
            raise AlteredReceipt(f"receipt {self.counter}: malformed signature") from None
        if signer.lower() != self.provider.lower():
            raise AlteredReceipt(f"receipt {self.counter} is not signed by its provider")


def batch_root(receipts: Sequence[Receipt]) -> bytes:
    """The Merkle root a provider posts: over the receipts' struct hashes, by counter."""
    ordered = sorted(receipts, key=lambda r: r.counter)
    return MerkleTree([r.struct_hash() for r in ordered]).root


@dataclass(frozen=True)
class Batch:
    """What the provider posts on chain, and the receipts it lists for it off chain."""

    client: str
    root: bytes
    count: int
    amount: int
    receipts: tuple[Receipt, ...]

    @classmethod
    def of(cls, client: str, receipts: Sequence[Receipt]) -> Batch:
        """The batch an honest provider posts for ``receipts``."""
        listed = tuple(receipts)
        return cls(client, batch_root(listed), len(listed), sum(r.price for r in listed), listed)


@dataclass
class ReceiptBook:
    """The client's side: every receipt it was given, and the counters already paid."""

    client: str
    chain_id: int
    receipts_contract: str
    held: dict[tuple[str, int], Receipt] = field(default_factory=dict)
    paid: set[tuple[str, int]] = field(default_factory=set)
    checked: set[int] = field(default_factory=set)  # batch ids already checked
    # receipts for answers the client rejected (a proof that failed), with why
    rejected: dict[tuple[str, int], str] = field(default_factory=dict)

    def save(self, path: Path) -> None:
        """Keep the book in a file (written whole or not at all)."""
        from chainml.storage.store import atomic_file

        doc = {
            "client": self.client,
            "chain_id": self.chain_id,
            "receipts_contract": self.receipts_contract,
            "held": [r.to_doc() for r in self.held.values()],
            "paid": sorted([p, c] for p, c in self.paid),
            "checked": sorted(self.checked),
            "rejected": sorted([p, c, why] for (p, c), why in self.rejected.items()),
        }
        with atomic_file(Path(path), prefix=".book-") as fh:
            fh.write(json.dumps(doc, indent=1).encode())

    @classmethod
    def load(cls, path: Path, client: str, chain_id: int, receipts_contract: str) -> ReceiptBook:
        """The book kept at ``path``, or a new one; refuses a book of another client or
        deployment."""
        book = cls(client, chain_id, receipts_contract)
        if not Path(path).exists():
            return book
        try:
            doc = json.loads(Path(path).read_text())
            same = (doc["client"].lower(), doc["chain_id"], doc["receipts_contract"].lower())
            if same != (client.lower(), chain_id, receipts_contract.lower()):
                raise ReceiptError(f"{path} is the receipt book of another client or chain")
            for item in doc["held"]:
                r = Receipt.from_doc(item)
                book.held[(r.provider.lower(), r.counter)] = r
            book.paid = {(str(p), int(c)) for p, c in doc["paid"]}
            book.checked = {int(b) for b in doc["checked"]}
            book.rejected = {(str(p), int(c)): str(why) for p, c, why in doc.get("rejected", [])}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ReceiptError(f"{path} is not a receipt book: {type(exc).__name__}") from None
        return book

    def record(self, receipt: Receipt, request_hash: bytes, response_hash: bytes) -> None:
        """Keep a receipt just received, after checking it is for this request and answer."""
        receipt.verify(self.chain_id, self.receipts_contract)
        if receipt.client.lower() != self.client.lower():
            raise AlteredReceipt("a receipt for another client")
        if (receipt.request_hash, receipt.response_hash) != (request_hash, response_hash):
            raise AlteredReceipt("the receipt names another request or response")
        key = (receipt.provider.lower(), receipt.counter)
        if key in self.held:
            raise CountedTwice(f"counter {receipt.counter} was already used")
        self.held[key] = receipt

    def reject(self, receipt: Receipt, why: str) -> None:
        """Mark a receipt held as billing an answer the client rejected: a batch that bills
        it is disputed (``RejectedAnswer``)."""
        key = (receipt.provider.lower(), receipt.counter)
        if self.held.get(key) != receipt:
            raise AlteredReceipt("only a receipt the client holds can be rejected")
        self.rejected[key] = why

    def check(self, batch: Batch, provider: str) -> None:
        """Accept a posted batch (root, count, amount from chain; receipts listed off
        chain) or raise why not; accepted counters count as paid."""
        provider = provider.lower()
        counters = [r.counter for r in batch.receipts]
        if len(set(counters)) != len(counters):
            raise CountedTwice("a counter is listed twice in the batch")
        for r in batch.receipts:
            if r.provider.lower() != provider or r.client.lower() != self.client.lower():
                raise AlteredReceipt(f"receipt {r.counter} names another provider or client")
            if (provider, r.counter) in self.paid:
                raise CountedTwice(f"receipt {r.counter} was paid in an earlier batch")
            mine = self.held.get((provider, r.counter))
            if mine is None or mine != r:
                raise AlteredReceipt(f"receipt {r.counter} is not the one this client holds")
        if counters:
            low, high = min(counters), max(counters)
            for p, c in self.held:
                if p == provider and low <= c <= high and c not in counters:
                    raise ReceiptLeftOut(f"receipt {c} is held but not in the batch")
        if batch.root != batch_root(batch.receipts):
            raise BatchMismatch("the root on chain is not the root of the listed receipts")
        if batch.count != len(batch.receipts) or batch.amount != sum(
            r.price for r in batch.receipts
        ):
            raise BatchMismatch("the count or amount on chain is not the listing's")
        for c in sorted(counters):
            if (provider, c) in self.rejected:
                raise RejectedAnswer(
                    f"receipt {c} billed a rejected answer: {self.rejected[(provider, c)]}"
                )
        self.paid.update((provider, c) for c in counters)


def reason_hash(error: ReceiptError) -> bytes:
    """What a dispute records on chain: the hash of the error's kind and message."""
    return keccak256(f"{type(error).__name__}: {error}".encode())
