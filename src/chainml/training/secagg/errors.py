"""SecAgg+ errors: one root (``SecAggError``, a ``TrainingError``), one class per way a
round can fail."""

from __future__ import annotations

from chainml.training.errors import TrainingError


class SecAggError(TrainingError):
    """Base class of secure aggregation failures."""


class ProtocolViolation(SecAggError):
    """A message out of place: wrong stage, wrong recipient, unknown sender, a replay."""


class ForgedKeys(SecAggError):
    """A client's public keys are not signed by its registered account, do not carry its
    MAC under the pair key, or its registered key is unusable."""


class InconsistentView(SecAggError):
    """The server's survivor list is not the one this client approved, lacks a quorum of
    approvals, or would make the client reveal both shares of one neighbour."""


class TooFewSurvivors(SecAggError):
    """Fewer clients remain than the protocol needs: the round aborts, nothing is learnt."""


class AggregateMismatch(SecAggError):
    """A published aggregate that its transcript does not support, or a transcript that
    is malformed."""
