"""An in-memory transport and a clock moved by hand: the simulator's round, and the round
engine's tests.

``MemoryTransport`` hands each message to its recipient's ``TrainerSession`` at once and
queues the answers for the aggregator, each due at the clock's time plus the delay a
``network`` policy gives it (None: lost), so that a test can play an attacker who
controls delivery: drop, delay, reorder.  ``drop`` names trainers that go silent from a
stage on (a crash: nothing reaches them from then on).  Waiting for an arrival that is not
due moves the ``ManualClock`` instead of sleeping, so a stage's timeout costs nothing.
"""

from __future__ import annotations

import functools
import heapq
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from chainml.training.engine.base import Arrival, Outgoing, TrainerSession
from chainml.training.secagg import (
    NeighbourKeys,
    SecAggError,
    ShareBatch,
    Stage,
    SurvivorList,
    UnmaskRequest,
)

# the stage a message to a trainer opens
STAGE_OF: dict[type, str] = {
    NeighbourKeys: Stage.SHARES,
    ShareBatch: Stage.MASKED,
    SurvivorList: Stage.CONSISTENCY,
    UnmaskRequest: Stage.UNMASK,
}

# (stage, sender's client id, message) -> the delay before it arrives, or None: lost
Network = Callable[[str, int, Any], float | None]


class ManualClock:
    """Seconds that pass only when ``advance`` says so."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time does not go back")
        self.now += seconds


class MemoryTransport:
    def __init__(
        self,
        trainers: Mapping[int, tuple[str, TrainerSession]],
        clock: ManualClock,
        *,
        drop: Mapping[str, Iterable[int]] | None = None,
        network: Network | None = None,
        unreachable: Callable[[str, int], bool] | None = None,
    ) -> None:
        """``trainers``: client id -> (its account, its session).  ``unreachable(stage,
        client)``: the aggregator's message to it is lost, and the aggregator knows (a
        refused connection)."""
        self.trainers, self.clock = trainers, clock
        self.drop = {str(k): set(v) for k, v in (drop or {}).items()}
        self.network, self.unreachable = network, unreachable
        self.gone: set[int] = set()
        self.stage = str(Stage.KEYS)
        self._queue: list[tuple[float, int, Arrival]] = []
        self._seq = itertools.count()
        self.failures: dict[int, SecAggError] = {}  # what a trainer's session raised

    def _deliver(self, client: int, messages: Callable[[], list[Any]]) -> bool:
        if client in self.gone or client not in self.trainers:
            return False
        if self.unreachable is not None and self.unreachable(self.stage, client):
            return False
        account, _ = self.trainers[client]
        try:
            replies = messages()
        except SecAggError as exc:  # the trainer stops; it answers nothing more
            self.failures[client] = exc
            self.gone.add(client)
            return True
        for reply in replies:
            delay = 0.0 if self.network is None else self.network(self.stage, client, reply)
            if delay is not None:
                due = self.clock() + delay
                heapq.heappush(self._queue, (due, next(self._seq), Arrival(account, reply)))
        return True

    def start(self, roster: Mapping[int, str]) -> set[int]:
        self.stage = str(Stage.KEYS)
        self.gone |= self.drop.get(self.stage, set())
        return {
            i for i in roster if i in self.trainers and self._deliver(i, self.trainers[i][1].open)
        }

    def send(self, messages: Sequence[Outgoing]) -> set[int]:
        if messages:
            self.stage = str(STAGE_OF.get(type(messages[0][1]), "update"))
            self.gone |= self.drop.get(self.stage, set())
        reached = set()
        for client, message in messages:
            if client in self.trainers and self._deliver(
                client, functools.partial(self.trainers[client][1].handle, message)
            ):
                reached.add(client)
        return reached

    def receive(self, timeout: float) -> Arrival | None:
        if self._queue and self._queue[0][0] <= self.clock() + timeout:
            due, _, arrival = heapq.heappop(self._queue)
            if due > self.clock():
                self.clock.advance(due - self.clock())
            return arrival
        self.clock.advance(timeout)
        return None
