"""Signed, sealed envelopes: what is accepted, and every way of being refused."""

from __future__ import annotations

import base64
import codecs
import json
import random
import re
from pathlib import Path

import pytest

from chainml.crypto import Identity
from chainml.node.envelope import (
    CAUSES,
    BadSignature,
    Envelope,
    EnvelopeReceiver,
    Malformed,
    Oversized,
    Peer,
    Rejected,
    Replayed,
    Stale,
    Undecryptable,
    UnknownSender,
    Unstaked,
    WrongRecipient,
    envelope_digest,
    seal_envelope,
)
from chainml.node.mutate import KINDS, mutations
from chainml.node.state import NodeState, SqliteReplayCache

CHAIN_ID = 1337
REGISTRY = "0x" + "ab" * 20
NOW = 1_800_000_000


class Directory:
    def __init__(self, *peers: tuple[Identity, int]) -> None:
        self.peers = {i.address: Peer(i.address, i.x25519.public_bytes, s) for i, s in peers}

    def lookup(self, address: str) -> Peer | None:
        return self.peers.get(address)


@pytest.fixture
def world(tmp_path):
    alice, bob, mallory, poor = (Identity.generate() for _ in range(4))
    state = NodeState(tmp_path / "state.db")
    receiver = EnvelopeReceiver(
        bob,
        chain_id=CHAIN_ID,
        registry=REGISTRY,
        peers=Directory((alice, 10), (bob, 10), (poor, 0)),
        replays=SqliteReplayCache(state, horizon=120),
        clock=lambda: NOW,
        max_payload=64 * 1024,
    )
    return alice, bob, mallory, poor, receiver, state


def make(sender, recipient, plaintext=b"update for round 1", **kw):
    args = dict(
        recipient=recipient.address,
        recipient_key=recipient.x25519.public_bytes,
        purpose="secagg/share-keys",
        plaintext=plaintext,
        chain_id=CHAIN_ID,
        registry=REGISTRY,
        timestamp=NOW,
        job_id=7,
        round=1,
    )
    args.update(kw)
    return seal_envelope(sender, **args)


def test_round_trip(world):
    alice, bob, *_, receiver, _ = world
    env = make(alice, bob)
    opened = receiver.open(env.to_bytes())
    assert opened.plaintext == b"update for round 1"
    assert (opened.header.sender, opened.header.job_id, opened.header.round) == (
        alice.address,
        7,
        1,
    )
    assert receiver.accepted == 1 and sum(receiver.rejections.values()) == 0


def test_the_payload_is_not_in_the_clear(world):
    alice, bob, *_ = world
    secret = b"gradient bytes nobody else may read" * 4
    wire = make(alice, bob, secret).to_bytes()
    assert secret not in wire and base64.b64encode(secret) not in wire


@pytest.mark.parametrize(
    ("build", "error"),
    [
        (lambda a, b, m, p: make(a, m), WrongRecipient),
        (lambda a, b, m, p: make(a, b, timestamp=NOW - 121), Stale),
        (lambda a, b, m, p: make(a, b, timestamp=NOW + 121), Stale),
        (lambda a, b, m, p: make(m, b), UnknownSender),
        (lambda a, b, m, p: make(p, b), Unstaked),
        (lambda a, b, m, p: make(a, b, b"x" * (64 * 1024 + 1)), Oversized),
        (lambda a, b, m, p: make(a, b, chain_id=1), BadSignature),
        (lambda a, b, m, p: make(a, b, registry="0x" + "cd" * 20), BadSignature),
        # sealed to someone else's key, though addressed and signed correctly
        (lambda a, b, m, p: make(a, b, recipient_key=m.x25519.public_bytes), Undecryptable),
    ],
    ids=[
        "wrong-recipient",
        "old",
        "future",
        "unregistered",
        "unstaked",
        "oversized",
        "other-chain",
        "other-registry",
        "wrong-key",
    ],
)
def test_refusals_are_typed_and_counted(world, build, error):
    alice, bob, mallory, poor, receiver, _ = world
    with pytest.raises(error):
        receiver.open(build(alice, bob, mallory, poor).to_bytes())
    assert receiver.rejections[error.cause] == 1 and receiver.accepted == 0


def test_forged_sender_and_moved_payload(world):
    alice, bob, mallory, _, receiver, _ = world
    env = make(mallory, bob)
    forged = Envelope(
        env.header.__class__(**{**env.header.__dict__, "sender": alice.address}),
        env.payload,
        env.signature,
    )
    with pytest.raises(BadSignature):
        receiver.open(forged.to_bytes())
    # alice's genuine payload under another header she signed: HPKE info differs
    a1, a2 = make(alice, bob, b"one"), make(alice, bob, b"two", round=2)
    moved = Envelope(a2.header, a1.payload, a2.signature)
    with pytest.raises(BadSignature):  # the signature covers the payload hash
        receiver.open(moved.to_bytes())
    # even re-signed by its own sender, a payload does not open under another header
    resigned = Envelope(
        a2.header,
        a1.payload,
        alice.account.sign_digest(envelope_digest(CHAIN_ID, REGISTRY, a2.header, a1.payload)),
    )
    with pytest.raises(Undecryptable):
        receiver.open(resigned.to_bytes())


