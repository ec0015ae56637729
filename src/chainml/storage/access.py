"""Who may read a sealed artifact: key release driven by the Models contract's grants.

Two ways a grantee gets an artifact's data key, both checked against the chain:

- **owner release**: the owner seals the key with HPKE to the grantee's registered X25519
  key (``wrap_for_grantee``) and stores that bundle; the grant on chain names it.
- **threshold release**: the owner Shamir-splits the key k-of-n among guardians registered
  on chain, each share sealed to its guardian (``split_among_guardians``); the grant names
  that bundle.  A guardian (``Guardian.release``) hands out its share, sealed to the
  requester's registered key, only if the request is signed by the grantee, fresh and not
  replayed, and the chain says the grant exists, has not expired and was not revoked.
  Any k shares rebuild the key (``recover_key``), which is checked against the artifact's
  key commitment, so a guardian that returns a bad share is outvoted, not believed.

Revocation is final on chain, and guardians refuse from the next request; what a grantee
already decrypted stays with it, so ``rotate`` re-seals the artifact as a new version under
a new key.  Every protocol step is a pure function or a method on a class that is handed
its chain view and store: nothing here opens a socket or reads the clock.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from eth_utils.address import to_checksum_address

from chainml.crypto import hpke, wire
from chainml.crypto.eip712 import KEY_RELEASE, KEY_REQUEST
from chainml.crypto.errors import CryptoError, DecryptionFailed, InvalidSignature
from chainml.crypto.hashing import keccak256
from chainml.crypto.hazmat.shamir import Share, ShareError, combine, split
from chainml.crypto.keys import AccountKey, Identity, X25519KeyPair, recover_address
from chainml.crypto.stream import generate_key
from chainml.storage.errors import StorageError
from chainml.storage.sealed import Manifest, SealedArtifact, open_stream, seal_artifact
from chainml.storage.store import BlobStore

MAX_BUNDLE = 64 * 1024


class AccessError(StorageError):
    """A key was not released; the subclass says why."""


class UnknownGrant(AccessError):
    """No such grant on chain."""


class GrantExpired(AccessError):
    """The grant's expiry has passed (by the chain's clock)."""


class GrantRevoked(AccessError):
    """The owner revoked the grant on chain."""


class NotGrantee(AccessError):
    """The request is signed by an account other than the grantee."""


class ForgedRequest(AccessError):
    """The request's signature does not verify for the account it names."""


class StaleRequest(AccessError):
    """The request's timestamp is too far from the chain's time."""


class ReplayedRequest(AccessError):
    """The request's nonce was already used."""


class NotAGuardian(AccessError):
    """This guardian holds no share of that grant's key, or the bundle names another."""


class UnknownParty(AccessError):
    """The account has no identity (X25519 key) registered on chain."""


class MalformedBundle(AccessError, ValueError):
    """A key bundle or message that is not of the expected form."""


class NotEnoughShares(AccessError):
    """Fewer valid shares than the threshold: the key cannot be rebuilt."""


class Grant(Protocol):
    @property
    def version_id(self) -> int: ...
    @property
    def grantee(self) -> str: ...
    @property
    def expiry(self) -> int: ...
    @property
    def wrapped_key_ref(self) -> str: ...
    @property
    def revoked(self) -> bool: ...


class ChainView(Protocol):
    """What key release reads from the chain; the node wires it to the ledger."""

    @property
    def chain_id(self) -> int: ...
    @property
    def models_address(self) -> str: ...
    def grant(self, grant_id: int) -> Grant:
        """Raises ``UnknownGrant``."""
        ...

    def x25519_key(self, account: str) -> bytes:
        """The account's registered X25519 public key; raises ``UnknownParty``."""
        ...

    def now(self) -> int:
        """The timestamp of the chain's latest block."""
        ...


class ReplayGuard(Protocol):
    def remember(self, sender: str, nonce: bytes, timestamp: int) -> bool:
        """True the first time a (sender, nonce) is seen, False after."""
        ...


class MemoryReplayGuard:
    """In-memory, bounded; the node passes its SQLite cache, which survives restarts."""

    def __init__(self, limit: int = 100_000) -> None:
        self._seen: dict[tuple[str, bytes], int] = {}
        self._limit = limit

    def remember(self, sender: str, nonce: bytes, timestamp: int) -> bool:
        key = (sender.lower(), nonce)
        if key in self._seen:
            return False
        if len(self._seen) >= self._limit:
            self._seen.pop(next(iter(self._seen)))
        self._seen[key] = timestamp
        return True


# -- bundles: what a grant's wrapped_key_ref points to ---------------------------------------


def _info(label: bytes, view: ChainView, *parts: int | str) -> bytes:
    body = b"".join(str(p).lower().encode() + b"\x00" for p in parts)
    return label + view.chain_id.to_bytes(32, "big") + bytes.fromhex(view.models_address[2:]) + body


