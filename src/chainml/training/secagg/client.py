"""The trainer's side of a SecAgg+ round: ``SecAggClient``, a state machine that takes
the server's messages and returns its own, with the checks of
``docs/secagg-security.md`` before each."""

from __future__ import annotations

import dataclasses
import hmac
import os

import numpy as np
from numpy.typing import NDArray

from chainml.crypto.errors import CryptoError, DecryptionFailed
from chainml.crypto.hazmat import fixedpoint, lattice
from chainml.crypto.hazmat.shamir import P256, Share, ShareError, split
from chainml.crypto.keys import Identity, X25519KeyPair
from chainml.training.secagg.errors import (
    ForgedKeys,
    InconsistentView,
    ProtocolViolation,
    SecAggError,
    TooFewSurvivors,
)
from chainml.training.secagg.messages import (
    SHARE_BYTES,
    KeyAdvert,
    MaskedInput,
    NeighbourKeys,
    SealedShares,
    ShareBatch,
    SurvivorList,
    SurvivorSignature,
    UnmaskRequest,
    UnmaskShares,
    decode_share,
    encode_share,
    input_commitment,
    input_hash,
    shares_root,
)
from chainml.training.secagg.pairkeys import (
    PairKeys,
    _keys_body,
    _pair_mask,
    _pair_sign,
    _partners_body,
    _self_mask,
    clip_l2,
)
from chainml.training.secagg.params import SHARE_HASH_BYTES, RoundParams, Stage, _sign_ok

# -- the client ------------------------------------------------------------------------------


