"""What every round has, whatever its aggregation: the strategy, the transport, the clock.

A **strategy** says three things about a round: what a trainer sends (``contribution``:
its clipped delta scaled by its weight, with the weight appended as the last coordinate;
``trainer``: the session that turns that vector into messages), how the aggregator
combines what arrives (``aggregation``: one ``Aggregation`` a round, a state machine
taking messages stage by stage), and what the public record holds (``Aggregate.record``).
One file per strategy: ``fedavg`` (plaintext sum), ``secagg`` (the same weighted sum under
SecAgg+, with optional norm-bound proofs), ``robust`` (Krum, median, trimmed mean over
plaintext updates, with FoolsGold), ``dp`` (Gaussian noise, central or distributed, around
either sum).

A **transport** moves messages between the aggregator and the trainers: ``start`` opens
the round at each trainer, ``send`` delivers the next stage's messages, ``receive`` hands
over the next arrival with the account that signed it.  The simulator's is in memory
(``engine.memory``); the node's seals every message in an envelope.  The **clock** is a
function returning seconds (monotonic): the node passes ``time.monotonic``, tests a clock
they move themselves.  Nothing here reads the real clock, opens a socket or reads a chain.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from chainml.crypto import Identity
from chainml.training.normproofs import DataStake
from chainml.training.secagg import PairKeys, RoundParams, clip_l2

Clock = Callable[[], float]
Put = Callable[[bytes], str]  # a blob store's put: bytes in, content address out
Outgoing = tuple[int, Any]  # (recipient's client id, message)


@dataclass(frozen=True)
class Arrival:
    """A message the transport delivered to the aggregator, with the account it
    authenticated as its signer (the node: the envelope's signature)."""

    signer: str
    message: Any


class Transport(Protocol):
    def start(self, roster: Mapping[int, str]) -> set[int]:
        """Open the round at each trainer of ``roster``; the client ids it reached."""

    def send(self, messages: Sequence[Outgoing]) -> set[int]:
        """Deliver each message to its recipient; the client ids reached."""

    def receive(self, timeout: float) -> Arrival | None:
        """The next arrival, waiting at most ``timeout`` seconds; None if none came."""


class TrainerSession(Protocol):
    """One trainer's side of one round: what it sends when the round opens, and its
    answers to the aggregator's messages."""

    def open(self) -> list[Any]: ...

    def handle(self, message: Any) -> list[Any]: ...


@dataclass
class Aggregate:
    """A round's outcome: ``total / weight`` is the step to add to the global model."""

    total: NDArray[np.float64]  # the weighted deltas' sum (or a robust rule's step)
    weight: float  # the survivors' total weight (1 for a robust rule's step)
    counted: tuple[int, ...]  # client ids whose update counts
    leaves: list[tuple[str, bytes]]  # (account, commitment) per counted trainer: the root
    # the record's strategy fields, given a blob store's put (CIDs of transcripts, inputs...)
    record: Callable[[Put], dict[str, Any]]
    refused: dict[int, str] = field(default_factory=dict)  # client -> why it was not counted
    flagged: dict[int, float] = field(default_factory=dict)  # FoolsGold: client -> its weight
    multiplier: float | None = None  # DP: what the accountant is charged for the round

    @property
    def update(self) -> NDArray[np.float64]:
        return np.asarray(self.total / self.weight)


class Aggregation(ABC):
    """The aggregator's side of one round.  ``stage`` names the stage taking messages;
    ``completed``, the clients whose part of it is in (the engine closes a stage once
    every client it reached is there, or when the stage's time is up)."""

    stage: str
    completed: set[int]

    @abstractmethod
    def accept(self, client: int, message: Any) -> None:
        """Take ``client``'s message (its signer already checked); raises
        ``ProtocolViolation`` to refuse it (the round goes on)."""

    @abstractmethod
    def close(self) -> list[Outgoing] | None:
        """Close the current stage: the next stage's messages, or None when the round
        needs no more messages (``finish`` then)."""

    @abstractmethod
    def finish(self) -> Aggregate:
        """The round's aggregate; raises ``SecAggError`` (``TooFewSurvivors``...) or
        ``zk.AggregateMismatch`` if the round cannot count."""


class Strategy(ABC):
    """An aggregation rule, both sides of it (see the module's docstring)."""

    name: str

    def bound(self, clip: float, n_trainers: int, length: int) -> float:
        """The L2 bound of what a trainer sends (``length`` coordinates, the weight
        last): the clipped delta times a weight of at most 1, plus the weight."""
        return clip + 1.0

    def contribution(
        self,
        delta: NDArray[np.floating],
        weight: float,
        *,
        clip: float,
        n_trainers: int,
        rng: np.random.Generator | None = None,
    ) -> NDArray[np.float64]:
        """What a trainer with this ``delta`` and ``weight`` (in (0, 1]) feeds the
        round: ``[clip(delta) · weight, weight]`` (``JobConfig.local_update``'s vector)."""
        step = clip_l2(np.asarray(delta, dtype=np.float64), clip)
        return np.append(step * weight, weight)

    def extra_len(self) -> int:
        """Coordinates a trainer's input carries after the weight (norm proofs' words)."""
        return 0

    @abstractmethod
    def trainer(
        self,
        params: RoundParams,
        slot: int,
        identity: Identity,
        vector: NDArray[np.float64],
        *,
        pairs: PairKeys | None = None,
        rng: np.random.Generator | None = None,
        clip: float | None = None,
        stake: DataStake | None = None,
    ) -> TrainerSession:
        """The honest trainer ``slot``'s session for ``vector`` (``contribution``'s);
        ``clip``: the job's bound and ``stake`` what backs the trainer's weight (what a
        norm proof is for)."""

    @abstractmethod
    def aggregation(self, params: RoundParams, *, clip: float, n_trainers: int) -> Aggregation:
        """The aggregator's state for one round of ``params`` (``clip``: the job's bound)."""


def identify(
    arrival: Arrival, roster: Mapping[int, str], by_signer: Mapping[str, int] | None = None
) -> int | None:
    """The client id an arrival counts for: the id a message claims (``sender``) if the
    roster names its signer for it; for a message that claims none, the signer's slot
    (``by_signer``: lower-case account -> id, the roster inverted, if the caller keeps one).
    None if neither holds (a message under another's id is refused)."""
    signer = arrival.signer.lower()
    claimed = getattr(arrival.message, "sender", None)
    if claimed is None:
        if by_signer is None:
            by_signer = {a.lower(): i for i, a in roster.items()}
        return by_signer.get(signer)
    if isinstance(claimed, int) and roster.get(claimed, "").lower() == signer:
        return claimed
    return None
