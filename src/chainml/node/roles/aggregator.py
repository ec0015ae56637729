"""The aggregator role: runs the rounds of the jobs it aggregates (``node.rounds.
AggregatorRole``) on a thread of its own, which starts each round, collects the trainers'
masked (or robust-rule plain) updates, records the result on chain and publishes the new
model.  Taken when the node is registered as an aggregator."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from chainml.ledger.bindings import Role
from chainml.node.core import Section, Table
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


@dataclass(frozen=True)
class AggregatorSettings:
    validation: Path | None  # held-out records (.npz), for accuracy per round
    jobs_dir: Path  # job configurations this node aggregates, named by hash
    stage_timeout: float  # seconds a secure-aggregation stage waits for stragglers
    proof_timeout: float  # seconds more a norm-proof round's masked stage waits


def _parse(table: Table) -> AggregatorSettings:
    jobs_dir = table.path_of("jobs_dir", "jobs")
    if jobs_dir is None:
        raise table.bad("jobs_dir", "a directory, not an empty string")
    stage_timeout = table.number("stage_timeout", 10.0, positive=True)
    proof_timeout = table.number("proof_timeout", 60.0, positive=True)
    return AggregatorSettings(table.path_of("validation"), jobs_dir, stage_timeout, proof_timeout)


SETTINGS = Section(
    "aggregator",
    "training",
    frozenset({"validation", "jobs_dir", "stage_timeout", "proof_timeout"}),
    _parse,
    template="""\
# validation = "validation.npz" # an aggregator's held-out records: accuracy per round
jobs_dir = "jobs"               # job configurations this node aggregates, named by hash
stage_timeout = 10              # seconds a secure-aggregation stage waits for stragglers
proof_timeout = 60              # seconds more a norm-proof round's masked stage waits""",
)


def plug(context: RoleContext) -> Plugged | None:
    config, node = context.config, context.node
    if not context.roles & Role.AGGREGATOR:
        return None
    settings = config.settings(SETTINGS)
    cm = node.cached  # the round's hot path reads the same facts again and again
    aggregator = AggregatorRole(
        node.identity,
        cm,
        node.state,
        Courier(node.identity, cm),
        context.store,
        jobs_dir=settings.jobs_dir,
        validation=load_npz(settings.validation) if settings.validation else None,
        stage_timeout=settings.stage_timeout,
        proof_timeout=settings.proof_timeout,
        metrics=context.metrics,
        alerts=context.alerts,
        settlement=node.settlement,
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
