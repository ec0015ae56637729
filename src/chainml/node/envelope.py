"""Signed, sealed envelopes: every message between nodes.

An envelope's header names the sender and recipient (registered accounts), the purpose,
the job and round, a timestamp and a random 32-byte nonce.  The payload is sealed to the
recipient's registered X25519 key with HPKE, with the header as HPKE ``info`` so that a
payload cannot be moved under another header.  The sender signs the header and the hash of
the sealed payload as EIP-712 typed data under the domain ``{name: "chainml-envelope",
version: "1", chainId, verifyingContract: Registry}``: a signature made for one chain or
one deployment is worthless on another.

On the wire an envelope has one canonical form (``docs/protocol/wire.md``), parsed by
``chainml.crypto.wire`` without recursion; any other spelling is ``Malformed``.
``EnvelopeReceiver.open`` checks, cheapest first: size, form, recipient, freshness, the
signature, whether the signed sender is banned, its registration and stake, the nonce
(replays), and finally opens the payload.  Each refusal is a ``Rejected`` subclass with a
``cause`` and is counted.  The nonce is recorded only after the signature verified, so
forged envelopes cannot fill the replay cache.
"""

from __future__ import annotations

import base64
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from chainml.crypto import keccak256, wire
from chainml.crypto.eip712 import ENVELOPE
from chainml.crypto.errors import CryptoError
from chainml.crypto.hpke import OVERHEAD, open_sealed, seal
from chainml.crypto.keys import Identity, recover_address
from chainml.errors import ChainmlError

VERSION = 1
MAX_PURPOSE = 64
DEFAULT_MAX_PAYLOAD = 4 << 20
DEFAULT_MAX_SKEW = 120  # seconds either side of the receiver's clock


class Rejected(ChainmlError):
    """An envelope was refused; ``cause`` names why (the metric label).  ``sender`` is the
    account whose signature verified before the refusal (None when nothing was signed):
    what a ban may be pinned on."""

    cause = "rejected"
    sender: str | None = None


class Malformed(Rejected):
    cause = "malformed"


class Oversized(Rejected):
    cause = "oversized"


class WrongRecipient(Rejected):
    cause = "wrong_recipient"


class Stale(Rejected):
    cause = "stale"


class BadSignature(Rejected):
    cause = "bad_signature"


class UnknownSender(Rejected):
    cause = "unknown_sender"


class Unstaked(Rejected):
    cause = "unstaked"


class Replayed(Rejected):
    cause = "replayed"


class Undecryptable(Rejected):
    cause = "undecryptable"


class Banned(Rejected):
    """The signed sender is banned (it misbehaved before): refused before its payload is
    opened or its nonce recorded."""

    cause = "banned"


CAUSES = tuple(
    c.cause
    for c in (
        Malformed,
        Oversized,
        WrongRecipient,
        Stale,
        BadSignature,
        UnknownSender,
        Unstaked,
        Replayed,
        Undecryptable,
        Banned,
    )
)


