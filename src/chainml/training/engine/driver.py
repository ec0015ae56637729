"""``RoundEngine``: one round of any strategy over any transport, timed by an injected clock.

The engine opens the round at every trainer, then for each stage takes arrivals until
every trainer it reached has done its part or the stage's time passes on the clock
(``stage_timeout``, or that stage's entry in ``stage_timeouts``; whoever is late has
dropped out), closes the stage and sends the next one's messages to
whoever should get them; a trainer a message did not reach is not waited for.  A message
whose claimed client id is not its signer's slot is refused, as is any the strategy
refuses (``ProtocolViolation``): the round goes on without it.  The simulator
(``train_federated``) and the node (``AggregatorRole``) both run their rounds here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from chainml.training.engine.base import Aggregate, Aggregation, Clock, Transport, identify
from chainml.training.secagg import ProtocolViolation

log = logging.getLogger("chainml.training.engine")

# (stage, seconds it took, clients whose part of it came in, clients it was sent to)
StageHook = Callable[[str, float, int, int], None]


class RoundEngine:
    def __init__(
        self,
        transport: Transport,
        *,
        clock: Clock,
        stage_timeout: float,
        stage_timeouts: Mapping[str, float] | None = None,
        poll: float = 0.5,
        on_stage: StageHook | None = None,
    ) -> None:
        """``stage_timeouts``: the stages that may take longer than the others (a
        norm-proof round's masked stage waits for the trainers' proofs); ``poll``: the
        longest one wait on the transport lasts (the deadline is checked between waits);
        ``on_stage``: called as each stage closes (metrics, logs, crash points), before
        the next stage's messages leave."""
        timeouts = dict(stage_timeouts or {})
        if min(stage_timeout, poll, *timeouts.values()) <= 0:
            raise ValueError("the stage timeouts and the poll interval are positive")
        self.transport, self.clock, self.stage_timeouts = transport, clock, timeouts
        self.stage_timeout, self.poll, self.on_stage = stage_timeout, poll, on_stage
        self.reached: set[int] = set()  # who the round's start reached

    def run(self, aggregation: Aggregation, roster: Mapping[int, str]) -> Aggregate:
        """Run the round to its aggregate; raises what ``aggregation.finish`` raises."""
        expected = self.reached = set(self.transport.start(roster))
        while True:
            stage, began = aggregation.stage, self.clock()
            self._collect(aggregation, roster, expected)
            got = len(aggregation.completed)
            outgoing = aggregation.close()
            if self.on_stage is not None:
                self.on_stage(stage, self.clock() - began, got, len(expected))
            if outgoing is None:
                return aggregation.finish()
            expected = set(self.transport.send(outgoing)) if outgoing else set()

    def _collect(
        self, aggregation: Aggregation, roster: Mapping[int, str], expected: set[int]
    ) -> None:
        deadline = self.clock() + self.stage_timeouts.get(aggregation.stage, self.stage_timeout)
        by_signer = {a.lower(): i for i, a in roster.items()}
        while not expected <= aggregation.completed:
            left = deadline - self.clock()
            if left <= 0:
                return
            arrival = self.transport.receive(min(left, self.poll))
            if arrival is None:
                continue
            client = identify(arrival, roster, by_signer)
            if client is None:
                log.warning("a round message whose sender id is not its signer: refused")
                continue
            try:
                aggregation.accept(client, arrival.message)
            except ProtocolViolation as exc:
                log.warning("refused: %s", exc)
