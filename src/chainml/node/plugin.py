"""What a role plugs into a node: its workers, its API routes and its message handlers.

A role module (``chainml.node.roles.*``) offers ``plug(context) -> Plugged | None``: given
the node's parts it builds its objects and says what to run, or answers ``None`` when this
node does not take the role (not registered for it, or not configured).  The daemon starts
every worker on its own thread, mounts every role's routes and hands each opened envelope
to the handler of its purpose; nothing outside the role module names the role.  Once
every role is plugged, each one's ``attach`` (if any) is shown all of them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import Counter

from chainml.errors import ChainmlError
from chainml.ledger.bindings import Role
from chainml.node.api import Metrics, Routes
from chainml.node.core import Node, NodeConfig
from chainml.node.envelope import Opened
from chainml.node.ids import Alerts
from chainml.storage.store import BlobStore

Handler = Callable[[Opened], None]
Worker = Callable[[threading.Event], None]  # runs until the event is set


@dataclass(frozen=True)
class RoleContext:
    """The node's parts a role may use.  ``roles`` are those the Registry holds for this
    node's account; ``stop`` is set when the node shuts down."""

    node: Node
    roles: Role
    store: BlobStore
    metrics: Metrics
    stop: threading.Event
    alerts: Alerts | None = None

    @property
    def config(self) -> NodeConfig:
        return self.node.config


@dataclass(frozen=True)
class Plugged:
    """One role's contribution.  ``handlers`` run one at a time on the dispatcher's thread;
    ``immediate`` handlers run on the API's thread as the envelope is accepted (they must
    only queue the work).  A purpose belongs to one role."""

    name: str
    service: Any = None  # the role's object, for tests and the dashboard
    workers: Mapping[str, Worker] = field(default_factory=dict)  # thread name -> loop
    routes: Routes | None = None
    handlers: Mapping[str, Handler] = field(default_factory=dict)
    immediate: Mapping[str, Handler] = field(default_factory=dict)
    # whether this node takes part in a job it may join: None, or why not (a trainer's
    # check of the job's published configuration against its own data)
    admit: Callable[[int], str | None] | None = None
    # called once every role is plugged, with all of them (the job workers take the
    # others' ``admit`` checks this way)
    attach: Callable[[Sequence[Plugged]], None] | None = None


Plugin = Callable[[RoleContext], Plugged | None]


def kind_counter(context: RoleContext, name: str, doc: str, kinds: Sequence[str]) -> Counter:
    """A role's counter of what it did, by ``kind``, every kind exported from zero."""
    counter = Counter(name, doc, ["kind"], registry=context.metrics.registry)
    for kind in kinds:
        counter.labels(kind=kind)
    return counter


def every_interval(context: RoleContext, tick: Callable[[], object], what: str) -> Worker:
    """A worker calling ``tick`` every worker interval until the node stops; a chain or
    store failure is logged and the next pass tries again."""
    log = logging.getLogger(f"chainml.{what}")

    def work(stop: threading.Event) -> None:
        while True:
            try:
                tick()
            except (ChainmlError, OSError) as exc:
                log.warning("%s: %s", what, exc)
            if stop.wait(context.config.worker_interval):
                return

    return work
