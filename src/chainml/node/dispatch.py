"""Opened envelopes to the roles that handle their purpose (``plugin.Plugged``).

The API answers 202 as soon as an envelope is accepted and hands it to ``put``: an
``immediate`` handler takes it there (it only queues work for its role's own thread);
every other purpose is queued and handled one at a time on the dispatcher's thread.  An
envelope whose purpose no role of this node handles is dropped; a handler's refusal is
logged by type and never stops the dispatcher.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Mapping

from chainml.errors import ChainmlError
from chainml.node.envelope import Opened
from chainml.node.plugin import Handler, Plugged
from chainml.training.errors import TrainingError

log = logging.getLogger("chainml.node")


class PurposeTaken(ChainmlError):
    """Two roles claim the same purpose."""


class Dispatcher:
    def __init__(
        self,
        handlers: Mapping[str, Handler],
        immediate: Mapping[str, Handler] | None = None,
        *,
        max_queued: int = 10_000,
    ) -> None:
        self.handlers = dict(handlers)
        self.immediate = dict(immediate or {})
        both = set(self.handlers) & set(self.immediate)
        if both:
            raise PurposeTaken(f"purposes handled twice: {sorted(both)}")
        self.queue: queue.Queue[Opened] = queue.Queue(maxsize=max_queued)

    @classmethod
    def of(cls, plugged: Iterable[Plugged]) -> Dispatcher:
        """The dispatcher of these roles; ``PurposeTaken`` if two claim one purpose."""
        handlers: dict[str, Handler] = {}
        immediate: dict[str, Handler] = {}
        owner: dict[str, str] = {}
        for role in plugged:
            for into, given in ((handlers, role.handlers), (immediate, role.immediate)):
                for purpose, handler in given.items():
                    if purpose in owner:
                        raise PurposeTaken(f"{purpose!r}: {owner[purpose]} and {role.name}")
                    owner[purpose] = role.name
                    into[purpose] = handler
        return cls(handlers, immediate)

    def put(self, opened: Opened) -> None:
        purpose = opened.header.purpose
        now = self.immediate.get(purpose)
        if now is not None:
            now(opened)  # cheap: queued for the role's own thread
            return
        if purpose not in self.handlers:
            return  # no role of this node takes it
        try:
            self.queue.put_nowait(opened)
        except queue.Full:
            log.warning("dispatcher queue full: envelope dropped")

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                opened = self.queue.get(timeout=0.5)
            except queue.Empty:
                continue
            purpose = opened.header.purpose
            try:
                self.handlers[purpose](opened)
            except (ChainmlError, TrainingError) as exc:
                log.warning(
                    "%s from %s refused: %s: %s",
                    purpose,
                    opened.header.sender,
                    type(exc).__name__,
                    exc,
                )
