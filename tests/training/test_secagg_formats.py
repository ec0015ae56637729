"""What SecAgg+ /3 fixes about its formats: one encoding per message and transcript (any
other spelling refused), a graph permutation any language can redo (no numpy generator in
the format), an exact fixed-point rule, and a low-order mask key refused before any share
leaves."""

from __future__ import annotations

import base64
import dataclasses
import json
import math
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from chainml.crypto import Identity
from chainml.crypto.hazmat import fixedpoint
from chainml.training import wire
from chainml.training.secagg import (
    AggregateMismatch,
    ForgedKeys,
    MaskedInput,
    NeighbourKeys,
    PairKeys,
    ProtocolViolation,
    RoundParams,
    RoundTranscript,
    SecAggClient,
    run_in_memory,
    shuffle,
)
from chainml.training.secagg.pairkeys import _keys_body

IDS = {i: Identity.generate() for i in range(1, 7)}


def _params(n: int = 6) -> RoundParams:
    roster = {i: IDS[i].address for i in range(1, n + 1)}
    keys = {i: IDS[i].x25519.public_bytes for i in roster}
    return RoundParams.derive(
        roster, keys, 16, chain_id=5, jobs="0x" + "cd" * 20, job_id=1, round=1, attempt=0, clip=1.0
    )


def _respell(raw: bytes) -> dict[str, bytes]:
    """Spellings of the same JSON value that a lenient parser would take as ``raw``."""
    doc = json.loads(raw)
    text = raw.decode()
    first_key = next(iter(doc))
    return {
        "spaces": json.dumps(doc).encode(),
        "keys reordered": json.dumps(
            dict(reversed(list(doc.items()))), separators=(",", ":")
        ).encode(),
        "upper-case hex": text.replace("a", "A").encode() if "a" in text else b"",
        "duplicate key": ("{" + json.dumps(first_key) + ":0," + text[1:]).encode(),
        "byte-order mark": b"\xef\xbb\xbf" + raw,
        "trailing newline": raw + b"\n",
    }


def test_a_message_has_one_encoding():
    p = _params()
    client = SecAggClient(p, 1, IDS[1], np.zeros(16))
    raw = wire.encode(client.advertise())
    assert wire.decode(raw) is not None  # the canonical form is taken
    for name, other in _respell(raw).items():
        if other:
            with pytest.raises(ProtocolViolation):
                wire.decode(other)
                pytest.fail(name)


def test_a_transcript_has_one_encoding():
    p = _params()
    rng = np.random.default_rng(1)
    clients = {i: SecAggClient(p, i, IDS[i], rng.normal(size=16) * 0.1) for i in p.roster}
    raw = run_in_memory(p, clients).transcript.encode()
    assert RoundTranscript.decode(raw).encode() == raw
    for name, other in _respell(raw).items():
        if other:
            with pytest.raises(AggregateMismatch):
                RoundTranscript.decode(other)
                pytest.fail(name)
    # a client id spelled with another Unicode digit ("١" is Arabic-Indic one)
    with pytest.raises(AggregateMismatch):
        RoundTranscript.decode(raw.replace(b'"1":', '"\u0661":'.encode(), 1))


def test_the_graph_permutation_is_a_specified_uniform_shuffle():
    seed = bytes(range(32))
    assert shuffle(seed, 10) == shuffle(seed, 10)  # deterministic
    assert sorted(shuffle(seed, 37)) == list(range(37))  # a permutation
    # every one of the 24 orders of 4 equally often, over 4,800 seeds (chi-square)
    seen = Counter(tuple(shuffle(i.to_bytes(32, "big"), 4)) for i in range(4800))
    assert len(seen) == math.factorial(4)
    assert stats.chisquare(list(seen.values())).pvalue > 1e-4


