"""The SecAgg+ messages (typed, frozen dataclasses; their wire encoding is
``chainml.training.wire``) and the commitments they carry: share hashes and their root,
the masked input's hash and round commitment, the 33-byte share encoding."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from blake3 import blake3
from numpy.typing import NDArray

from chainml.crypto.hashing import keccak256
from chainml.crypto.hazmat.shamir import P256, Share, ShareError
from chainml.training.secagg.params import RoundParams

MAC_BYTES = 16  # a pair-key MAC: 128 bits (forgery is an online guess, 2^-128 a try)
SHARE_BYTES = 33  # a share on the wire: its y in GF(2^256 + 297), big-endian
SEALED_SHARES_BYTES = 12 + 2 * SHARE_BYTES + 16  # nonce, key and seed share, Poly1305 tag


def encode_share(share: Share) -> bytes:
    """A dealt share as it travels and is hashed: its y, 33 bytes big-endian (its x, the
    threshold and the secret's 32 bytes follow from the round's parameters)."""
    return share.value.to_bytes(SHARE_BYTES, "big")


def decode_share(raw: bytes, index: int, threshold: int) -> Share:
    """The share at ``index`` whose y is ``raw``; ``ShareError`` if it is not 33 bytes of
    a field element."""
    value = int.from_bytes(raw, "big")
    if len(raw) != SHARE_BYTES or value >= P256:
        raise ShareError("a share is 33 bytes below 2^256 + 297")
    return Share(index, threshold, 32, value)


# -- messages --------------------------------------------------------------------------------


def shares_root(share_hashes: Mapping[int, bytes]) -> bytes:
    """What a signed advert commits to for the shares it deals: each holder's id and the
    hashes of its key share and seed share, in holder order."""
    return keccak256(b"".join(j.to_bytes(2, "big") + share_hashes[j] for j in sorted(share_hashes)))


@dataclass(frozen=True)
class KeyAdvert:
    sender: int
    pk_s: bytes
    seed_commitment: bytes  # binds the self-mask seed the client will share
    shares_root: bytes  # binds the shares it deals (see ``shares_root``)
    signature: bytes
    tags: Mapping[int, bytes] = field(default_factory=dict)  # neighbour -> MAC for it
    share_hashes: Mapping[int, bytes] = field(default_factory=dict)  # holder -> 2 hashes

    def digest(self, params: RoundParams) -> bytes:
        return params.keys_digest(self.sender, self.pk_s, self.seed_commitment, self.shares_root)

    def for_recipient(self, j: int) -> KeyAdvert:
        """What the server forwards to neighbour ``j``: ``j``'s MAC and share hashes only."""
        return dataclasses.replace(
            self,
            tags={j: self.tags[j]} if j in self.tags else {},
            share_hashes={j: self.share_hashes[j]} if j in self.share_hashes else {},
        )

    def public(self) -> KeyAdvert:
        """What the transcript keeps: the signed fields, no MACs, no per-holder hashes."""
        return dataclasses.replace(self, tags={}, share_hashes={})


@dataclass(frozen=True)
class NeighbourKeys:
    recipient: int
    adverts: tuple[KeyAdvert, ...]


@dataclass(frozen=True)
class SealedShares:
    sender: int
    ciphertexts: Mapping[int, bytes]  # neighbour -> its pair of shares, encrypted


@dataclass(frozen=True)
class ShareBatch:
    recipient: int
    ciphertexts: Mapping[int, bytes]  # neighbour that sent it -> ciphertext


@dataclass(frozen=True)
class MaskedInput:
    sender: int
    vector: NDArray[np.uint32]
    partners: tuple[int, ...]  # the neighbours whose pairwise masks it added
    signature: bytes  # its round commitment: over the vector's hash and the partners
    value_commitment: bytes = b""  # lattice commitment to the unmasked input, if verifiable
    partner_tags: Mapping[int, bytes] = field(default_factory=dict)  # partner -> MAC on them

    @property
    def commitment(self) -> bytes:
        return input_commitment(input_hash(self.vector), self.partners, self.value_commitment)


def input_hash(vector: NDArray[np.uint32]) -> bytes:
    """BLAKE3 of a masked input's little-endian uint32 bytes (SHA-256 would cost the
    server a third of a second per 100 inputs of a million values)."""
    return blake3(np.ascontiguousarray(vector, dtype="<u4").tobytes()).digest()


def _listed(ids: Sequence[int]) -> bytes:
    return b"".join(i.to_bytes(2, "big") for i in ids)


def input_commitment(
    vector_hash: bytes, partners: Sequence[int], value_commitment: bytes = b""
) -> bytes:
    """What a trainer signs for the round: its masked input, whom it masked with and, in a
    verifiable round, its lattice commitment to the unmasked input."""
    extra = keccak256(value_commitment) if value_commitment else b""
    return keccak256(vector_hash + keccak256(_listed(partners)) + extra)


@dataclass(frozen=True)
class SurvivorList:
    recipient: int
    survivors: tuple[int, ...]


@dataclass(frozen=True)
class SurvivorSignature:
    sender: int
    signature: bytes  # EIP-712 over the list: the transcript's, and every client's, check


@dataclass(frozen=True)
class UnmaskRequest:
    recipient: int
    survivors: tuple[int, ...]
    approvals: Mapping[int, bytes]  # survivor -> its EIP-712 signature on the list
    # survivor -> (whom it masked with, its MAC on that list for the recipient)
    partners: Mapping[int, tuple[tuple[int, ...], bytes]] = field(default_factory=dict)


@dataclass(frozen=True)
class UnmaskShares:
    sender: int
    self_mask: Mapping[int, bytes]  # survivor -> this client's share of its self-mask seed
    mask_key: Mapping[int, bytes]  # dropped client -> this client's share of its mask key
