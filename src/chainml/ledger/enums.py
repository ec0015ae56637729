"""The integer codes chainml's contracts store, as Python enums.

The ABI says only ``uint8`` / ``uint256``; these name the values the Vyper sources define
(``STATE_OPEN: constant(uint8) = 1`` and so on).  The generated bindings return them in
place of the bare integers (see ``chainml.ledger.bindgen.FIELD_ENUMS``).
"""

from __future__ import annotations

from enum import IntEnum, IntFlag


class Role(IntFlag):
    DATA_OWNER = 1
    TRAINER = 2
    AGGREGATOR = 4
    VALIDATOR = 8
    INFERENCE_PROVIDER = 16
    REQUESTER = 32


class JobState(IntEnum):
    OPEN = 1
    FINALIZED = 2
    CANCELLED = 3


class RoundStatus(IntEnum):
    NONE = 0
    RECORDED = 1
    INVALID = 2


class ChallengeStatus(IntEnum):
    NONE = 0
    OPEN = 1
    UPHELD = 2
    REJECTED = 3


class BatchStatus(IntEnum):
    NONE = 0
    POSTED = 1
    SETTLED = 2
    DISPUTED = 3
