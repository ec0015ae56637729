"""Event streams: contract events in chain order, only once confirmed, resumable.

A stream hands out events from settled blocks only — at least ``confirmations`` deep, or
at or below the block a ``Settlement`` policy names (``finalized``, ``safe``) — in
(block, log) order.  The consumer acts on a batch and then acknowledges it; the stream
stores its cursor (last block and its hash) only then, so a crash between the two repeats
the batch rather than skipping it — consumers are idempotent.  If the block under the
cursor changed hash, the chain reorganised below what was settled and ``ReorgDetected`` is
raised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from chainml.ledger.abi import Event
from chainml.ledger.client import BoundContract, LedgerClient
from chainml.ledger.errors import ReorgDetected
from chainml.ledger.settle import Settlement


@dataclass(frozen=True)
class Cursor:
    """The last block whose events were all acknowledged."""

    block_number: int
    block_hash: str


class CursorStore(Protocol):
    """Where a stream keeps its cursor between runs (the node keeps it in SQLite)."""

    def load(self, name: str) -> Cursor | None: ...

    def save(self, name: str, cursor: Cursor) -> None: ...


class MemoryCursorStore:
    """A cursor store that lives as long as the process."""

    def __init__(self) -> None:
        self._cursors: dict[str, Cursor] = {}

    def load(self, name: str) -> Cursor | None:
        return self._cursors.get(name)

    def save(self, name: str, cursor: Cursor) -> None:
        self._cursors[name] = cursor


@dataclass(frozen=True)
class EventBatch:
    """Events up to and including block ``cursor.block_number``."""

    events: list[Event]
    cursor: Cursor | None


class EventStream:
    """Settled events of several contracts, resumable from a stored cursor.  ``settlement``
    (when given) decides which blocks are settled; else ``confirmations`` deep ones are."""

    def __init__(
        self,
        client: LedgerClient,
        contracts: Sequence[BoundContract],
        *,
        name: str,
        store: CursorStore,
        confirmations: int = 0,
        start_block: int = 0,
        max_blocks: int = 5_000,
        settlement: Settlement | None = None,
    ) -> None:
        if confirmations < 0 or max_blocks < 1:
            raise ValueError("confirmations must be >= 0 and max_blocks >= 1")
        self.settlement = settlement if settlement is not None else Settlement(confirmations)
        self.client = client
        self.name = name
        self.store = store
        self.confirmations = confirmations
        self.start_block = start_block
        self.max_blocks = max_blocks
        self._by_address = {c.address.lower(): c for c in contracts}

    def poll(self) -> EventBatch:
        """New confirmed events (at most ``max_blocks`` blocks' worth); acknowledge with ``ack``."""
        cursor = self.store.load(self.name)
        if cursor is not None:
            seen = self.client.block(cursor.block_number)
            if str(seen.get("hash")) != cursor.block_hash:
                raise ReorgDetected(
                    f"block {cursor.block_number} changed after {self.name} processed it"
                )
        start = cursor.block_number + 1 if cursor else self.start_block
        safe = self.settlement.settled_head(self.client)
        if start > safe:
            return EventBatch([], None)
        end = min(safe, start + self.max_blocks - 1)
        raw = self.client.logs(
            address=[c.address for c in self._by_address.values()],
            from_block=start,
            to_block=end,
        )
        events = []
        for log in raw:
            contract = self._by_address.get(str(log.get("address", "")).lower())
            event = contract.abi.decode_log(log) if contract else None
            if event is not None:
                events.append(event)
        events.sort(key=lambda e: (e.block_number, e.log_index))
        end_hash = str(self.client.block(end).get("hash"))
        return EventBatch(events, Cursor(end, end_hash))

    def ack(self, batch: EventBatch) -> None:
        """Record that every event of ``batch`` was acted upon."""
        if batch.cursor is not None:
            self.store.save(self.name, batch.cursor)
