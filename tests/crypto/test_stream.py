"""Streaming AEAD: round trips at every chunk boundary, and each way a stream can be wrong
raises its own error."""

from __future__ import annotations

import os
import random

import pytest

from chainml.crypto.errors import (
    DecryptionFailed,
    DuplicatedChunk,
    ExtendedStream,
    InvalidKey,
    MalformedHeader,
    ReorderedChunk,
    TamperedChunk,
    TruncatedStream,
    WrongKey,
)
from chainml.crypto.stream import (
    HEADER_SIZE,
    TAG,
    StreamOpener,
    StreamSealer,
    generate_key,
    open_sealed,
    open_stream,
    seal,
    seal_stream,
)

CS = 1024  # small chunks so the tests cross many boundaries
AAD = b"model 7 version 2"


def _chunks(ciphertext: bytes) -> tuple[bytes, list[bytes]]:
    body = ciphertext[HEADER_SIZE:]
    step = CS + TAG
    return ciphertext[:HEADER_SIZE], [body[i : i + step] for i in range(0, len(body), step)]


def _pieces(data: bytes, rng: random.Random) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        j = i + rng.randint(1, 3 * CS)
        out.append(data[i:j])
        i = j
    return out


@pytest.mark.parametrize("size", [0, 1, CS - 1, CS, CS + 1, 2 * CS, 5 * CS + 3])
def test_round_trip_whatever_the_pieces(size: int):
    rng = random.Random(size)
    key, data = generate_key(), rng.randbytes(size)
    sealed = b"".join(seal_stream(key, _pieces(data, rng), AAD, chunk_size=CS))
    chunks = max(1, -(-size // CS))
    assert len(sealed) == HEADER_SIZE + size + chunks * TAG
    assert b"".join(open_stream(key, _pieces(sealed, rng), AAD)) == data


def test_commitments_agree_and_hide():
    key, data = generate_key(), os.urandom(3 * CS)
    sealer = StreamSealer(key, AAD, chunk_size=CS)
    sealed = b"".join(sealer.update(data) + sealer.finalize())
    opener = StreamOpener(key, AAD)
    assert b"".join(opener.update(sealed) + opener.finalize()) == data
    assert opener.plaintext_commitment == sealer.plaintext_commitment
    assert opener.plaintext_length == sealer.plaintext_length == len(data)
    other = StreamSealer(generate_key(), AAD, chunk_size=CS)
    other.update(data)
    other.finalize()
    assert other.plaintext_commitment != sealer.plaintext_commitment  # keyed: no guessing
    assert seal(key, data, AAD) != seal(key, data, AAD)  # a fresh salt every time


@pytest.fixture
def sealed() -> tuple[bytes, bytes, bytes]:
    key, data = generate_key(), os.urandom(4 * CS)  # a full last chunk: appends align
    return key, data, seal(key, data, AAD, chunk_size=CS)


def test_wrong_key_or_context_is_refused_before_any_chunk(sealed):
    key, _, ct = sealed
    with pytest.raises(WrongKey):
        open_sealed(generate_key(), ct, AAD)
    with pytest.raises(WrongKey):  # the same ciphertext claimed for another version
        open_sealed(key, ct, b"model 7 version 3")
    with pytest.raises(InvalidKey):
        open_sealed(key[:16], ct, AAD)


def test_key_commitment_in_header_is_checked(sealed):
    key, _, ct = sealed
    forged = bytearray(ct)
    forged[HEADER_SIZE - 1] ^= 1
    with pytest.raises(WrongKey):
        open_sealed(key, bytes(forged), AAD)


@pytest.mark.parametrize(
    ("mutate", "error"),
    [
        (lambda c: [c[0], c[2], c[1], *c[3:]], ReorderedChunk),
        (lambda c: [c[0], c[1], c[1], *c[2:]], DuplicatedChunk),
        (lambda c: c[:-1], TruncatedStream),
        (lambda c: [*c, c[1]], ExtendedStream),
        (lambda c: [*c, b"\x00" * 40], ExtendedStream),
        (lambda c: [c[0][:-1] + bytes([c[0][-1] ^ 1]), *c[1:]], TamperedChunk),
        (lambda c: [*c[:-1], c[-1][: TAG - 1]], TruncatedStream),
        (lambda c: [*c[:-1], c[-1][:-3]], TamperedChunk),
    ],
    ids=[
        "reorder",
        "duplicate",
        "cut",
        "append-chunk",
        "append-bytes",
        "flip",
        "cut-tag",
        "cut-mid",
    ],
)
def test_each_change_has_its_error(sealed, mutate, error):
    key, _, ct = sealed
    header, chunks = _chunks(ct)
    bad = header + b"".join(mutate(chunks))
    with pytest.raises(error) as info:
        open_sealed(key, bad, AAD)
    assert isinstance(info.value, DecryptionFailed)  # one root for callers that don't care
    assert key.hex() not in str(info.value)


@pytest.mark.parametrize("cut", [1, TAG, CS // 2, CS + TAG + 5])
def test_a_promised_length_names_any_cut_or_append(cut: int):
    key, data = generate_key(), os.urandom(3 * CS + 10)
    ct = seal(key, data, AAD, chunk_size=CS)
    with pytest.raises(TruncatedStream):
        b"".join(open_stream(key, [ct[:-cut]], AAD, len(data)))
    with pytest.raises(ExtendedStream):
        b"".join(open_stream(key, [ct, os.urandom(cut)], AAD, len(data)))
    assert b"".join(open_stream(key, [ct], AAD, len(data))) == data


def test_not_a_stream():
    with pytest.raises(MalformedHeader):
        open_sealed(generate_key(), b"PK\x03\x04" + bytes(100), AAD)
    with pytest.raises(MalformedHeader):
        open_sealed(generate_key(), b"short", AAD)


def test_bad_parameters():
    with pytest.raises(ValueError):
        StreamSealer(generate_key(), AAD, chunk_size=1000)
    with pytest.raises(ValueError):
        StreamSealer(generate_key(), AAD, suite=9)


def test_chacha_suite_round_trip():
    key, data = generate_key(), os.urandom(3 * CS)
    sealer = StreamSealer(key, AAD, chunk_size=CS, suite=2)
    ct = b"".join(sealer.update(data) + sealer.finalize())
    assert open_sealed(key, ct, AAD) == data