def test_replay_refused_even_after_a_restart(world, tmp_path):
    alice, bob, *_, receiver, state = world
    wire = make(alice, bob).to_bytes()
    receiver.open(wire)
    with pytest.raises(Replayed):
        receiver.open(wire)
    state.close()
    reopened = NodeState(tmp_path / "state.db")
    again = EnvelopeReceiver(
        bob,
        chain_id=CHAIN_ID,
        registry=REGISTRY,
        peers=receiver.peers,
        replays=SqliteReplayCache(reopened, horizon=120),
        clock=lambda: NOW,
    )
    with pytest.raises(Replayed):
        again.open(wire)


def test_forgeries_do_not_fill_the_replay_cache(world):
    alice, bob, mallory, _, receiver, _ = world
    for _ in range(20):
        env = make(mallory, bob)
        bad = Envelope(
            env.header.__class__(**{**env.header.__dict__, "sender": alice.address}),
            env.payload,
            env.signature,
        )
        with pytest.raises(BadSignature):
            receiver.open(bad.to_bytes())
    assert len(receiver.replays) == 0


def test_old_nonces_are_pruned(world):
    alice, bob, *_, receiver, _ = world
    receiver.open(make(alice, bob).to_bytes())
    receiver.clock = lambda: NOW + 1000
    receiver.open(make(alice, bob, timestamp=NOW + 1000).to_bytes())
    assert len(receiver.replays) == 1


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff\xfe",
        b"[]",
        b'{"v": 2}',
        b'{"v": 1}',
        b'{"v": 1, "sender": 5}',
        json.dumps({"v": True}).encode(),
    ],
)
def test_malformed(world, raw):
    *_, receiver, _ = world
    with pytest.raises(Malformed):
        receiver.open(raw)


def test_thousand_mutated_envelopes_none_accepted(world):
    """1,000 mutations of a genuine envelope: bit flips, truncations, field edits, wrong
    recipients, replays, oversize.  None is accepted; each is refused with a typed error."""
    alice, bob, mallory, _, receiver, _ = world
    good = make(alice, bob).to_bytes()
    receiver.open(good)  # accepted once; every later copy is a replay
    rng = random.Random(20261125)
    kinds: dict[str, int] = {}
    stream = mutations(
        rng,
        good,
        misaddressed=lambda: make(alice, mallory).to_bytes(),
        oversized=lambda extra: make(alice, bob, b"\0" * (64 * 1024 + extra)).to_bytes(),
    )
    for _ in range(1000):
        kind, wire = next(stream)
        with pytest.raises(Rejected) as info:
            receiver.open(wire)
        assert type(info.value) is not Rejected and info.value.cause in CAUSES
        kinds[kind] = kinds.get(kind, 0) + 1
    assert receiver.accepted == 1
    assert sum(receiver.rejections.values()) == sum(kinds.values()) == 1000
    assert set(kinds) == set(KINDS)
    # each kind of damage reaches a different check
    assert {"malformed", "replayed", "wrong_recipient", "oversized", "bad_signature"} <= set(
        receiver.rejections
    )


# -- the canonical wire form (docs/protocol/wire.md) -----------------------------------------

SPEC = Path(__file__).resolve().parents[2] / "docs" / "protocol" / "wire.md"


def _blocks(marker: str) -> dict[str, bytes]:
    """The code blocks of the spec that follow ``<!-- marker: name -->``, by name, decoded
    as the spec says (a Python bytes escape)."""
    text = SPEC.read_text()
    found = {}
    for m in re.finditer(rf"<!-- {marker}: ([\w-]+) -->\n.*?```text\n(.*?)\n```", text, re.S):
        found[m.group(1)] = codecs.escape_decode(m.group(2).encode())[0]
    return found


VECTOR_KEY = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
VECTOR_REGISTRY = "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB"


