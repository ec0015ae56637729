"""Pair keys (X25519 between registered keys, once per job), the MACs and share boxes
under them, the MAC bodies, and the masks a client adds (self mask, pair masks)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from chainml.crypto.box import SecretBox
from chainml.crypto.errors import CryptoError
from chainml.crypto.hashing import keccak256
from chainml.crypto.hazmat import prg
from chainml.crypto.keys import X25519KeyPair
from chainml.training.secagg.errors import ForgedKeys
from chainml.training.secagg.messages import MAC_BYTES, KeyAdvert, _listed
from chainml.training.secagg.params import RoundParams


class PairKeys:
    """One client's pair keys: X25519 between its registered key and each peer's registered
    key, agreed once per job and peer and kept across the job's rounds (a trainer keeps
    one of these for its lifetime).  Keys never leave: the pair key, under a label naming
    the job, both ids and both public keys, keys the MACs two clients send each other
    through the server and, one key per direction, the boxes their shares travel in."""

    def __init__(self, own: X25519KeyPair) -> None:
        self._own = own
        self.public = own.public_bytes
        self._secrets: dict[tuple[bytes, int, int, bytes], bytes] = {}
        self._boxes: dict[tuple[bytes, int, int, bytes], SecretBox] = {}

    def _secret(self, params: RoundParams, me: int, j: int) -> bytes:
        peer = params.keys[j]
        slot = (params.job_domain, me, j, peer)
        if slot not in self._secrets:
            try:
                shared = self._own.exchange(peer)
            except CryptoError:
                raise ForgedKeys(
                    f"client {j}'s registered key is not a usable X25519 key"
                ) from None
            lo, hi = sorted(((me, self.public), (j, peer)))
            label = b"".join(
                (
                    params.job_domain,
                    lo[0].to_bytes(2, "big"),
                    lo[1],
                    hi[0].to_bytes(2, "big"),
                    hi[1],
                )
            )
            self._secrets[slot] = prg.derive(shared, b"chainml/secagg/v1/pair|" + label)
        return self._secrets[slot]

    def tag(
        self, params: RoundParams, me: int, kind: bytes, sender: int, recipient: int, body: bytes
    ) -> bytes:
        """The MAC from ``sender`` to ``recipient`` (one of them ``me``) over ``body``, which
        names the round (its context or a digest over it) and what is vouched for: keyed
        BLAKE2b under the pair key."""
        key = self._secret(params, me, recipient if sender == me else sender)
        data = kind + sender.to_bytes(2, "big") + recipient.to_bytes(2, "big") + body
        return hashlib.blake2b(
            data, key=key, digest_size=MAC_BYTES, person=b"chainml/secagg/4"
        ).digest()

    def box(self, params: RoundParams, me: int, sender: int, recipient: int) -> SecretBox:
        """The job's box for shares from ``sender`` to ``recipient`` (one of them ``me``):
        one key per direction, kept across rounds; the round goes in the associated data."""
        peer = recipient if sender == me else sender
        slot = (params.job_domain, sender, recipient, params.keys[peer])
        if slot not in self._boxes:
            direction = b"shares|%d|%d" % (sender, recipient)
            self._boxes[slot] = SecretBox(prg.derive(self._secret(params, me, peer), direction))
        return self._boxes[slot]


def _keys_body(params: RoundParams, advert: KeyAdvert, recipient: int) -> bytes:
    """What an advert's MAC for ``recipient`` covers: the round's context (the pair key is
    the job's, so the context is what ties the MAC to this round and attempt), the mask
    key, the seed commitment, the root over the dealt shares and ``recipient``'s own share
    hashes (the signature covers all but the last through EIP-712, for the transcript)."""
    return (
        params.context
        + advert.pk_s
        + advert.seed_commitment
        + advert.shares_root
        + advert.share_hashes.get(recipient, b"")
    )


def _partners_body(params: RoundParams, partners: Sequence[int]) -> bytes:
    """What a client's MAC on its partner list covers: the round and the list."""
    return params.context + keccak256(_listed(partners))


def _pair_sign(i: int, j: int) -> int:
    return 1 if i < j else -1


def _pair_mask(params: RoundParams, secret: bytes, i: int, j: int) -> NDArray[np.uint32]:
    return prg.mask(secret, params.label("pair", min(i, j), max(i, j)), params.secure_len)


def _self_mask(params: RoundParams, seed: bytes, i: int) -> NDArray[np.uint32]:
    return prg.mask(seed, params.label("self", i), params.secure_len)


def clip_l2(x: NDArray[np.floating], bound: float) -> NDArray[np.float64]:
    """``x`` scaled down to L2 norm ``bound`` if it is longer."""
    v = np.asarray(x, dtype=np.float64)
    norm = float(np.linalg.norm(v))
    return v * (bound / norm) if norm > bound else v
