"""The aggregator's side of a SecAgg+ round: ``SecAggServer`` routes messages, checks
every signature, rebuilds seeds and keys from checked shares, and learns only the sum."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chainml.crypto.hazmat import fixedpoint
from chainml.crypto.hazmat.shamir import P256, ShareError, combine
from chainml.crypto.keys import X25519KeyPair
from chainml.training.secagg.errors import ProtocolViolation, TooFewSurvivors
from chainml.training.secagg.messages import (
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
    input_hash,
    shares_root,
)
from chainml.training.secagg.params import SHARE_HASH_BYTES, RoundParams, Stage, _sign_ok
from chainml.training.secagg.transcript import RoundTranscript, SignedInput, unmask


@dataclass
class SecAggResult:
    total: NDArray[np.float64]  # the sum of the survivors' clipped updates
    survivors: tuple[int, ...]
    dropped: tuple[int, ...]  # shared keys, then dropped before their input counted
    transcript: RoundTranscript


@dataclass
class SecAggServer:
    """The aggregator: routes messages, learns only the sum of the survivors' inputs."""

    params: RoundParams
    stage: Stage = Stage.KEYS
    refused: list[str] = field(default_factory=list)
    faulty: set[int] = field(default_factory=set)  # holders whose revealed shares were false
    _adverts: dict[int, KeyAdvert] = field(default_factory=dict)
    _shares: dict[int, SealedShares] = field(default_factory=dict)
    _inputs: dict[int, NDArray[np.uint32]] = field(default_factory=dict)
    _partner_tags: dict[int, Mapping[int, bytes]] = field(default_factory=dict)
    _survivors: tuple[int, ...] = ()
    _signatures: dict[int, bytes] = field(default_factory=dict)
    _unmask: dict[int, UnmaskShares] = field(default_factory=dict)
    _signed_inputs: dict[int, SignedInput] = field(default_factory=dict)

    _STAGE_OF = {
        KeyAdvert: Stage.KEYS,
        SealedShares: Stage.SHARES,
        MaskedInput: Stage.MASKED,
        SurvivorSignature: Stage.CONSISTENCY,
        UnmaskShares: Stage.UNMASK,
    }

    def receive(
        self, message: KeyAdvert | SealedShares | MaskedInput | SurvivorSignature | UnmaskShares
    ) -> None:
        """Take one client message; raises ``ProtocolViolation`` (and keeps going) for a
        message of another stage, from outside the roster, or a second one from a client."""
        p = self.params
        stage = self._STAGE_OF.get(type(message))
        if stage != self.stage:
            raise self._refuse(f"{type(message).__name__} during stage {self.stage}")
        sender = message.sender
        if sender not in p.roster:
            raise self._refuse(f"client {sender} is not on the roster")
        if isinstance(message, KeyAdvert):
            hashes = message.share_hashes
            if (
                set(hashes) != p.neighbours[sender]
                or any(len(v) != 2 * SHARE_HASH_BYTES for v in hashes.values())
                or shares_root(hashes) != message.shares_root
            ):
                raise self._refuse(f"client {sender}'s share hashes are not one per neighbour")
            if not _sign_ok(p, message.digest(p), message.signature, sender):
                raise self._refuse(f"client {sender}'s keys are not signed by its account")
            self._once(self._adverts, sender, message)
        elif isinstance(message, SealedShares):
            if sender not in self._adverts or not set(message.ciphertexts) <= set(self._adverts):
                raise self._refuse(f"client {sender}'s shares name clients without keys")
            self._once(self._shares, sender, message)
        elif isinstance(message, MaskedInput):
            v = message.vector
            if (
                sender not in self._shares
                or v.dtype != np.uint32
                or v.shape != (p.secure_len,)
                or list(message.partners) != sorted(set(message.partners))
                or not set(message.partners) <= p.neighbours[sender]
                or len(message.partners) < p.min_partners
                or set(message.partner_tags) != set(message.partners)
            ):
                raise self._refuse(f"client {sender}'s masked input is malformed or unexpected")
            if bool(message.value_commitment) != p.verifiable:
                raise self._refuse(f"client {sender}'s input lacks or adds a value commitment")
            digest = p.input_digest(message.commitment)
            if not _sign_ok(p, digest, message.signature, sender):
                raise self._refuse(f"client {sender}'s masked input is not signed by it")
            self._once(self._inputs, sender, v)
            self._partner_tags[sender] = message.partner_tags
            self._signed_inputs[sender] = SignedInput(
                input_hash(v), message.partners, message.signature, message.value_commitment
            )
        elif isinstance(message, SurvivorSignature):
            digest = p.survivors_digest(self._survivors)
            if sender not in self._survivors or not _sign_ok(p, digest, message.signature, sender):
                raise self._refuse(f"client {sender}'s signature on the survivors does not verify")
            self._once(self._signatures, sender, message.signature)
        else:
            if sender not in self._signatures:
                raise self._refuse(f"client {sender} did not sign the survivor list")
            self._once(self._unmask, sender, message)

    @property
    def inputs(self) -> Mapping[int, NDArray[np.uint32]]:
        """The masked inputs received (public: each is uniform on its own); the node
        stores them beside the transcript for auditors."""
        return dict(self._inputs)

    def _refuse(self, why: str) -> ProtocolViolation:
        self.refused.append(why)
        return ProtocolViolation(why)

    def _once(self, table: dict[int, Any], sender: int, value: object) -> None:
        if sender in table:
            raise self._refuse(f"a second {self.stage} message from client {sender}")
        table[sender] = value

    def _abort(self, why: str) -> TooFewSurvivors:
        self.stage = Stage.ABORTED
        return TooFewSurvivors(why)

    def _survivor_list(self) -> tuple[int, ...]:
        """The inputs that can be unmasked: a client whose partners fall below the minimum
        on the list gets no seed share from an honest holder, so it is listed as dropped
        (its mask key is rebuilt instead), which may take others below it in turn."""
        p = self.params
        alive = set(self._inputs)
        while True:
            short = {
                i
                for i in alive
                if len(alive.intersection(self._signed_inputs[i].partners)) < p.min_partners
            }
            if not short:
                return tuple(sorted(alive))
            alive -= short

    def advance(
        self,
    ) -> list[NeighbourKeys] | list[ShareBatch] | list[SurvivorList] | list[UnmaskRequest]:
        """Close the current stage with what arrived; the messages for the next one."""
        p = self.params
        if self.stage == Stage.KEYS:
            if len(self._adverts) < p.quorum:
                raise self._abort(f"{len(self._adverts)} clients sent keys, {p.quorum} needed")
            self.stage = Stage.SHARES
            return [
                NeighbourKeys(
                    i,
                    tuple(
                        self._adverts[j].for_recipient(i)
                        for j in sorted(p.neighbours[i] & self._adverts.keys())
                    ),
                )
                for i in sorted(self._adverts)
            ]
        if self.stage == Stage.SHARES:
            if len(self._shares) < p.quorum:
                raise self._abort(f"{len(self._shares)} clients shared, {p.quorum} needed")
            self.stage = Stage.MASKED
            return [
                ShareBatch(
                    j,
                    {
                        i: s.ciphertexts[j]
                        for i, s in sorted(self._shares.items())
                        if j in s.ciphertexts
                    },
                )
                for j in sorted(self._shares)
            ]
        if self.stage == Stage.MASKED:
            self._survivors = self._survivor_list()
            if len(self._survivors) < p.quorum:
                raise self._abort(
                    f"{len(self._survivors)} masked inputs can be unmasked, quorum {p.quorum}"
                )
            self.stage = Stage.CONSISTENCY
            return [SurvivorList(i, self._survivors) for i in self._survivors]
        if self.stage == Stage.CONSISTENCY:
            if len(self._signatures) < p.quorum:
                raise self._abort(f"{len(self._signatures)} signatures, quorum {p.quorum}")
            self.stage = Stage.UNMASK
            return [
                UnmaskRequest(
                    i,
                    self._survivors,
                    {c: sig for c, sig in sorted(self._signatures.items()) if c != i},
                    {
                        v: (self._signed_inputs[v].partners, self._partner_tags[v][i])
                        for v in self._survivors
                        if i in self._partner_tags[v]
                    },
                )
                for i in sorted(self._signatures)
            ]
        raise ProtocolViolation(f"nothing to advance at stage {self.stage}; call finish()")

    def finish(self) -> SecAggResult:
        """Remove every mask and decode the sum.  Each revealed share is checked against
        the hash its dealer signed (a false one is set aside and its holder named in
        ``faulty``), each rebuilt seed against its commitment and each rebuilt key against
        its advertised public key; ``TooFewSurvivors`` if some secret lacks ``threshold``
        true shares.  The result carries the round's public transcript."""
        if self.stage != Stage.UNMASK:
            raise ProtocolViolation(f"finish() at stage {self.stage}")
        p = self.params
        survivors = set(self._survivors)
        seeds = {}
        for j in sorted(survivors):
            seed = self._rebuild(j, "self_mask")
            if p.seed_commitment(j, seed) != self._adverts[j].seed_commitment:
                raise self._abort(f"client {j}'s seed rebuilds wrong: it dealt bad shares")
            seeds[j] = seed
        partners_of_dropped = {
            j for i in survivors for j in self._signed_inputs[i].partners if j not in survivors
        }
        mask_keys = {}
        for j in sorted(partners_of_dropped):
            secret = self._rebuild(j, "mask_key")
            if X25519KeyPair.from_private_bytes(secret).public_bytes != self._adverts[j].pk_s:
                raise self._abort(f"client {j}'s mask key rebuilds wrong: it dealt bad shares")
            mask_keys[j] = secret
        transcript = RoundTranscript(
            adverts={j: self._adverts[j].public() for j in sorted(survivors | partners_of_dropped)},
            inputs={i: self._signed_inputs[i] for i in sorted(survivors)},
            survivors=self._survivors,
            survivor_signatures=dict(self._signatures),
            seeds=seeds,
            mask_keys=mask_keys,
            total=b"",
        )
        total = unmask(p, transcript, self._inputs)
        transcript = dataclasses.replace(transcript, total=total.astype("<u4").tobytes())
        self.stage = Stage.DONE
        dropped = tuple(sorted(set(self._shares) - survivors))
        return SecAggResult(
            fixedpoint.decode(total[: p.vector_len], p.frac_bits),
            self._survivors,
            dropped,
            transcript,
        )

    def _rebuild(self, j: int, kind: str) -> bytes:
        """Dealer ``j``'s seed ("self_mask") or mask key ("mask_key") from the first
        ``threshold`` revealed shares that match the hashes ``j`` signed."""
        p = self.params
        hashed = "seed" if kind == "self_mask" else "key"
        h = SHARE_HASH_BYTES
        half = slice(h, 2 * h) if kind == "self_mask" else slice(0, h)
        shares = []
        for holder, revealed in sorted(self._unmask.items()):
            raw = getattr(revealed, kind).get(j)
            if raw is None:
                continue
            committed = self._adverts[j].share_hashes.get(holder, b"")[half]
            if p.share_hash(j, holder, hashed, raw) != committed:
                self.faulty.add(holder)
                self.refused.append(f"client {holder}'s share of client {j}'s {hashed} is false")
                continue
            try:
                share = decode_share(raw, p.share_index(j, holder), p.threshold)
            except ShareError:  # matches the dealer's hash: the dealer dealt garbage
                raise self._abort(f"client {j} dealt a malformed share") from None
            shares.append(share)
            if len(shares) == p.threshold:
                break
        try:
            return combine(shares, prime=P256)
        except ShareError as exc:
            raise self._abort(
                f"client {j}: {len(shares)} true shares, {p.threshold} needed ({exc})"
            ) from None