def test_the_fraction_bits_rule_is_exact_at_its_edge():
    """The largest f with n (bound 2^f + 1) <= 2^31: a bound that meets it with equality
    keeps that f, one ulp more loses it."""
    n, f = 3, 10
    edge = (2**31 / n - 1) / 2**f  # not exact in binary: take the largest bound that fits
    bound = float(np.nextafter(edge, 0.0))
    while n * (Fraction(bound) * 2**f + 1) > 2**31:
        bound = float(np.nextafter(bound, 0.0))
    assert fixedpoint.fraction_bits(n, bound) == f
    exact_edge = 2.0**20 - 1  # n = 1: (2^20 - 1) 2^11 + 1 <= 2^31 exactly, and f = 12 is too many
    assert fixedpoint.fraction_bits(1, exact_edge) == 11
    with pytest.raises(ValueError):
        fixedpoint.fraction_bits(2, float("nan"))


def test_a_low_order_mask_key_is_refused_before_any_share_leaves():
    """A colluding neighbour advertises a small-order point (with a valid MAC, which it can
    make): the honest client refuses the advert as forged keys at stage 1."""
    p = _params()
    honest = SecAggClient(p, 1, IDS[1], np.zeros(16))
    honest.advertise()
    adverts = []
    for j in sorted(p.neighbours[1]):
        advert = SecAggClient(p, j, IDS[j], np.zeros(16)).advertise().for_recipient(1)
        if j == 2:  # the all-zero u-coordinate: order 1 on Curve25519
            bad = dataclasses.replace(advert, pk_s=bytes(32))
            tag = PairKeys(IDS[2].x25519).tag(p, 2, b"keys", 2, 1, _keys_body(p, bad, 1))
            advert = dataclasses.replace(bad, tags={1: tag})
        adverts.append(advert)
    with pytest.raises(ForgedKeys, match="client 2's mask key"):
        honest.handle(NeighbourKeys(1, tuple(adverts)))


def _masked_input_bytes() -> bytes:
    vector = np.arange(17, dtype=np.uint32) * np.uint32(2654435761)
    message = MaskedInput(
        1, vector, (2, 3, 4), b"\x01" * 65, b"", {j: b"\x02" * 16 for j in (2, 3, 4)}
    )
    return wire.encode(message)


def _vector_text(raw: bytes) -> str:
    return str(json.loads(raw)["vector"])


def test_a_masked_input_is_taken_without_encoding_its_vector_again():
    raw = _masked_input_bytes()
    back = wire.decode(raw)
    assert isinstance(back, MaskedInput) and wire.encode(back) == raw
    text = _vector_text(raw)
    assert text.endswith("=") and not text.endswith("==")  # 68 bytes: the last quantum pads once


def _respelt_vector(raw: bytes, other: str) -> bytes:
    text = _vector_text(raw)
    assert raw.count(text.encode()) == 1
    return raw.replace(text.encode(), other.encode())


def test_a_vector_in_another_base64_spelling_is_refused():
    """The structural check of the vector's base64 refuses what re-encoding it refused:
    nonzero unused bits, padding missing or inside, another alphabet, JSON escapes."""
    raw = _masked_input_bytes()
    text = _vector_text(raw)
    last = text[-2]  # the final data character before "=": its two low bits are unused
    flipped = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    nonzero = flipped[flipped.index(last) | 1]
    assert base64.b64decode(text[:-2] + nonzero + "=") == base64.b64decode(text)  # same bytes
    others = {
        "nonzero trailing bits": text[:-2] + nonzero + "=",
        "padding missing": text[:-1],
        "padding inside": text[:4] + "=" + text[5:],
        "extra padding": text + "==",
        "url-safe alphabet": text.replace("+", "-").replace("/", "_"),
        "a line break": text[:76] + "\\n" + text[76:],
        "an escaped slash": text.replace("/", "\\/", 1),
        "an escaped letter": "\\u0041" + text[1:]
        if text[0] == "A"
        else "\\u00" + text[0].encode().hex() + text[1:],
    }
    assert "+" in text or "/" in text
    for name, other in others.items():
        if other == text:
            continue
        with pytest.raises(ProtocolViolation):
            wire.decode(_respelt_vector(raw, other))
            pytest.fail(name)
