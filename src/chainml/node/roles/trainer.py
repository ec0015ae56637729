"""The trainer role: a data owner's node that takes part in the rounds of the jobs it
joined (``node.rounds.TrainerRole``): it trains on its own data when a round starts and
answers the secure-aggregation stages.  Taken when the node is registered as a trainer
and ``[training] data`` names its data."""

from __future__ import annotations

from chainml.ledger.bindings import Role
from chainml.node.plugin import Plugged, RoleContext
from chainml.node.rounds import START, TO_CLIENT, Courier, TrainerRole, load_npz


def plug(context: RoleContext) -> Plugged | None:
    config, node = context.config, context.node
    if not context.roles & Role.TRAINER or config.training_data is None:
        return None
    cm = node.cached  # the round's hot path reads the same facts again and again
    trainer = TrainerRole(
        node.identity,
        cm,
        node.state,
        Courier(node.identity, cm),
        load_npz(config.training_data),
        metrics=context.metrics,
    )
    return Plugged(
        "trainer", trainer, handlers={START: trainer.on_start, TO_CLIENT: trainer.on_secagg}
    )
