"""SecAgg+ messages survive their wire format; malformed ones are refused with a type."""

from __future__ import annotations

import json

import numpy as np
import pytest

from chainml.crypto import Identity
from chainml.training import wire
from chainml.training.errors import TrainingError
from chainml.training.job import JobConfig
from chainml.training.secagg import ProtocolViolation, RoundParams, SecAggClient, SecAggServer

IDS = {i: Identity.generate() for i in range(1, 5)}


def _every_message_type() -> list[wire.Message]:
    p = RoundParams.create(
        {i: a.address for i, a in IDS.items()},
        {i: a.x25519.public_bytes for i, a in IDS.items()},
        50,
        chain_id=1,
        jobs="0x" + "11" * 20,
        job_id=1,
        round=1,
        clip=1.0,
        graph_seed=bytes(32),
        threshold=2,
    )
    clients = {i: SecAggClient(p, i, IDS[i], np.full(50, 0.01)) for i in IDS}
    server, seen = SecAggServer(p), []
    for c in clients.values():
        advert = c.advertise()
        seen.append(advert)
        server.receive(advert)
    for _ in range(4):
        for message in server.advance():
            seen.append(message)
            reply = clients[message.recipient].handle(message)
            seen.append(reply)
            server.receive(reply)
    return seen


def test_round_trip_of_every_message_type():
    messages = _every_message_type()
    assert len({type(m).__name__ for m in messages}) == 9
    for m in messages:
        back = wire.decode(wire.encode(m))
        if hasattr(m, "vector"):
            assert np.array_equal(back.vector, m.vector) and back.signature == m.signature
        else:
            assert back == m


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"[]",
        b'{"format": "chainml-secagg/2", "type": "Nope"}',
        b'{"format": "other", "type": "KeyAdvert"}',
        b'{"format": "chainml-secagg/2", "type": "SurvivorSignature", "sender": 1, "signature": "00"}',
        b'{"format": "chainml-secagg/2", "type": "MaskedInput", "sender": 1, "vector": "AAA",'
        b' "partners": [], "signature": "' + b"00" * 65 + b'"}',
        b'{"format": "chainml-secagg/2", "type": "SurvivorList", "recipient": -1, "survivors": []}',
        b'{"format": "chainml-secagg/2", "type": "SurvivorSignature", "sender": 1, "signature": "'
        + b"00" * 65
        + b'", "tags": {"2": "00"}}',
        b'{"format": "chainml-secagg/1", "type": "SurvivorList", "recipient": 1, "survivors": []}',
    ],
)
def test_malformed_messages_are_refused(raw: bytes):
    with pytest.raises(ProtocolViolation):
        wire.decode(raw)


def test_job_configuration_is_canonical_and_hashed():
    config = JobConfig(n_features=64, n_classes=10)
    assert JobConfig.decode(config.encode()) == config
    assert len(config.config_hash) == 32
    loose = json.dumps(json.loads(config.encode()), indent=1).encode()
    with pytest.raises(TrainingError):  # same content, other bytes: another hash, refused
        JobConfig.decode(loose)
    assert config.vector_len() == 64 * 64 + 64 + 64 * 10 + 10 + 1
