"""The job workers: what every node does for the jobs it takes part in
(``node.workers.JobWorkers``), on a thread of its own, one pass every worker interval: a
trainer joins each open job it qualifies for (if every role that checks a job admits it,
such as the trainer's check of the job's configuration against its data), and any node
finalises a job it took part in once its last challenge window has passed and claims its
reward once.  Taken by every node.  The scrape's ``chainml_chain_head_lag_blocks`` is the
distance from the chain's head to these workers' event cursor."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from chainml.node.plugin import Plugged, RoleContext
from chainml.node.workers import JobWorkers

Admit = Callable[[int], str | None]


def plug(context: RoleContext) -> Plugged:
    node = context.node
    workers = JobWorkers(
        node.cached, node.identity, node.state, roles=context.roles, settlement=node.settlement
    )

    def work(stop: threading.Event) -> None:
        workers.run(stop, context.config.worker_interval)

    def attach(plugged: Sequence[Plugged]) -> None:
        workers.admit = admit_all([p.admit for p in plugged if p.admit is not None])

    def head_lag() -> float:
        cursor = workers.stream.store.load(workers.stream.name)
        head = node.client.block_number()
        return float(head - cursor.block_number if cursor else head)

    context.metrics.head_lag.set_function(head_lag)
    return Plugged("jobs", workers, workers={"workers": work}, attach=attach)


def admit_all(checks: Sequence[Admit]) -> Admit | None:
    """One check of a job made of several roles' (None: no role checks, any job is
    joined): the first refusal is the answer."""
    if not checks:
        return None

    def admit(job_id: int) -> str | None:
        for check in checks:
            refused = check(job_id)
            if refused is not None:
                return refused
        return None

    return admit