class SecAggClient:
    """One trainer's side of one round.  What it checks before each message it sends is
    listed in ``docs/secagg-security.md``; the two rules that keep a deviating server from
    isolating it are in ``_mask`` (at least ``min_partners`` partners, all of them named in
    its signed commitment) and ``_reveals_seed`` (a neighbour's self-mask seed share goes
    only to a list on which that neighbour kept ``min_partners`` partners, this client
    among them)."""

    def __init__(
        self,
        params: RoundParams,
        client_id: int,
        identity: Identity,
        update: NDArray[np.floating],
        *,
        pairs: PairKeys | None = None,
        rng: np.random.Generator | None = None,
    ) -> None:
        """``pairs``: the client's pair keys, kept across the job's rounds by its owner (a
        fresh set agrees them anew)."""
        if client_id not in params.roster:
            raise ProtocolViolation(f"client {client_id} is not on the roster")
        if identity.address.lower() != params.roster[client_id].lower():
            raise ProtocolViolation("the account is not the one the roster names")
        pairs = pairs or PairKeys(identity.x25519)
        if pairs.public != params.keys[client_id]:
            raise ProtocolViolation("the X25519 key is not the one the roster names")
        if np.shape(update) != (params.vector_len,):
            raise SecAggError(
                f"the update has {np.size(update)} values, the round {params.vector_len}"
            )
        self.params, self.id, self.account, self._pairs = params, client_id, identity.account, pairs
        self._update = clip_l2(update, params.clip)
        self._rng = rng or np.random.default_rng(int.from_bytes(os.urandom(16), "big"))
        self._s = X25519KeyPair.generate()
        self._seed = os.urandom(32)
        self._stage = Stage.KEYS
        self._dealt: dict[int, tuple[Share, Share]] = {}  # neighbour -> (key, seed) share
        self._peers: dict[int, KeyAdvert] = {}
        self._secrets: dict[int, bytes] = {}  # neighbour -> X25519 mask secret with it
        self._held: dict[int, tuple[Share, Share]] = {}  # neighbour -> (key share, seed share)
        self._signed: tuple[int, ...] | None = None
        self.revealed: dict[int, str] = {}  # neighbour -> "self_mask" | "mask_key"

    def _expect(self, stage: Stage, recipient: int) -> None:
        if self._stage != stage:
            raise ProtocolViolation(f"client {self.id} is at stage {self._stage}, not {stage}")
        if recipient != self.id:
            raise ProtocolViolation(f"a message for client {recipient} reached client {self.id}")

    def advertise(self) -> KeyAdvert:
        """Stage 0.  Checks: none (it sends only fresh keys and commitments).  Deals the
        shares now, so the advert commits to each one."""
        if self._stage != Stage.KEYS:
            raise ProtocolViolation("keys are advertised once, first")
        p, pk_s = self.params, self._s.public_bytes
        mine = sorted(p.neighbours[self.id])
        key_shares = split(self._s.private_bytes(), p.threshold, len(mine), prime=P256)
        seed_shares = split(self._seed, p.threshold, len(mine), prime=P256)
        hashes = {}
        for j, ks, ss in zip(mine, key_shares, seed_shares, strict=True):
            self._dealt[j] = (ks, ss)
            hashes[j] = p.share_hash(self.id, j, "key", encode_share(ks)) + p.share_hash(
                self.id, j, "seed", encode_share(ss)
            )
        committed = p.seed_commitment(self.id, self._seed)
        root = shares_root(hashes)
        unsigned = KeyAdvert(self.id, pk_s, committed, root, b"", share_hashes=hashes)
        tags = {j: self._tag(b"keys", self.id, j, _keys_body(p, unsigned, j)) for j in mine}
        self._stage = Stage.NEIGHBOURS
        signature = self.account.sign_digest(p.keys_digest(self.id, pk_s, committed, root))
        return dataclasses.replace(unsigned, signature=signature, tags=tags)

    def _tag(self, kind: bytes, sender: int, recipient: int, body: bytes) -> bytes:
        return self._pairs.tag(self.params, self.id, kind, sender, recipient, body)

    def handle(
        self, message: NeighbourKeys | ShareBatch | SurvivorList | UnmaskRequest
    ) -> SealedShares | MaskedInput | SurvivorSignature | UnmaskShares:
        if isinstance(message, NeighbourKeys):
            return self._share(message)
        if isinstance(message, ShareBatch):
            return self._mask(message)
        if isinstance(message, SurvivorList):
            return self._sign(message)
        if isinstance(message, UnmaskRequest):
            return self._unmask(message)
        raise ProtocolViolation(f"a client does not take {type(message).__name__}")

    def _share(self, message: NeighbourKeys) -> SealedShares:
        """Stage 1.  Checks: each advert is a neighbour's, once, and carries that
        neighbour's MAC under the pair key over its keys, its share root and this client's
        share hashes; at least ``min_partners`` of them, or masking could not reach the
        minimum (abort: nothing secret has left yet)."""
        self._expect(Stage.NEIGHBOURS, message.recipient)
        mine = self.params.neighbours[self.id]
        for advert in message.adverts:
            if advert.sender not in mine or advert.sender in self._peers:
                raise ProtocolViolation(
                    f"keys of client {advert.sender}: not a neighbour, or twice"
                )
            if (
                len(advert.pk_s) != 32
                or len(advert.seed_commitment) != 32
                or len(advert.shares_root) != 32
                or len(advert.share_hashes.get(self.id, b"")) != 2 * SHARE_HASH_BYTES
            ):
                raise ForgedKeys(f"client {advert.sender}'s keys are malformed")
            expected = self._tag(
                b"keys", advert.sender, self.id, _keys_body(self.params, advert, self.id)
            )
            if not hmac.compare_digest(advert.tags.get(self.id, b""), expected):
                raise ForgedKeys(f"client {advert.sender}'s keys do not authenticate")
            try:  # agreed now: a low-order key is refused before any share leaves
                self._secrets[advert.sender] = self._s.exchange(advert.pk_s)
            except CryptoError:
                raise ForgedKeys(f"client {advert.sender}'s mask key is not usable") from None
            self._peers[advert.sender] = advert
        if len(self._peers) < self.params.min_partners:
            raise TooFewSurvivors(
                f"{len(self._peers)} neighbours, {self.params.min_partners} needed"
            )
        out = {}
        for j in sorted(self._peers):
            ks, ss = self._dealt[j]
            box = self._pairs.box(self.params, self.id, self.id, j)
            plain = encode_share(ks) + encode_share(ss)  # the pair is in the associated data
            out[j] = box.encrypt(plain, self.params.label("share", self.id, j))
        self._stage = Stage.SHARES
        return SealedShares(self.id, out)

    def _mask(self, message: ShareBatch) -> MaskedInput:
        """Stage 2.  Checks: each ciphertext is from a neighbour whose keys it took, once,
        opens under that direction's key for this round and pair, and holds the two shares
        whose hashes that neighbour's advert committed to.  It masks with every such
        neighbour and no other, and only if there are at least ``min_partners`` of them
        (the server decides whose shares arrive; the minimum is what keeps it from picking
        a victim's partners)."""
        self._expect(Stage.SHARES, message.recipient)
        p = self.params
        for j, ciphertext in message.ciphertexts.items():
            if j not in self._peers or j in self._held:
                raise ProtocolViolation(f"shares from client {j}: not a neighbour, or twice")
            box = self._pairs.box(p, self.id, j, self.id)
            try:
                plain = box.decrypt(ciphertext, p.label("share", j, self.id))
            except DecryptionFailed:
                raise ProtocolViolation(f"shares from client {j} do not authenticate") from None
            if len(plain) != 2 * SHARE_BYTES:
                raise ProtocolViolation(f"shares from client {j} are not two shares")
            key_raw, seed_raw = plain[:SHARE_BYTES], plain[SHARE_BYTES:]
            committed = self._peers[j].share_hashes[self.id]
            if (
                p.share_hash(j, self.id, "key", key_raw) != committed[:SHARE_HASH_BYTES]
                or p.share_hash(j, self.id, "seed", seed_raw) != committed[SHARE_HASH_BYTES:]
            ):
                raise ProtocolViolation(f"shares from client {j} are not the ones it committed to")
            x = p.share_index(j, self.id)
            try:
                self._held[j] = (
                    decode_share(key_raw, x, p.threshold),
                    decode_share(seed_raw, x, p.threshold),
                )
            except ShareError:
                raise ProtocolViolation(f"shares from client {j} are malformed") from None
        if len(self._held) < p.min_partners:
            raise TooFewSurvivors(
                f"shares from {len(self._held)} neighbours, {p.min_partners} needed"
            )
        y = fixedpoint.encode(self._update, p.frac_bits, self._rng)
        value_commitment = b""
        if p.verifiable:  # commit to the unmasked input; its randomness is summed too
            r = lattice.CommitmentKey.randomness(self._rng)
            value_commitment = p.commitment_key.commit(y.view(np.int32), r).to_bytes()
            y = np.concatenate([y, r.astype(np.uint32)])
        y += _self_mask(p, self._seed, self.id)
        for j in self._held:
            pairwise = _pair_mask(p, self._secrets[j], self.id, j)
            if _pair_sign(self.id, j) > 0:
                y += pairwise
            else:
                y -= pairwise
        self._stage = Stage.MASKED
        partners = tuple(sorted(self._held))
        digest = p.input_digest(input_commitment(input_hash(y), partners, value_commitment))
        body = _partners_body(p, partners)
        tags = {j: self._tag(b"partners", self.id, j, body) for j in partners}
        return MaskedInput(
            self.id, y, partners, self.account.sign_digest(digest), value_commitment, tags
        )

    def _sign(self, message: SurvivorList) -> SurvivorSignature:
        """Stage 3.  Checks: a first list this round, a sorted subset of the roster that
        names this client, at least the quorum long.  It approves one list, ever."""
        if self._signed is not None:
            raise ProtocolViolation("this client already signed a survivor list this round")
        self._expect(Stage.MASKED, message.recipient)
        survivors = message.survivors
        if list(survivors) != sorted(set(survivors)) or not set(survivors) <= set(
            self.params.roster
        ):
            raise InconsistentView("the survivor list is not a sorted subset of the roster")
        if self.id not in survivors:
            raise InconsistentView("the list leaves out this client, which sent its input")
        if len(survivors) < self.params.quorum:
            raise TooFewSurvivors(f"{len(survivors)} survivors, quorum {self.params.quorum}")
        self._signed = survivors
        self._stage = Stage.SIGNED
        digest = self.params.survivors_digest(survivors)
        return SurvivorSignature(self.id, self.account.sign_digest(digest))

    def _reveals_seed(
        self, j: int, survived: set[int], entry: tuple[tuple[int, ...], bytes] | None
    ) -> bool:
        """Whether this client gives the server its share of survivor ``j``'s self-mask
        seed: only if ``j``'s own MAC vouches for the partner list it masked with, this
        client is on it and at least ``min_partners`` of it survived.  Then every honest
        partner on that list still masks ``j``'s input from the server."""
        if entry is None:
            return False
        partners, tag = entry
        if (
            list(partners) != sorted(set(partners))
            or not set(partners) <= self.params.neighbours[j]
        ):
            raise InconsistentView(f"client {j}'s partner list is malformed")
        expected = self._tag(b"partners", j, self.id, _partners_body(self.params, partners))
        if not hmac.compare_digest(tag, expected):
            raise InconsistentView(f"client {j}'s partner list does not authenticate")
        return (
            self.id in partners and len(survived.intersection(partners)) >= self.params.min_partners
        )

    def _unmask(self, message: UnmaskRequest) -> UnmaskShares:
        """Stage 4.  Checks: the list is the one it approved and a quorum of its survivors
        approved it (their signatures, by their registered accounts); then, per neighbour
        whose shares it holds, at most one share: the mask key's if the neighbour is off the
        list, the seed's if ``_reveals_seed``."""
        self._expect(Stage.SIGNED, message.recipient)
        if message.survivors != self._signed:
            raise InconsistentView("asked to unmask for a list other than the one signed")
        digest = self.params.survivors_digest(message.survivors)
        valid = 1  # its own approval; then a signature from each other approver, to the quorum
        listed = set(message.survivors)
        for c, signature in sorted(message.approvals.items()):
            if valid >= self.params.quorum:
                break
            if c != self.id and c in listed:
                valid += _sign_ok(self.params, digest, signature, c)
        if valid < self.params.quorum:
            raise InconsistentView(
                f"{valid} valid approvals of the list, quorum {self.params.quorum}"
            )
        survived = set(message.survivors)
        self_mask, mask_key = {}, {}
        for j, (key_share, seed_share) in sorted(self._held.items()):
            if j in survived:
                if not self._reveals_seed(j, survived, message.partners.get(j)):
                    continue
                kind = "self_mask"
            else:
                kind = "mask_key"
            if self.revealed.get(j, kind) != kind:  # unreachable by construction; kept as a guard
                raise InconsistentView(f"client {j}: would reveal both shares")
            self.revealed[j] = kind
            if kind == "self_mask":
                self_mask[j] = encode_share(seed_share)
            else:
                mask_key[j] = encode_share(key_share)
        self._stage = Stage.DONE
        return UnmaskShares(self.id, self_mask, mask_key)
