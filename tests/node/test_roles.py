"""Roles as plug-ins: the daemon's dispatcher routes each purpose to the one role that
claims it, and a role not taken by this node plugs in nothing."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from chainml.errors import ChainmlError
from chainml.ledger.bindings import Role
from chainml.node import roles
from chainml.node.daemon import plug_roles
from chainml.node.dispatch import Dispatcher, PurposeTaken
from chainml.node.plugin import Plugged
from chainml.node.roles import aggregator, guardian, jobs, keeper, provider, trainer, validator


def _opened(purpose: str) -> Any:
    return SimpleNamespace(header=SimpleNamespace(purpose=purpose, sender="0xabc"))


def _drain(dispatcher: Dispatcher) -> None:
    """Run the dispatcher until its queue is empty and the envelope it took is handled."""
    stop = threading.Event()
    runner = threading.Thread(target=dispatcher.run, args=(stop,))
    runner.start()
    for _ in range(500):
        if dispatcher.queue.empty():
            break
        stop.wait(0.01)
    stop.set()  # the loop finishes the envelope in hand before it looks at stop
    runner.join(timeout=5)
    assert not runner.is_alive() and dispatcher.queue.empty()


def test_each_purpose_reaches_the_role_that_claims_it():
    seen: list[tuple[str, str, str]] = []

    def record(role: str) -> Any:
        return lambda o: seen.append((role, o.header.purpose, threading.current_thread().name))

    a = Plugged("a", handlers={"a/one": record("a"), "a/two": record("a")})
    b = Plugged("b", immediate={"b/now": record("b")})
    dispatcher = Dispatcher.of([a, b, Plugged("empty")])
    here = threading.current_thread().name
    dispatcher.put(_opened("b/now"))
    assert seen == [("b", "b/now", here)]  # on the caller's thread, at once
    for purpose in ("a/two", "nobody/takes-it", "a/one"):
        dispatcher.put(_opened(purpose))
    assert dispatcher.queue.qsize() == 2  # the unclaimed purpose is dropped, not queued
    _drain(dispatcher)
    assert [(r, p) for r, p, _ in seen[1:]] == [("a", "a/two"), ("a", "a/one")]
    assert all(thread != here for _, _, thread in seen[1:])  # on the dispatcher's thread


def test_a_purpose_claimed_by_two_roles_is_refused():
    one = Plugged("trainer", handlers={"x": lambda o: None})
    with pytest.raises(PurposeTaken, match="'x': trainer and aggregator"):
        Dispatcher.of([one, Plugged("aggregator", immediate={"x": lambda o: None})])
    with pytest.raises(PurposeTaken):
        Dispatcher({"x": lambda o: None}, {"x": lambda o: None})


def test_a_refusal_is_logged_and_the_next_envelope_still_handled(caplog):
    handled: list[str] = []

    def refuse(opened: Any) -> None:
        raise ChainmlError("not for this round")

    dispatcher = Dispatcher({"bad": refuse, "good": lambda o: handled.append("good")})
    dispatcher.put(_opened("bad"))
    dispatcher.put(_opened("good"))
    with caplog.at_level(logging.WARNING, logger="chainml.node"):
        _drain(dispatcher)
    assert handled == ["good"]
    assert "bad from 0xabc refused: ChainmlError: not for this round" in caplog.text


def test_plug_roles_keeps_the_roles_that_answer_in_order():
    calls: list[str] = []

    def takes(name: str) -> Any:
        def plug(context: Any) -> Plugged:
            calls.append(name)
            return Plugged(name)

        return plug

    def declines(context: Any) -> None:
        calls.append("declines")
        return None

    context: Any = object()
    got = plug_roles(context, [takes("first"), declines, takes("second")])
    assert [p.name for p in got] == ["first", "second"]
    assert calls == ["first", "declines", "second"]


@pytest.mark.parametrize(
    ("plug", "registered", "config"),
    [
        (trainer.plug, Role.AGGREGATOR | Role.INFERENCE_PROVIDER, {"data": Path("d.npz")}),
        (trainer.plug, Role.TRAINER, {"data": None}),  # registered, but no data
        (aggregator.plug, Role.TRAINER | Role.INFERENCE_PROVIDER, {}),
        (provider.plug, Role.TRAINER | Role.AGGREGATOR | Role.VALIDATOR, {}),
        (validator.plug, Role.TRAINER | Role.AGGREGATOR | Role.INFERENCE_PROVIDER, {}),
        # the keeper: a store that pins, but the node said keep = false; a store that
        # does not pin (local: it never drops a blob)
        (keeper.plug, Role.TRAINER, {"storage": SimpleNamespace(keep=False), "pins": True}),
        (keeper.plug, Role.TRAINER, {"storage": SimpleNamespace(keep=True), "pins": False}),
    ],
)
def test_a_role_the_node_does_not_take_plugs_in_nothing(plug, registered, config):
    config = dict(config)
    pins = config.pop("pins", False)
    settings = SimpleNamespace(**config)  # every role's settings, as node.toml gave them
    node = SimpleNamespace(config=SimpleNamespace(**config, settings=lambda section: settings))
    store = SimpleNamespace(pin=print) if pins else SimpleNamespace()
    context: Any = SimpleNamespace(roles=registered, node=node, config=node.config, store=store)
    assert plug(context) is None


def test_every_role_module_is_listed():
    assert roles.PLUGINS == (
        jobs.plug,
        guardian.plug,
        trainer.plug,
        aggregator.plug,
        provider.plug,
        validator.plug,
        keeper.plug,
    )
    assert len(roles.ROUTES) == 2  # the guardian's and the provider's: the published schema


def test_attach_shows_each_role_every_role_plugged():
    shown: list[list[str]] = []
    watcher = Plugged("watcher", attach=lambda all_: shown.append([p.name for p in all_]))
    context: Any = SimpleNamespace()
    got = plug_roles(context, [lambda c: Plugged("a"), lambda c: watcher])
    assert [p.name for p in got] == ["a", "watcher"]
    assert shown == [["a", "watcher"]]


def test_the_job_workers_join_only_what_every_checking_role_admits():
    asked: list[str] = []

    def check(name: str, refuse: set[int]) -> Any:
        def admit(job_id: int) -> str | None:
            asked.append(name)
            return f"{name} refuses {job_id}" if job_id in refuse else None

        return admit

    assert jobs.admit_all([]) is None  # no role checks: any job is joined
    admit = jobs.admit_all([check("trainer", {2}), check("other", {2, 3})])
    assert admit is not None
    assert admit(1) is None and asked == ["trainer", "other"]
    assert admit(2) == "trainer refuses 2"  # the first refusal, the rest not asked
    assert asked == ["trainer", "other", "trainer"]
    assert admit(3) == "other refuses 3"