def test_wire_vectors_in_the_spec_match_the_code():
    from types import SimpleNamespace

    from chainml.crypto.keys import AccountKey, recover_address
    from chainml.node.envelope import Header
    from chainml.storage.access import KeyRequest, MalformedBundle, request_digest

    signer = AccountKey.from_bytes(bytes.fromhex(VECTOR_KEY))
    vectors, digests = _blocks("vector"), _blocks("digest")
    # the envelope: the spec's bytes are what the code writes for the stated values, and
    # their digest is the spec's
    env = Envelope.from_bytes(vectors["envelope"])
    header = Header(
        signer.address,
        "0x" + "22" * 20,
        "secagg/share-keys",
        7,
        1,
        1_800_000_000,
        bytes(range(32)),
    )
    assert env.header == header and env.payload == bytes(range(47))
    digest = envelope_digest(1337, VECTOR_REGISTRY, header, env.payload)
    assert digest.hex() == digests["envelope"].decode()
    assert env.signature == signer.sign_digest(digest)
    assert Envelope(header, env.payload, env.signature).to_bytes() == vectors["envelope"]
    assert recover_address(digest, env.signature) == signer.address
    # the key request
    view = SimpleNamespace(chain_id=1337, models_address=VECTOR_REGISTRY)
    request = KeyRequest.decode(vectors["key-request"])
    assert (request.grant_id, request.guardian, request.requester, request.timestamp) == (
        3,
        "0x" + "22" * 20,
        signer.address,
        1_800_000_000,
    )
    assert request.nonce == bytes(range(32, 64))
    kd = request_digest(view, 3, request.guardian, signer.address, 1_800_000_000, request.nonce)
    assert kd.hex() == digests["key-request"].decode()
    assert request.signature == signer.sign_digest(kd)
    assert request.encode() == vectors["key-request"]
    # every refused variant is refused by the parser, as malformed
    refused_env, refused_key = _blocks("refused envelope"), _blocks("refused key-request")
    assert len(refused_env) >= 20 and len(refused_key) >= 6
    for name, raw in refused_env.items():
        assert raw != vectors["envelope"], name
        with pytest.raises(Malformed):
            Envelope.from_bytes(raw)
    for raw in refused_key.values():
        with pytest.raises(MalformedBundle):
            KeyRequest.decode(raw)
    # what a lenient parser reads as the same envelope is still refused: the variants are
    # not just broken JSON
    lenient_same = [
        n for n, raw in refused_env.items() if _lenient(raw) == _lenient(vectors["envelope"])
    ]
    assert {"whitespace", "key-order", "utf-16", "bom", "escaped-string"} <= set(lenient_same)


def _lenient(raw: bytes):
    try:
        return json.loads(raw.decode("utf-8-sig") if raw[:2] != b"\xff\xfe" else raw)
    except ValueError:
        return None


def test_deep_nesting_and_huge_numbers_are_malformed_not_fatal():
    """A 70,000-deep array segfaulted the node through json.loads (py_ecc raises the
    recursion limit); an integer of 5,000 digits raised a plain ValueError (a 500)."""
    for raw in (
        b"[" * 70_000 + b"]" * 70_000,
        b'{"v":' + b"[" * 70_000 + b"]" * 70_000 + b"}",
        b'{"v":1,"sender":' + b"9" * 5_000 + b"}",
        b'{"v":' + b"1" * 5_000 + b"}",
        b'{"v":1e999}',
    ):
        with pytest.raises(Malformed):
            Envelope.from_bytes(raw)


def test_a_nonce_recorded_without_a_flush_survives_the_process_being_killed(tmp_path):
    """The node's receiver records nonces with ``sync=False``: the write is in the log the
    operating system holds, so a node killed with SIGKILL still refuses the replay."""
    import signal
    import subprocess
    import sys

    path = tmp_path / "state.db"
    code = (
        "import os, signal\n"
        "from chainml.node.state import NodeState, SqliteReplayCache\n"
        f"cache = SqliteReplayCache(NodeState({str(path)!r}), horizon=120, sync=False)\n"
        "assert cache.remember('0xabc', b'n' * 32, 1000)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    killed = subprocess.run([sys.executable, "-c", code], timeout=60, check=False)
    assert killed.returncode == -signal.SIGKILL
    state = NodeState(path)
    reopened = SqliteReplayCache(state, horizon=120, sync=False)
    assert len(reopened) == 1
    assert not reopened.remember("0xabc", b"n" * 32, 1000)  # the replay is refused
    assert reopened.remember("0xabc", b"m" * 32, 1000)
    assert state.query("PRAGMA synchronous")[0][0] == 2  # FULL again for every other write


def test_the_header_s_encoding_is_the_abi_encoding_of_its_types():
    """``Header.encode`` writes the ABI encoding itself: byte for byte ``eth_abi``'s, for
    purposes of every length up to the limit and integers at their bounds."""
    import random

    from eth_abi.abi import encode as abi_encode

    from chainml.node.envelope import HEADER_TYPES, VERSION, Header

    rng = random.Random(7)
    for length in range(1, 65):
        header = Header(
            sender=Identity.generate().address,
            recipient=Identity.generate().address,
            purpose="".join(
                rng.choice("abcdefghijklmnopqrstuvwxyz/-_ 0123456789") for _ in range(length)
            ),
            job_id=rng.choice([0, 1, 2**256 - 1, rng.getrandbits(256)]),
            round=rng.choice([0, 7, 2**256 - 1, rng.getrandbits(64)]),
            timestamp=rng.choice([0, 2**64 - 1, rng.getrandbits(63)]),
            nonce=rng.randbytes(32),
        )
        values = [VERSION, header.sender, header.recipient, header.purpose, header.job_id]
        values += [header.round, header.timestamp, header.nonce]
        assert header.encode() == abi_encode(list(HEADER_TYPES), values), length
    good = Header(
        Identity.generate().address, Identity.generate().address, "p", 1, 1, 1, b"\0" * 32
    )
    for bad in (
        {"job_id": 2**256},
        {"round": -1},
        {"timestamp": 2**64},
        {"nonce": b"\0" * 31},
        {"sender": "0x1234"},
    ):
        with pytest.raises(ValueError):
            Header(**{**good.__dict__, **bad}).encode()