@dataclass(frozen=True)
class Header:
    sender: str
    recipient: str
    purpose: str
    job_id: int
    round: int
    timestamp: int
    nonce: bytes

    def encode(self) -> bytes:
        """Canonical bytes of the header: HPKE ``info``, the ABI encoding of ``(uint8
        version, address sender, address recipient, string purpose, uint256 job_id, uint256
        round, uint64 timestamp, bytes32 nonce)``.  Written out here rather than through
        ``eth_abi`` (a fifth of the time to seal an envelope); ``HEADER_TYPES`` and a test
        hold the two byte for byte.  Raises ``ValueError`` for a value out of its type."""
        purpose = self.purpose.encode("utf-8")
        if len(self.nonce) != 32:
            raise ValueError("the nonce is 32 bytes")
        if not 0 <= self.timestamp < 1 << 64:
            raise ValueError("the timestamp is a uint64")
        try:
            return b"".join(
                (
                    VERSION.to_bytes(32, "big"),
                    _address_word(self.sender),
                    _address_word(self.recipient),
                    (8 * 32).to_bytes(32, "big"),  # where the string's length is
                    self.job_id.to_bytes(32, "big"),
                    self.round.to_bytes(32, "big"),
                    self.timestamp.to_bytes(32, "big"),
                    bytes(self.nonce),
                    len(purpose).to_bytes(32, "big"),
                    purpose.ljust(-(-len(purpose) // 32) * 32, b"\0"),
                )
            )
        except OverflowError:
            raise ValueError("job_id and round are uint256") from None


HEADER_TYPES = ("uint8", "address", "address", "string", "uint256", "uint256", "uint64", "bytes32")


def _address_word(address: str) -> bytes:
    raw = bytes.fromhex(address[2:]) if address[:2] in ("0x", "0X") else b""
    if len(raw) != 20:
        raise ValueError(f"not an address: {address!r}")
    return raw.rjust(32, b"\0")


def envelope_digest(chain_id: int, registry: str, header: Header, payload: bytes) -> bytes:
    return ENVELOPE.digest(
        chain_id,
        registry,
        header.sender,
        header.recipient,
        header.purpose,
        header.job_id,
        header.round,
        header.timestamp,
        header.nonce,
        keccak256(payload),
    )


@dataclass(frozen=True)
class Envelope:
    header: Header
    payload: bytes  # HPKE enc || ciphertext
    signature: bytes

    def to_bytes(self) -> bytes:
        """The envelope's one canonical wire form (``docs/protocol/wire.md``)."""
        h = self.header
        return wire.encode(
            [
                ("v", VERSION),
                ("sender", h.sender),
                ("recipient", h.recipient),
                ("purpose", h.purpose),
                ("job_id", h.job_id),
                ("round", h.round),
                ("timestamp", h.timestamp),
                ("nonce", h.nonce.hex()),
                ("payload", base64.b64encode(self.payload).decode()),
                ("signature", self.signature.hex()),
            ]
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> Envelope:
        """Parse the canonical wire form; raises ``Malformed`` for any other byte string
        (another spelling of the same values included), before any other work."""
        try:
            doc = wire.decode(raw, WIRE_SCHEMA)
        except wire.WireError as exc:
            raise Malformed(f"not a canonical version-{VERSION} envelope: {exc}") from None
        header = Header(
            sender=doc["sender"],
            recipient=doc["recipient"],
            purpose=doc["purpose"],
            job_id=doc["job_id"],
            round=doc["round"],
            timestamp=doc["timestamp"],
            nonce=doc["nonce"],
        )
        return cls(header, doc["payload"], doc["signature"])


WIRE_SCHEMA = (
    ("v", wire.const(VERSION)),
    ("sender", wire.address),
    ("recipient", wire.address),
    ("purpose", wire.text(MAX_PURPOSE)),
    ("job_id", wire.uint(256)),
    ("round", wire.uint(256)),
    ("timestamp", wire.uint(64)),
    ("nonce", wire.hex_bytes(32)),
    ("payload", wire.base64_bytes(1 << 30)),
    ("signature", wire.hex_bytes(65)),
)


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _purpose(value: Any) -> str:
    text = _str(value)
    if not 0 < len(text) <= MAX_PURPOSE or not text.isascii() or not text.isprintable():
        raise ValueError("purpose must be 1-64 printable ASCII characters")
    return text


def seal_envelope(
    sender: Identity,
    *,
    recipient: str,
    recipient_key: bytes,
    purpose: str,
    plaintext: bytes,
    chain_id: int,
    registry: str,
    timestamp: int,
    job_id: int = 0,
    round: int = 0,
    nonce: bytes | None = None,
) -> Envelope:
    """Seal ``plaintext`` to ``recipient_key`` and sign it as ``sender``."""
    header = Header(
        sender=sender.address,
        recipient=wire.checksummed(recipient),
        purpose=_purpose(purpose),
        job_id=job_id,
        round=round,
        timestamp=timestamp,
        nonce=nonce if nonce is not None else os.urandom(32),
    )
    payload = seal(recipient_key, plaintext, header.encode())
    signature = sender.account.sign_digest(envelope_digest(chain_id, registry, header, payload))
    return Envelope(header, payload, signature)


@dataclass(frozen=True)
class Peer:
    """What the receiver needs to know of a sender, from the Registry."""

    address: str
    x25519_public: bytes
    stake: int


class PeerDirectory(Protocol):
    def lookup(self, address: str) -> Peer | None: ...


class ReplayCache(Protocol):
    def remember(self, sender: str, nonce: bytes, timestamp: int) -> bool:
        """Record the nonce; False if it was already recorded."""
        ...


@dataclass(frozen=True)
class Opened:
    header: Header
    plaintext: bytes


class EnvelopeReceiver:
    """Opens envelopes addressed to ``identity``; the ledger view, the replay cache and the
    clock are injected."""

    def __init__(
        self,
        identity: Identity,
        *,
        chain_id: int,
        registry: str,
        peers: PeerDirectory,
        replays: ReplayCache,
        clock: Callable[[], float],
        min_stake: int = 1,
        max_skew: int = DEFAULT_MAX_SKEW,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
    ) -> None:
        self.identity = identity
        self.chain_id = chain_id
        self.registry = registry
        self.peers = peers
        self.replays = replays
        self.clock = clock
        self.min_stake = min_stake
        self.max_skew = max_skew
        self.max_payload = max_payload
        self.rejections: Counter[str] = Counter()
        self.accepted = 0

    @property
    def max_wire_size(self) -> int:
        return (self.max_payload + OVERHEAD) * 4 // 3 + 1024

    def open(self, raw: bytes, banned: Callable[[str], bool] = lambda sender: False) -> Opened:
        """The envelope's header and plaintext, or a ``Rejected``.  ``banned(sender)`` is
        asked once the signature verified; a banned sender gets ``Banned``."""
        try:
            opened = self._open(raw, banned)
        except Rejected as exc:
            self.rejections[exc.cause] += 1
            raise
        self.accepted += 1
        return opened

    def _open(self, raw: bytes, banned: Callable[[str], bool]) -> Opened:
        if len(raw) > self.max_wire_size:
            raise Oversized(f"{len(raw)} bytes on the wire, limit {self.max_wire_size}")
        env = Envelope.from_bytes(raw)
        h = env.header
        if len(env.payload) > self.max_payload + OVERHEAD:
            raise Oversized(f"payload of {len(env.payload)} bytes")
        if h.recipient != self.identity.address:
            raise WrongRecipient("addressed to another node")
        if abs(self.clock() - h.timestamp) > self.max_skew:
            raise Stale(f"timestamp {h.timestamp} is more than {self.max_skew} s off")
        if env.signature[64] not in (27, 28):  # before hashing a payload of megabytes
            raise BadSignature("not a signature")
        digest = envelope_digest(self.chain_id, self.registry, h, env.payload)
        try:
            signer = recover_address(digest, env.signature)
        except CryptoError:
            signer = None
        if signer != h.sender:
            raise BadSignature("not signed by the sender")
        try:
            return self._open_signed(env, banned)
        except Rejected as exc:
            exc.sender = h.sender
            raise

    def _open_signed(self, env: Envelope, banned: Callable[[str], bool]) -> Opened:
        h = env.header
        if banned(h.sender):
            raise Banned("sender is banned for a while")
        peer = self.peers.lookup(h.sender)
        if peer is None:
            raise UnknownSender("sender is not registered")
        if peer.stake < self.min_stake:
            raise Unstaked(f"sender's stake {peer.stake} is below {self.min_stake}")
        if not self.replays.remember(h.sender, h.nonce, h.timestamp):
            raise Replayed("nonce already seen")
        try:
            plaintext = open_sealed(self.identity.x25519, env.payload, h.encode())
        except CryptoError:
            raise Undecryptable("payload does not open") from None
        return Opened(h, plaintext)
