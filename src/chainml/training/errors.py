"""Errors of chainml.training."""

from __future__ import annotations

from chainml.errors import ChainmlError


class TrainingError(ChainmlError):
    """Base class of training failures (bad parameters, incompatible updates, ...)."""
