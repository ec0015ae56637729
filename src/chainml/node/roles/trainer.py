"""The trainer role: a data owner's node that takes part in the rounds of the jobs it
joined (``node.rounds.TrainerRole``): it trains on its own data when a round starts and
answers the secure-aggregation stages.  Taken when the node is registered as a trainer
and ``[training] data`` names its data."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chainml.errors import ChainmlError
from chainml.ledger.bindings import Role
from chainml.node.core import Section
from chainml.node.plugin import Plugged, RoleContext
from chainml.node.rounds import (
    START,
    TO_CLIENT,
    Courier,
    TrainerRole,
    load_npz,
    published_config,
)

log = logging.getLogger("chainml.trainer")


@dataclass(frozen=True)
class TrainerSettings:
    data: Path | None  # [training] data: this node's own records (.npz with x and y)


SETTINGS = Section(
    "trainer",
    "training",
    frozenset({"data"}),
    lambda table: TrainerSettings(table.path_of("data")),
    template='# data = "data.npz"  # a trainer\'s own records (x, y); never leave this node',
)


def plug(context: RoleContext) -> Plugged | None:
    node, settings = context.node, context.config.settings(SETTINGS)
    if not context.roles & Role.TRAINER or settings.data is None:
        return None
    cm = node.cached  # the round's hot path reads the same facts again and again
    x, y = data = load_npz(settings.data)
    trainer = TrainerRole(
        node.identity,
        cm,
        node.state,
        Courier(node.identity, cm),
        data,
        metrics=context.metrics,
    )

    def admit(job_id: int) -> str | None:
        """Join a job only if its published configuration is what its hash names and fits
        these records (a job that publishes none is learnt when its first round starts)."""
        try:
            job = published_config(cm, context.store, job_id)
        except ChainmlError as exc:
            return str(exc)
        if job is None:
            log.info("job %d publishes no configuration: joined on its hash alone", job_id)
            return None
        if job.n_features != x.shape[1]:
            return f"job {job_id} wants {job.n_features} features, these records have {x.shape[1]}"
        if job.n_classes <= int(np.max(y)):
            return f"job {job_id} has {job.n_classes} classes, these records have more"
        trainer.warm(job)  # a norm-proof job's generators, before its first round
        return None

    return Plugged(
        "trainer",
        trainer,
        handlers={START: trainer.on_start, TO_CLIENT: trainer.on_secagg},
        admit=admit,
    )