def _load_bundle(raw: bytes, kind: str) -> dict[str, object]:
    if len(raw) > MAX_BUNDLE:
        raise MalformedBundle("key bundle too large")
    try:
        bundle = json.loads(raw)
    except ValueError:
        raise MalformedBundle("key bundle is not JSON") from None
    if not isinstance(bundle, dict) or bundle.get("kind") != kind:
        raise MalformedBundle(f"not a {kind} key bundle")
    return bundle


def _dump(bundle: dict[str, object]) -> bytes:
    return json.dumps(bundle, sort_keys=True, separators=(",", ":")).encode()


def wrap_for_grantee(view: ChainView, key: bytes, version_id: int, grantee: str) -> bytes:
    """Owner release: the key sealed to ``grantee``'s registered X25519 key."""
    sealed = hpke.seal(
        view.x25519_key(grantee), key, _info(b"chainml/grant-key/v1", view, version_id, grantee)
    )
    return _dump(
        {"kind": "owner", "version_id": version_id, "grantee": grantee, "sealed": sealed.hex()}
    )


def unwrap_as_grantee(
    view: ChainView, bundle: bytes, me: X25519KeyPair, version_id: int, grantee: str
) -> bytes:
    data = _load_bundle(bundle, "owner")
    if data.get("version_id") != version_id or str(data.get("grantee")).lower() != grantee.lower():
        raise MalformedBundle("the bundle is for another version or grantee")
    try:
        sealed = bytes.fromhex(str(data["sealed"]))
    except (KeyError, ValueError):
        raise MalformedBundle("bundle without a sealed key") from None
    return hpke.open_sealed(me, sealed, _info(b"chainml/grant-key/v1", view, version_id, grantee))


def split_among_guardians(
    view: ChainView, key: bytes, version_id: int, guardians: Sequence[str], threshold: int
) -> bytes:
    """Threshold release: ``len(guardians)`` shares, any ``threshold`` rebuild ``key``;
    each sealed to its guardian's registered X25519 key and bound to the version."""
    if len({g.lower() for g in guardians}) != len(guardians):
        raise ValueError("each guardian once")
    shares = split(key, threshold, len(guardians))
    entries = []
    for guardian, share in zip(guardians, shares, strict=True):
        info = _info(b"chainml/guardian-share/v1", view, version_id, guardian, share.index)
        sealed = hpke.seal(view.x25519_key(guardian), share.encode(), info)
        entries.append({"guardian": guardian, "index": share.index, "sealed": sealed.hex()})
    return _dump(
        {"kind": "threshold", "version_id": version_id, "threshold": threshold, "shares": entries}
    )


# -- requests and releases ------------------------------------------------------------------


@dataclass(frozen=True)
class KeyRequest:
    grant_id: int
    guardian: str
    requester: str
    timestamp: int
    nonce: bytes  # 32 random bytes
    signature: bytes

    def digest(self, view: ChainView) -> bytes:
        return request_digest(
            view, self.grant_id, self.guardian, self.requester, self.timestamp, self.nonce
        )

    def encode(self) -> bytes:
        return _dump(
            {
                "grant_id": self.grant_id,
                "guardian": self.guardian,
                "requester": self.requester,
                "timestamp": self.timestamp,
                "nonce": self.nonce.hex(),
                "signature": self.signature.hex(),
            }
        )

    @classmethod
    def decode(cls, raw: bytes) -> KeyRequest:
        """Parse the canonical wire form (``docs/protocol/wire.md``: the keys sorted, no
        whitespace, integers in range of their EIP-712 types, lower-case hex, EIP-55
        addresses); anything else raises ``MalformedBundle`` before any other work."""
        try:
            d = wire.decode(raw, KEY_REQUEST_SCHEMA)
        except wire.WireError as exc:
            raise MalformedBundle(f"not a canonical key request: {exc}") from None
        return cls(
            d["grant_id"], d["guardian"], d["requester"], d["timestamp"], d["nonce"], d["signature"]
        )


KEY_REQUEST_SCHEMA = (  # the order KeyRequest.encode writes: sorted keys
    ("grant_id", wire.uint(256)),
    ("guardian", wire.address),
    ("nonce", wire.hex_bytes(32)),
    ("requester", wire.address),
    ("signature", wire.hex_bytes(65)),
    ("timestamp", wire.uint(64)),
)


def request_digest(
    view: ChainView, grant_id: int, guardian: str, requester: str, timestamp: int, nonce: bytes
) -> bytes:
    """EIP-712 digest, domain ``chainml`` on this chain and the Models contract."""
    return KEY_REQUEST.digest(
        view.chain_id, view.models_address, grant_id, guardian, requester, timestamp, nonce
    )


def make_request(
    account: AccountKey, view: ChainView, grant_id: int, guardian: str, now: int
) -> KeyRequest:
    nonce = os.urandom(32)
    guardian = to_checksum_address(guardian)
    digest = request_digest(view, grant_id, guardian, account.address, now, nonce)
    return KeyRequest(grant_id, guardian, account.address, now, nonce, account.sign_digest(digest))


