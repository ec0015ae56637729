"""Streaming authenticated encryption for artifacts of any size (the STREAM construction).

Layout: a 74-byte header, then the plaintext cut into chunks of ``chunk_size`` bytes, each
sealed with AES-256-GCM (or ChaCha20-Poly1305) and followed by its 16-byte tag; the last
chunk may be shorter, or empty for an empty plaintext.

    header = "cmlseal" 0x01 | suite (1) | log2(chunk_size) (1) | salt (32) | key commitment (32)

From the caller's 32-byte data key, HKDF-SHA256 (salt from the header, ``info`` = a context
label and the caller's associated data, which names the artifact and its version) derives
three values: the chunk key, a key commitment written in the header, and a key for the
plaintext commitment.  So:

- a ciphertext opens under one key only: a second key would need an HKDF collision
  (the key commitment is checked before any chunk is decrypted);
- a ciphertext moved to another artifact id or version does not open;
- chunk ``i``'s nonce is ``i`` (11 bytes, big-endian) followed by a last-chunk flag, and
  the header is every chunk's associated data: a reordered, duplicated, dropped or changed
  chunk, a cut at a chunk boundary and bytes appended after the end all fail, and on the
  failure path the opener finds out which of these it was and raises that error;
- the plaintext commitment, keyed BLAKE3 of the plaintext, binds it (a collision-resistant
  hash under a key fixed by the key commitment) without letting those who lack the key
  test guesses of it.  BLAKE3 rather than HMAC-SHA-256 because it runs several times
  faster than AES-GCM here, where SHA-256 would halve the throughput.

Memory is one chunk of plaintext and one of ciphertext, whatever the artifact's size.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from blake3 import blake3
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from chainml.crypto.errors import (
    DuplicatedChunk,
    ExtendedStream,
    InvalidKey,
    MalformedHeader,
    ReorderedChunk,
    TamperedChunk,
    TruncatedStream,
    WrongKey,
)

MAGIC = b"cmlseal\x01"
HEADER_SIZE = len(MAGIC) + 2 + 32 + 32
TAG = 16
KEY_SIZE = 32
DEFAULT_CHUNK = 1 << 20
SUITES = {1: "AES-256-GCM", 2: "ChaCha20-Poly1305"}
_CONTEXT = b"chainml/stream/v1"
_SEARCH = 64  # positions tried past a failing chunk to tell a reorder from a change


def generate_key() -> bytes:
    return os.urandom(KEY_SIZE)


@dataclass(frozen=True)
class _Keys:
    chunk: AESGCM | ChaCha20Poly1305
    key_commitment: bytes
    mac_key: bytes


def _derive(key: bytes, salt: bytes, aad: bytes, suite: int) -> _Keys:
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        raise InvalidKey("a data key is 32 bytes")
    info = _CONTEXT + len(aad).to_bytes(4, "big") + aad
    okm = HKDF(algorithm=hashes.SHA256(), length=96, salt=salt, info=info).derive(key)
    cipher = AESGCM(okm[:32]) if suite == 1 else ChaCha20Poly1305(okm[:32])
    return _Keys(cipher, okm[32:64], okm[64:])


def key_commitment(key: bytes, salt: bytes, aad: bytes) -> bytes:
    """The commitment a stream sealed under ``key`` with this salt and context carries:
    lets a holder of shares check a rebuilt key without reading the ciphertext."""
    return _derive(key, salt, aad, 1).key_commitment


def _nonce(index: int, last: bool) -> bytes:
    return index.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


@dataclass(frozen=True)
class StreamHeader:
    suite: int
    chunk_size: int
    salt: bytes
    key_commitment: bytes

    def encode(self) -> bytes:
        log2 = self.chunk_size.bit_length() - 1
        return MAGIC + bytes([self.suite, log2]) + self.salt + self.key_commitment

    @classmethod
    def decode(cls, data: bytes) -> StreamHeader:
        if len(data) < HEADER_SIZE or data[: len(MAGIC)] != MAGIC:
            raise MalformedHeader("not a chainml sealed stream of a known version")
        suite, log2 = data[8], data[9]
        if suite not in SUITES or not 10 <= log2 <= 26:
            raise MalformedHeader("unknown cipher suite or chunk size")
        return cls(suite, 1 << log2, data[10:42], data[42:74])


def _whole_chunks(
    buffer: bytearray, data: bytes | memoryview, step: int
) -> Iterator[bytes | memoryview]:
    """The chunks of ``step`` bytes that are known not to be the last: each has at least one
    byte after it.  What remains (at most ``step`` bytes) is left in ``buffer``.  Chunks
    are views of ``data`` where possible, so a large piece is not copied."""
    view = memoryview(data)
    pos = 0
    if buffer:
        pos = min(step - len(buffer), len(view))
        buffer += view[:pos]
        if len(buffer) < step or pos == len(view):
            return
        yield bytes(buffer)
        buffer.clear()
    while len(view) - pos > step:
        yield view[pos : pos + step]
        pos += step
    buffer += view[pos:]


class StreamSealer:
    """Seals a plaintext fed in pieces of any size.  ``update`` and ``finalize`` return the
    ciphertext pieces produced so far (the header comes first)."""

    def __init__(
        self, key: bytes, aad: bytes, *, chunk_size: int = DEFAULT_CHUNK, suite: int = 1
    ) -> None:
        if suite not in SUITES:
            raise ValueError(f"suite must be one of {sorted(SUITES)}")
        if chunk_size & (chunk_size - 1) or not 1 << 10 <= chunk_size <= 1 << 26:
            raise ValueError("chunk_size is a power of two from 1 KiB to 64 MiB")
        salt = os.urandom(32)
        self._keys = _derive(key, salt, aad, suite)
        self.header = StreamHeader(suite, chunk_size, salt, self._keys.key_commitment)
        self._ad = self.header.encode()
        self._started = False
        self._buffer = bytearray()
        self._index = 0
        self._mac = blake3(key=self._keys.mac_key)
        self.plaintext_length = 0
        self.plaintext_commitment: bytes | None = None

    def _seal(self, chunk: bytes | memoryview, last: bool) -> bytes:
        self._mac.update(chunk)
        out = self._keys.chunk.encrypt(_nonce(self._index, last), chunk, self._ad)
        self._index += 1
        return out

    def update(self, data: bytes | memoryview) -> list[bytes]:
        if self.plaintext_commitment is not None:
            raise RuntimeError("sealer already finalized")
        self.plaintext_length += len(data)
        out = [] if self._started else [self._ad]
        self._started = True
        for chunk in _whole_chunks(self._buffer, data, self.header.chunk_size):
            out.append(self._seal(chunk, False))
        return out

    def finalize(self) -> list[bytes]:
        out = self.update(b"")
        out.append(self._seal(bytes(self._buffer), True))
        self._buffer.clear()
        self.plaintext_commitment = self._mac.digest()
        return out


class StreamOpener:
    """Opens a sealed stream fed in pieces of any size.  Plaintext is returned chunk by
    chunk as it authenticates; only ``finalize`` says the stream was whole, so a caller
    that writes to disk keeps the output aside until then.

    Given the ``plaintext_length`` a manifest promises, bytes past the end are refused as
    they arrive, and a short stream is named as truncated, wherever the cut falls."""

    def __init__(self, key: bytes, aad: bytes, plaintext_length: int | None = None) -> None:
        self._key, self._aad = key, aad
        self._expected = plaintext_length
        self._received = 0
        self._keys: _Keys | None = None
        self._ad = b""
        self._head = bytearray()
        self._buffer = bytearray()
        self._index = 0
        self._mac: blake3 | None = None
        self.header: StreamHeader | None = None
        self.plaintext_length = 0
        self.plaintext_commitment: bytes | None = None

    def _start(self, head: bytes) -> None:
        header = StreamHeader.decode(head)
        keys = _derive(self._key, header.salt, self._aad, header.suite)
        if not hmac.compare_digest(keys.key_commitment, header.key_commitment):
            raise WrongKey("the key or the artifact context does not match this stream")
        self.header, self._keys, self._ad = header, keys, head
        self._mac = blake3(key=keys.mac_key)

    def _try(self, index: int, last: bool, sealed: bytes | memoryview) -> bytes | None:
        assert self._keys is not None
        try:
            return self._keys.chunk.decrypt(_nonce(index, last), sealed, self._ad)
        except InvalidTag:
            return None

    def _open(self, sealed: bytes | memoryview, last: bool) -> bytes:
        plain = self._try(self._index, last, sealed)
        if plain is None:
            raise self._diagnose(sealed, last)
        assert self._mac is not None
        self._mac.update(plain)
        self.plaintext_length += len(plain)
        self._index += 1
        return plain

    def _diagnose(self, sealed: bytes | memoryview, last: bool) -> Exception:
        i = self._index
        if self._try(i, not last, sealed) is not None:
            if last:
                return TruncatedStream(f"the stream ends after chunk {i}, which is not final")
            return ExtendedStream(f"bytes follow the final chunk {i}")
        for j in range(i + _SEARCH):
            if j != i and any(self._try(j, flag, sealed) is not None for flag in (False, True)):
                if j < i:
                    return DuplicatedChunk(f"chunk {j} appears again at position {i}")
                return ReorderedChunk(f"chunk {j} appears at position {i}")
        return TamperedChunk(f"chunk {i} does not authenticate")

    def _sealed_length(self) -> int | None:
        if self._expected is None or self.header is None:
            return None
        chunks = max(1, -(-self._expected // self.header.chunk_size))
        return HEADER_SIZE + self._expected + chunks * TAG

    def update(self, data: bytes | memoryview) -> list[bytes]:
        self._received += len(data)
        if self.header is None:
            take = HEADER_SIZE - len(self._head)
            self._head += memoryview(data)[:take]
            data = memoryview(data)[take:]
            if len(self._head) < HEADER_SIZE:
                return []
            self._start(bytes(self._head))
        assert self.header is not None
        expected = self._sealed_length()
        if expected is not None and self._received > expected:
            raise ExtendedStream(f"bytes follow the promised {self._expected}-byte plaintext")
        step = self.header.chunk_size + TAG
        return [self._open(c, False) for c in _whole_chunks(self._buffer, data, step)]

    def finalize(self) -> list[bytes]:
        if self.header is None:
            raise MalformedHeader("stream shorter than its header")
        expected = self._sealed_length()
        if expected is not None and self._received < expected:
            raise TruncatedStream(f"the stream ends before its promised {self._expected} bytes")
        if len(self._buffer) < TAG:
            raise TruncatedStream("the stream ends inside a chunk's tag")
        out = self._open(bytes(self._buffer), True)
        self._buffer.clear()
        assert self._mac is not None
        self.plaintext_commitment = self._mac.digest()
        return [out]


def seal_stream(
    key: bytes, pieces: Iterable[bytes], aad: bytes, *, chunk_size: int = DEFAULT_CHUNK
) -> Iterator[bytes]:
    sealer = StreamSealer(key, aad, chunk_size=chunk_size)
    for piece in pieces:
        yield from sealer.update(piece)
    yield from sealer.finalize()


def open_stream(
    key: bytes, pieces: Iterable[bytes], aad: bytes, plaintext_length: int | None = None
) -> Iterator[bytes]:
    opener = StreamOpener(key, aad, plaintext_length)
    for piece in pieces:
        yield from opener.update(piece)
    yield from opener.finalize()


def seal(key: bytes, plaintext: bytes, aad: bytes, *, chunk_size: int = DEFAULT_CHUNK) -> bytes:
    return b"".join(seal_stream(key, [plaintext], aad, chunk_size=chunk_size))


def open_sealed(key: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    return b"".join(open_stream(key, [ciphertext], aad))
