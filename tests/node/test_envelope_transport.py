"""The node's transport for the round engine, without processes: what it sends goes
through the aggregator's courier (each message to the account the roster names, under the
round's purpose), a trainer the courier could not reach is reported as not reached (the
engine then waits for nobody), and arrivals come off the round's inbox with their
envelope's signer."""

from __future__ import annotations

import queue
from typing import Any

from chainml.node.rounds import START, TO_CLIENT, EnvelopeTransport
from chainml.training import wire
from chainml.training.engine import Arrival, ManualClock, RoundEngine
from chainml.training.secagg import SurvivorList

ROSTER = {1: "0x" + "11" * 20, 2: "0x" + "22" * 20, 3: "0x" + "33" * 20}


class _Courier:
    """The aggregator's ``_send_all``, recording what it is asked to send; ``down``:
    accounts it cannot reach."""

    def __init__(self, down: set[str]) -> None:
        self.down, self.sent = down, []

    def _send_all(self, messages: list[tuple[str, str, bytes]], job_id: int, round_no: int):
        self.sent.extend(
            (to, purpose, payload, job_id, round_no) for to, purpose, payload in messages
        )
        return [to not in self.down for to, _, _ in messages]


def test_messages_go_to_the_roster_s_accounts_and_unreached_trainers_are_reported():
    courier = _Courier(down={ROSTER[2]})
    box: queue.Queue[tuple[str, Any]] = queue.Queue()
    transport = EnvelopeTransport(courier, 7, 3, ROSTER, b"start", box)  # type: ignore[arg-type]
    assert transport.start(ROSTER) == {1, 3}
    assert [(to, purpose, payload) for to, purpose, payload, _, _ in courier.sent] == [
        (ROSTER[i], START, b"start") for i in (1, 2, 3)
    ]
    assert {(job, r) for *_, job, r in courier.sent} == {(7, 3)}
    courier.sent.clear()
    lists = [(i, SurvivorList(i, (1, 2, 3))) for i in (1, 2, 3)]
    assert transport.send(lists) == {1, 3}
    assert [(to, purpose) for to, purpose, *_ in courier.sent] == [
        (ROSTER[i], TO_CLIENT) for i in (1, 2, 3)
    ]
    assert wire.decode(courier.sent[0][2]) == lists[0][1]
    assert transport.receive(0.01) is None
    box.put((ROSTER[3], "hello"))
    assert transport.receive(0.01) == Arrival(ROSTER[3], "hello")


def test_the_engine_over_envelopes_waits_for_nobody_it_could_not_reach():
    """A round whose start reached nobody closes its first stage at once (the engine's
    clock does not move) rather than waiting out the stage timeout."""
    courier = _Courier(down=set(ROSTER.values()))
    transport = EnvelopeTransport(courier, 1, 1, ROSTER, b"s", queue.Queue())  # type: ignore[arg-type]
    clock = ManualClock()
    closed: list[str] = []

    class Nothing:
        stage, completed = "keys", set()

        def accept(self, client: int, message: Any) -> None:
            raise AssertionError("nothing arrives")

        def close(self) -> None:
            closed.append(self.stage)

        def finish(self) -> str:
            return "done"

    engine = RoundEngine(transport, clock=clock, stage_timeout=10.0)
    assert engine.run(Nothing(), ROSTER) == "done"  # type: ignore[arg-type]
    assert closed == ["keys"] and clock() == 0.0 and engine.reached == set()