@dataclass(frozen=True)
class KeyRelease:
    guardian: str
    index: int
    sealed_share: bytes  # HPKE to the requester, bound to the request digest
    signature: bytes  # by the guardian's account

    def digest(self, view: ChainView, request: bytes) -> bytes:
        return KEY_RELEASE.digest(
            view.chain_id, view.models_address, request, self.index, keccak256(self.sealed_share)
        )


class Guardian:
    """Releases its share of a grant's key to the grantee, when the chain allows it."""

    def __init__(
        self,
        identity: Identity,
        view: ChainView,
        store: BlobStore,
        *,
        max_age: int = 300,
        replay: ReplayGuard | None = None,
    ) -> None:
        self.identity, self.view, self.store = identity, view, store
        self.max_age = max_age
        self.replay = replay or MemoryReplayGuard()

    def release(self, request: KeyRequest) -> KeyRelease:
        view = self.view
        if request.guardian.lower() != self.identity.address.lower():
            raise NotAGuardian("the request names another guardian")
        digest = request.digest(view)
        try:
            signer = recover_address(digest, request.signature)
        except (CryptoError, ValueError):
            raise ForgedRequest("the request's signature is malformed") from None
        if signer.lower() != request.requester.lower():
            raise ForgedRequest("the request is not signed by the account it names")
        now = view.now()
        if abs(now - request.timestamp) > self.max_age:
            raise StaleRequest(f"request time {request.timestamp}, chain time {now}")
        grant = view.grant(request.grant_id)
        if grant.grantee.lower() != signer.lower():
            raise NotGrantee("the request is signed by someone other than the grantee")
        if grant.revoked:
            raise GrantRevoked(f"grant {request.grant_id} was revoked")
        if now >= grant.expiry:
            raise GrantExpired(f"grant {request.grant_id} expired at {grant.expiry}")
        if not self.replay.remember(signer, request.nonce, request.timestamp):
            raise ReplayedRequest("this request was already answered")
        bundle = _load_bundle(self.store.get(grant.wrapped_key_ref), "threshold")
        if bundle.get("version_id") != grant.version_id:
            raise MalformedBundle("the bundle is for another version")
        entries = bundle.get("shares")
        mine = (
            [
                e
                for e in entries
                if isinstance(e, dict)
                and str(e.get("guardian")).lower() == self.identity.address.lower()
            ]
            if isinstance(entries, list)
            else []
        )
        if len(mine) != 1:
            raise NotAGuardian("this guardian holds no share of that key")
        index = int(mine[0]["index"])
        info = _info(
            b"chainml/guardian-share/v1", view, grant.version_id, self.identity.address, index
        )
        try:
            share = hpke.open_sealed(
                self.identity.x25519, bytes.fromhex(str(mine[0]["sealed"])), info
            )
        except (DecryptionFailed, ValueError):
            raise MalformedBundle("this guardian's share does not open") from None
        sealed = hpke.seal(view.x25519_key(signer), share, b"chainml/key-release/v1" + digest)
        release = KeyRelease(self.identity.address, index, sealed, b"")
        signature = self.identity.account.sign_digest(release.digest(view, digest))
        return KeyRelease(self.identity.address, index, sealed, signature)


def recover_key(
    me: Identity,
    view: ChainView,
    requests: Sequence[KeyRequest],
    releases: Sequence[KeyRelease],
    manifest: Manifest,
) -> bytes:
    """The data key from guardians' releases (``releases[i]`` answers ``requests[i]``).

    A release that is not signed by its guardian or does not open is dropped; from what
    remains, subsets of the threshold are tried until one rebuilds a key that matches the
    artifact's key commitment.  ``NotEnoughShares`` if none does."""
    shares: list[Share] = []
    for request, release in zip(requests, releases, strict=True):
        digest = request.digest(view)
        try:
            if recover_address(release.digest(view, digest), release.signature).lower() != (
                request.guardian.lower()
            ):
                continue
            raw = hpke.open_sealed(
                me.x25519, release.sealed_share, b"chainml/key-release/v1" + digest
            )
            share = Share.decode(raw)
        except (CryptoError, ValueError, InvalidSignature):
            continue
        if share.index == release.index:
            shares.append(share)
    if not shares:
        raise NotEnoughShares("no valid share was released")
    threshold = shares[0].threshold
    for subset in itertools.islice(itertools.combinations(shares, threshold), 1000):
        try:
            key = combine(list(subset))
            manifest.check_key(key)
        except (ShareError, DecryptionFailed):
            continue
        return key
    raise NotEnoughShares(f"{len(shares)} valid shares, none of {threshold} rebuild the key")


def rotate(
    store: BlobStore,
    key: bytes,
    manifest: Manifest,
    new_version: int,
    *,
    fresh_key: Callable[[], bytes] = generate_key,
) -> tuple[bytes, SealedArtifact]:
    """Re-seal an artifact under a new key as ``new_version`` (after a revocation)."""
    new_key = fresh_key()
    sealed = seal_artifact(
        store,
        new_key,
        open_stream(store, key, manifest),
        artifact_id=manifest.artifact_id,
        version=new_version,
        media_type=manifest.media_type,
        chunk_size=manifest.chunk_size,
    )
    return new_key, sealed
