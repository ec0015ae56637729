"""The keeper: pins the blobs of this node's jobs and of the models granted to it
(``node.keeper.Keeper``), one pass every worker interval.  Taken by every node whose store
pins (the ``ipfs`` and ``kubo`` backends) unless ``[storage] keep = false``; a local store
never drops a blob, so it needs no keeper.  Each blob pinned is counted
(``chainml_blobs_kept``, by kind: record, transcript, input, claim, model, key)."""

from __future__ import annotations

import logging

from chainml.node.keeper import Keeper, Kept, can_pin
from chainml.node.plugin import Plugged, RoleContext, every_interval, kind_counter

log = logging.getLogger("chainml.keeper")
KINDS = ("record", "transcript", "input", "claim", "model", "key")


def kind_of(kept: Kept) -> str:
    last = kept.why.rsplit(" ", 1)[-1]
    if last.startswith("inputs/"):
        return "input"
    if last.startswith("claims/"):
        return "claim"
    if last in ("transcript", "key bundle", "bundle"):
        return "key" if "bundle" in last else "transcript"
    if last.isdigit():  # "job 3 round 2": the record itself
        return "record"
    return "model"  # manifests and ciphertexts, of rounds and of grants


def plug(context: RoleContext) -> Plugged | None:
    if not context.config.storage.keep or not can_pin(context.store):
        return None
    counted = kind_counter(
        context,
        "chainml_blobs_kept",
        "Blobs this node pinned because its jobs or its grants name them",
        KINDS,
    )

    def heard(kept: Kept) -> None:
        counted.labels(kind=kind_of(kept)).inc()
        log.info("kept %s: %s", kept.why, kept.cid)

    keeper = Keeper(context.node.identity.address, context.node.cm, context.store, on_kept=heard)
    return Plugged(
        "keeper", keeper, workers={"keeper": every_interval(context, keeper.tick, "keeper")}
    )
