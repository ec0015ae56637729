"""When a node treats a step on chain as settled: the one policy its workers ask.

A step is a transaction the node sent or a chain fact it acts on (a job created, a round
recorded, a model granted).  ``Settlement`` says which block is the newest settled one —

- ``"finalized"``: the chain's ``finalized`` block (proof-of-stake chains: two epochs,
  about 13 minutes on Ethereum; an L2 answers its own notion);
- ``"safe"``: the chain's ``safe`` block (justified: rarely reorganised, sooner);
- a depth ``k``: the head minus ``k``, for chains without those tags (``0``: every mined
  block, the behaviour of a node before this setting, and the default on the dev chain);

and a block is settled when it is at or below that block *and* still the chain's block at
its height (a step whose block was reorganised away is not settled, whatever its depth).

The policy also holds the node's trust in its view of the chain.  When the chain monitor
finds the node's endpoint disagreeing with endpoints on other hosts (an eclipse: a stale
head or a private fork), it ``hold``s the view; until it ``release``s it, every question
(``settled_head``, ``check``) raises ``ViewDistrusted``, and a ``LedgerClient`` given the
policy sends no transaction — so the workers built on that client stop acting, and say why.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

from chainml.ledger.errors import (
    ChainDataError,
    RpcError,
    SettlementUnsupported,
    SettleSettingError,
    ViewDistrusted,
)

if TYPE_CHECKING:
    from chainml.ledger.client import LedgerClient, Receipt

log = logging.getLogger("chainml.ledger.settle")

TAGS = ("finalized", "safe")


class Settlement:
    """``mode``: ``"finalized"``, ``"safe"`` or a confirmation depth (an int >= 0).
    Thread-safe: the monitor holds and releases the view while workers ask."""

    def __init__(self, mode: str | int = 0) -> None:
        if isinstance(mode, bool) or not (mode in TAGS or (isinstance(mode, int) and mode >= 0)):
            raise SettleSettingError(
                f"settle must be 'finalized', 'safe' or a depth >= 0, not {mode!r}"
            )
        self.mode: str | int = mode
        self._lock = threading.Lock()
        self._held: str | None = None

    @classmethod
    def parse(cls, value: object, confirmations: int = 0) -> Settlement:
        """The policy a ``[chain] settle`` value names: ``"finalized"``, ``"safe"``, a
        depth (an integer, or its digits); absent (``None`` or ``""``): ``confirmations``."""
        if value is None or value == "":
            return cls(confirmations)
        if isinstance(value, str) and value.strip().isdigit():
            return cls(int(value))
        if isinstance(value, str | int):
            return cls(value)
        raise SettleSettingError(f"settle must be 'finalized', 'safe' or a depth, not {value!r}")

    def __repr__(self) -> str:
        return f"Settlement({self.mode!r})"

    # -- the view ---------------------------------------------------------------------

    def hold(self, reason: str) -> bool:
        """Stop settling anything (the view is distrusted, for ``reason``); True if it was
        not held before.  The reason it was first held for stands until ``release``."""
        with self._lock:
            first = self._held is None
            if first:
                self._held = reason
        if first:
            log.warning("chain view distrusted, the node stops acting: %s", reason)
        return first

    def release(self) -> bool:
        """Trust the view again; True if it was held."""
        with self._lock:
            was, self._held = self._held, None
        if was is not None:
            log.warning("chain view agrees again, the node acts again (held for: %s)", was)
        return was is not None

    @property
    def held(self) -> str | None:
        """Why the view is distrusted, or None."""
        with self._lock:
            return self._held

    def check(self) -> None:
        """Raise ``ViewDistrusted`` while the view is held."""
        reason = self.held
        if reason is not None:
            raise ViewDistrusted(f"the chain view is distrusted: {reason}")

    # -- settlement -------------------------------------------------------------------

    def settled_head(self, client: LedgerClient) -> int:
        """The newest settled block's number (``ViewDistrusted`` while the view is held,
        ``SettlementUnsupported`` if the chain has no such tag)."""
        self.check()
        if isinstance(self.mode, int):
            return max(client.block_number() - self.mode, -1)
        try:
            block = client.block(self.mode)
            return int(str(block["number"]), 16)
        except (RpcError, ChainDataError, KeyError, ValueError) as exc:
            raise SettlementUnsupported(
                f"{client.url} answers no {self.mode!r} block: set [chain] settle to a depth"
            ) from exc

    def is_settled(self, client: LedgerClient, block_number: int, block_hash: str) -> bool:
        """Whether the block ``block_number`` with hash ``block_hash`` is settled: at or
        below the settled head and still the chain's block at that height."""
        if block_number > self.settled_head(client):
            return False
        try:
            canonical = str(client.block(block_number).get("hash"))
        except ChainDataError:
            return False  # the chain is shorter now than the step's block
        return canonical.lower() == block_hash.lower()

    def receipt_settled(self, client: LedgerClient, receipt: Receipt) -> bool:
        """Whether a mined transaction is settled (its block settled and still canonical)."""
        return self.is_settled(client, receipt.block_number, receipt.block_hash)


__all__ = ["TAGS", "Settlement"]
