"""Identities: an EVM account (secp256k1) and an X25519 key, bound by a proof of possession.

Secrets leave these objects only through explicit ``private_bytes()`` calls; ``repr`` and
error messages show public parts only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from coincurve import PrivateKey, PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from eth_utils.exceptions import ValidationError

from chainml.crypto.errors import InvalidKey, InvalidSignature
from chainml.crypto.hashing import keccak256

POP_CONTEXT = b"chainml/registry/pop/v1"
SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_N = SECP256K1_N // 2


def eip191_digest(message32: bytes) -> bytes:
    """The EIP-191 personal-sign digest of a 32-byte message."""
    if len(message32) != 32:
        raise InvalidKey("EIP-191 digests here are over 32-byte hashes")
    return keccak256(b"\x19Ethereum Signed Message:\n32" + message32)


def recover_address(digest: bytes, signature: bytes) -> str:
    """The checksummed address that signed ``digest``; raises ``InvalidSignature``.

    Signatures are 65 bytes r || s || v with v in {27, 28} and s in the lower half of the
    group order (no malleable twins), as chainml's contracts require.
    """
    if len(signature) != 65 or len(digest) != 32:
        raise InvalidSignature("signature must be 65 bytes over a 32-byte digest")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    v = signature[64]
    if v not in (27, 28) or not 0 < s <= _HALF_N or not 0 < r < SECP256K1_N:
        raise InvalidSignature("malformed or malleable signature")
    try:  # libsecp256k1 directly: a third of eth-keys' cost per call
        public = PublicKey.from_signature_and_message(
            signature[:64] + bytes([v - 27]), digest, hasher=None
        )
    except (ValueError, TypeError) as exc:
        raise InvalidSignature("signature does not recover") from exc
    return _checksum(keccak256(public.format(compressed=False)[1:])[12:])


@lru_cache(maxsize=4096)
def _checksum(address: bytes) -> str:
    """EIP-55 form of a 20-byte address (the same few signers recur: cached)."""
    return str(to_checksum_address(address))


class AccountKey:
    """A secp256k1 account key: EVM address, digest signatures, transaction signing."""

    def __init__(self, account: LocalAccount) -> None:
        self._account = account
        self._signer = PrivateKey(bytes(account.key))  # libsecp256k1: a fifth of eth-keys' cost

    @classmethod
    def generate(cls) -> AccountKey:
        return cls(Account.create())

    @classmethod
    def from_bytes(cls, secret: bytes | str) -> AccountKey:
        try:
            return cls(Account.from_key(secret))
        except (ValueError, ValidationError):
            # The library's message may quote the key: drop the cause on purpose.
            raise InvalidKey("not a secp256k1 private key") from None

    @property
    def address(self) -> str:
        return str(self._account.address)

    def private_bytes(self) -> bytes:
        return bytes(self._account.key)

    def sign_digest(self, digest: bytes) -> bytes:
        """Sign a 32-byte digest; returns r || s || v (v in {27, 28}, low s)."""
        if len(digest) != 32:
            raise InvalidKey("digest must be 32 bytes")
        sig = self._signer.sign_recoverable(digest, hasher=None)  # RFC 6979, low s
        return sig[:64] + bytes([sig[64] + 27])

    def sign_transaction(self, tx: Mapping[str, Any]) -> bytes:
        """Sign an EIP-1559 transaction (``chainml.ledger`` sends it)."""
        return bytes(self._account.sign_transaction(dict(tx)).raw_transaction)

    def __repr__(self) -> str:
        return f"AccountKey({self.address})"


class X25519KeyPair:
    """An X25519 key pair for HPKE sealing and key agreement."""

    def __init__(self, private: X25519PrivateKey) -> None:
        self._private = private

    @classmethod
    def generate(cls) -> X25519KeyPair:
        return cls(X25519PrivateKey.generate())

    @classmethod
    def from_private_bytes(cls, secret: bytes) -> X25519KeyPair:
        if len(secret) != 32:
            raise InvalidKey("an X25519 private key is 32 bytes")
        return cls(X25519PrivateKey.from_private_bytes(secret))

    @property
    def public_bytes(self) -> bytes:
        return self._private.public_key().public_bytes_raw()

    def private_bytes(self) -> bytes:
        return self._private.private_bytes_raw()

    def exchange(self, peer_public: bytes) -> bytes:
        """The X25519 shared secret with ``peer_public``; raises ``InvalidKey``."""
        if len(peer_public) != 32:
            raise InvalidKey("an X25519 public key is 32 bytes")
        try:
            return self._private.exchange(X25519PublicKey.from_public_bytes(peer_public))
        except ValueError as exc:  # all-zero shared secret: a low-order point
            raise InvalidKey("peer key is a low-order point") from exc

    def __repr__(self) -> str:
        return f"X25519KeyPair(public={self.public_bytes.hex()})"


def pop_digest(chain_id: int, registry: str, account: str, x25519_public: bytes) -> bytes:
    """The digest an account signs to prove it holds ``x25519_public`` (Registry.register)."""
    if len(x25519_public) != 32:
        raise InvalidKey("an X25519 public key is 32 bytes")
    inner = keccak256(
        POP_CONTEXT
        + chain_id.to_bytes(32, "big")
        + bytes.fromhex(registry.removeprefix("0x"))
        + bytes.fromhex(account.removeprefix("0x"))
        + x25519_public
    )
    return eip191_digest(inner)


@dataclass(frozen=True, repr=False)
class Identity:
    """A party: its account key and its X25519 key."""

    account: AccountKey
    x25519: X25519KeyPair

    @classmethod
    def generate(cls) -> Identity:
        return cls(AccountKey.generate(), X25519KeyPair.generate())

    @property
    def address(self) -> str:
        return self.account.address

    def proof_of_possession(self, chain_id: int, registry: str) -> bytes:
        """The account's signature binding its X25519 key, for ``Registry.register``."""
        digest = pop_digest(chain_id, registry, self.address, self.x25519.public_bytes)
        return self.account.sign_digest(digest)

    def __repr__(self) -> str:
        return f"Identity({self.address})"


def verify_proof_of_possession(
    chain_id: int, registry: str, account: str, x25519_public: bytes, signature: bytes
) -> None:
    """Raise ``InvalidSignature`` unless ``account`` signed ``x25519_public``'s binding."""
    digest = pop_digest(chain_id, registry, account, x25519_public)
    if recover_address(digest, signature) != to_checksum_address(account):
        raise InvalidSignature("proof of possession signed by another account")
