"""The aggregator role: runs the rounds of the jobs it aggregates (``node.rounds.
AggregatorRole``) on a thread of its own, which starts each round, collects the trainers'
masked (or robust-rule plain) updates, records the result on chain and publishes the new
model.  Taken when the node is registered as an aggregator."""

from __future__ import annotations

import threading

from chainml.ledger.bindings import Role
from chainml.node.plugin import Plugged, RoleContext
from chainml.node.rounds import (
    NORM,
    PLAIN,
    TO_SERVER,
    AggregatorRole,
    Courier,
    load_npz,
    run_aggregator,
)


def plug(context: RoleContext) -> Plugged | None:
    config, node = context.config, context.node
    if not context.roles & Role.AGGREGATOR:
        return None
    cm = node.cached  # the round's hot path reads the same facts again and again
    aggregator = AggregatorRole(
        node.identity,
        cm,
        node.state,
        Courier(node.identity, cm),
        context.store,
        jobs_dir=config.jobs_dir,
        validation=load_npz(config.validation) if config.validation else None,
        stage_timeout=config.stage_timeout,
        metrics=context.metrics,
        alerts=context.alerts,
    )

    def work(stop: threading.Event) -> None:
        run_aggregator(aggregator, stop, config.worker_interval)

    # the round's thread takes its updates off a queue: handing them over costs nothing
    on_update = aggregator.on_secagg
    return Plugged(
        "aggregator",
        aggregator,
        workers={"aggregator": work},
        immediate={TO_SERVER: on_update, PLAIN: on_update, NORM: on_update},
    )
