"""Rounds of plaintext updates, the shared half of ``fedavg`` and ``robust``: each trainer
sends its ``[delta · weight, weight]`` itself (a ``PlainUpdate``), sealed to the aggregator
and, in a node's round, signed as its round commitment (EIP-712 ``RoundCommitment`` over
the hash of the float32 bytes).  The aggregator refuses an update that is not finite, whose
weight is not in (0, 1], whose step is longer than the job's clip bound or whose signature
is not the trainer's; below the round's quorum the round fails (``TooFewSurvivors``).  The
record holds each counted trainer's commitment and signature (the updates went to the
aggregator only)."""

from __future__ import annotations

import base64
import json
from abc import abstractmethod
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chainml.crypto import Identity, keccak256
from chainml.crypto.errors import CryptoError
from chainml.crypto.signing import verify_round_commitment
from chainml.training.engine.base import Aggregate, Aggregation, Outgoing, Put, Strategy
from chainml.training.normproofs import DataStake
from chainml.training.secagg import PairKeys, ProtocolViolation, RoundParams, TooFewSurvivors

STAGE = "update"


@dataclass(frozen=True)
class PlainUpdate:
    """A trainer's update for a plaintext round, and its signed round commitment
    (EIP-712 ``RoundCommitment`` over the hash of the float32 bytes)."""

    update: NDArray[np.float32]
    signature: bytes

    @property
    def commitment(self) -> bytes:
        return keccak256(np.ascontiguousarray(self.update, dtype="<f4").tobytes())

    def encode(self) -> bytes:
        data = np.ascontiguousarray(self.update, dtype="<f4").tobytes()
        return json.dumps(
            {
                "format": "chainml-plain-update/1",
                "update": base64.b64encode(data).decode(),
                "signature": self.signature.hex(),
            }
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> PlainUpdate:
        try:
            d = json.loads(raw)
            if d["format"] != "chainml-plain-update/1":
                raise ValueError("unknown format")
            data = base64.b64decode(d["update"], validate=True)
            signature = bytes.fromhex(d["signature"])
            if len(data) % 4 or len(signature) != 65:
                raise ValueError("bad sizes")
        except (ValueError, KeyError, TypeError) as exc:
            raise ProtocolViolation("malformed plain update") from exc
        return cls(np.frombuffer(data, dtype="<f4").astype(np.float32), signature)


def sign_update(
    params: RoundParams, identity: Identity, vector: NDArray[np.floating]
) -> PlainUpdate:
    """``vector`` as a trainer sends it: float32, signed as its round commitment."""
    plain = PlainUpdate(np.asarray(vector, dtype=np.float32), b"")
    digest = params.input_digest(plain.commitment)
    return PlainUpdate(plain.update, identity.account.sign_digest(digest))


def within_bounds(update: NDArray[np.float32], length: int, clip: float) -> bool:
    """A trainer's ``[step · weight, weight]``: finite, weight in (0, 1], step within the
    job's L2 bound (float32 rounding allowed for)."""
    if update.shape != (length,) or not np.isfinite(update).all():
        return False
    weight = float(update[-1])
    step = float(np.linalg.norm(update[:-1].astype(np.float64)))
    return 0.0 < weight <= 1.0 and step <= clip * weight * (1 + 1e-5)


def signed_by(params: RoundParams, message: PlainUpdate, account: str) -> bool:
    try:
        verify_round_commitment(
            account,
            message.signature,
            params.chain_id,
            params.jobs,
            params.job_id,
            params.round,
            message.commitment,
        )
    except CryptoError:
        return False
    return True


class PlainTrainer:
    """A trainer's session: its one update when the round opens."""

    def __init__(
        self,
        params: RoundParams,
        identity: Identity | None,
        vector: NDArray[np.floating],
        *,
        signed: bool,
    ) -> None:
        """``identity``: the trainer's, which signs; None only for an unsigned update."""
        if signed:
            if identity is None:
                raise ValueError("a signed update needs the trainer's identity")
            self.message = sign_update(params, identity, vector)
        else:
            self.message = PlainUpdate(np.asarray(vector, dtype=np.float32), b"")

    def open(self) -> list[Any]:
        return [self.message]

    def handle(self, message: Any) -> list[Any]:
        raise ProtocolViolation("a plaintext round has no second message")


class PlainStrategy(Strategy):
    """A plaintext strategy: ``signed`` updates (a node's rounds; the simulator's FedAvg
    baseline goes unsigned) combined by ``PlainRound.combine``."""

    signed = True

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
    ) -> PlainTrainer:
        return PlainTrainer(params, identity, vector, signed=self.signed)


class PlainRound(Aggregation):
    """One stage: each trainer's update, checked as it arrives (bounds and signature; an
    unsigned round, the simulator's baseline, checks only its shape)."""

    def __init__(self, params: RoundParams, *, clip: float, signed: bool, name: str) -> None:
        self.params, self.clip, self.signed, self.name = params, clip, signed, name
        self.stage = STAGE
        self.completed: set[int] = set()
        self.got: dict[int, PlainUpdate] = {}

    def accept(self, client: int, message: Any) -> None:
        if not isinstance(message, PlainUpdate):
            raise ProtocolViolation(f"{type(message).__name__} in a plaintext round")
        if message.update.shape != (self.params.vector_len,):
            raise ProtocolViolation(f"client {client}'s update has the wrong length")
        if client in self.got:
            raise ProtocolViolation(f"a second update from client {client}")
        if self.signed and not within_bounds(message.update, self.params.vector_len, self.clip):
            raise ProtocolViolation(f"client {client}'s update is out of bounds")
        if self.signed and not signed_by(self.params, message, self.params.roster[client]):
            raise ProtocolViolation(f"client {client}'s update is not signed by it")
        self.got[client] = message
        self.completed.add(client)

    def close(self) -> list[Outgoing] | None:
        return None

    @abstractmethod
    def combine(
        self, counted: list[int], raw: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], float, dict[int, float]]:
        """(total, weight, flagged) from the counted trainers' updates, one row each."""

    def finish(self) -> Aggregate:
        if len(self.got) < self.params.quorum:
            raise TooFewSurvivors(f"{len(self.got)} valid updates, quorum {self.params.quorum}")
        counted = sorted(self.got)
        raw = np.stack([self.got[i].update.astype(np.float64) for i in counted])
        total, weight, flagged = self.combine(counted, raw)
        got, params, name = self.got, self.params, self.name

        def record(put: Put) -> dict[str, Any]:
            return {
                "aggregation": name,
                "commitments": {str(i): got[i].commitment.hex() for i in counted},
                "signatures": {str(i): got[i].signature.hex() for i in counted},
                "params": {"vector_len": params.vector_len, "clip": params.clip},
            }

        leaves = [(params.roster[i], got[i].commitment) for i in counted]
        return Aggregate(total, weight, tuple(counted), leaves, record, flagged=flagged)
