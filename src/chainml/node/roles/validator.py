"""The validator role: audits every recorded round (``node.validator.ValidatorRole``) on a
thread of its own, one pass every worker interval; challenges a round that fails, votes
when the contract draws it onto a committee, settles challenges and reports double
signing, its own or handed to it in an envelope (purpose ``validator/evidence``).  Taken
when the node is registered as a validator.  Each action is counted
(``chainml_validator_actions``, by kind) and each round it finds invalid raises an alert
(``round_invalid``), which the dashboard lists."""

from __future__ import annotations

from chainml.ledger.bindings import Role
from chainml.node.plugin import Plugged, RoleContext, every_interval, kind_counter
from chainml.node.validator import EVIDENCE, Action, ValidatorRole

KINDS = ("valid", "invalid", "challenge", "not_challenged", "vote", "resolve", "evidence")


def plug(context: RoleContext) -> Plugged | None:
    if not context.roles & Role.VALIDATOR:
        return None
    node, alerts = context.node, context.alerts
    counted = kind_counter(
        context,
        "chainml_validator_actions",
        "What the validator did: rounds audited valid or invalid, challenges, votes, "
        "resolutions, double-signing reports",
        KINDS,
    )

    def heard(action: Action) -> None:
        counted.labels(kind=action.kind).inc()
        if action.kind == "invalid" and alerts is not None:
            subject = f"job {action.job_id} round {action.round_no}"
            alerts.raise_("round_invalid", subject, action.detail)

    # the validator reads the chain as it is (an audit must not see a cached past)
    validator = ValidatorRole(node.identity, node.cm, context.store, node.state, on_action=heard)

    return Plugged(
        "validator",
        validator,
        workers={"validator": every_interval(context, validator.tick, "validator")},
        handlers={EVIDENCE: validator.on_evidence},
    )
