"""SecAgg+ (Bell et al. 2020) hardened against an aggregator that deviates.

A server that controls every delivery and colludes with fewer than ``threshold`` clients
learns only sums over sets of at least ``RoundParams.smallest_sum`` honest inputs (on the
complete graphs of rosters up to 30, at most one such set): never a single input.  The
argument, the adversary and what each client checks before each message are in
``docs/secagg-security.md``; the formats in ``docs/protocol/secagg.md``.  Client and
server are pure state machines: messages in, messages out; the caller (the node, or
``run_in_memory`` in tests and benchmarks) moves them and decides when a stage's time is
up.

The parameters (degree, threshold, ``min_partners``, graph seed) follow from the roster
size and public data by one rule (``secure_parameters``, ``RoundParams.derive``) that the
aggregator, every trainer and every auditor apply; all of them enter the round's context,
which binds every MAC, box, mask label and key signature to (chain, Jobs contract, job,
round, attempt, roster).

0. keys: each client makes a fresh X25519 pair for mask agreement and a fresh self-mask
   seed, deals Shamir shares (threshold ``t``) of both among its neighbours at once, and
   signs (EIP-712, for the public transcript) its public key, a commitment to the seed and
   a root over the hashes of the dealt shares.  For each neighbour it adds a MAC under
   their pair key (below) that also covers that neighbour's share hashes.
1. shares: a client that got at least ``min_partners`` authentic adverts sends each of
   those neighbours its pair of shares (ChaCha20-Poly1305 under a key per direction from
   the pair key, a random nonce per message, the round and both ids in the associated
   data).
2. masked input: ``y_i = encode(x_i) + PRG(b_i) + sum_j ±PRG(s_ij)`` over Z_2^32, the sum
   over every neighbour whose shares opened and matched their hashes, and only if there
   are at least ``min_partners`` of them; the partner list is signed in the round
   commitment and MAC'd to each partner.  Masks are ChaCha20 keystreams from 256-bit keys
   derived with HKDF under a label naming the round, the use and the pair.
3. consistency: the server sends the survivor list; each client approves it once with an
   EIP-712 signature (one signature: the transcript keeps it, and every other client
   checks it in stage 4).  A client answers stage 4 only for the list it approved,
   carrying the signed approvals of a quorum of
   ``floor((n + t - 1) / 2) + 1`` clients of the roster: two different lists cannot both
   reach a quorum without an honest client approving both, which honest clients never do.
4. unmasking: for each neighbour the client reveals at most one share: of its mask key if
   the approved list says it dropped; of its self-mask seed if it survived, its own MAC
   vouches for a partner list naming this client, and at least ``min_partners`` of that
   list survived.  So a seed is revealed only while enough honest pair masks still cover
   the input — what defeats isolating a client behind partners listed as dropped.

Pair keys (``PairKeys``) come from X25519 between the two clients' registered keys (the
Registry's, listed in the round's parameters), agreed once per job and kept across its
rounds.  They are never revealed — unlike the mask keys, which the server rebuilds for
a client that drops — so they can seal shares; and a MAC under one is a check that costs
a microsecond, where a signature check costs thirty to sixty, so the ``k`` checks of
adverts and partner lists a client makes each round cost next to nothing.  Approvals
are the exception: each client needs ``q - 1`` of them from all over the roster, and a
MAC for every other survivor would make each client send O(n) bytes; one signature each,
checked ``q - 1`` times, costs a few milliseconds instead.  MACs are 128 bits: a server
that forges one has a single online guess (the check fails, the client stops), so
2^-128 a try.

The graph is complete up to ``COMPLETE_UP_TO`` clients, and above that a Harary graph of
degree ``2 ceil(log2 n)`` over a permutation of the roster drawn from the public graph
seed.  Inputs are clipped to the job's L2 bound and encoded with stochastic rounding
(``chainml.crypto.fixedpoint``), so the masked vector is as many bytes as the float32
update.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import itertools
import json
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from blake3 import blake3
from eth_abi.abi import encode as abi_encode
from numpy.typing import NDArray

from chainml.crypto import fixedpoint, lattice, prg
from chainml.crypto.box import SecretBox
from chainml.crypto.errors import CryptoError, DecryptionFailed
from chainml.crypto.hashing import keccak256, tagged_hash
from chainml.crypto.keys import Identity, X25519KeyPair, recover_address
from chainml.crypto.shamir import P256, Share, ShareError, combine, split
from chainml.crypto.signing import domain_separator, round_commitment_digest, words
from chainml.training.errors import TrainingError

KEYS_TYPEHASH = keccak256(
    b"SecAggKeys(uint256 jobId,uint256 round,bytes32 context,uint256 client,bytes32 maskKey,"
    b"bytes32 seedCommitment,bytes32 shares)"
)
SURVIVORS_TYPEHASH = keccak256(b"SecAggSurvivors(uint256 jobId,uint256 round,bytes32 survivors)")
TRANSCRIPT_FORMAT = "chainml-secagg-transcript/3"  # /3: attempt, share hashes, partner rule
MAC_BYTES = 16  # a pair-key MAC: 128 bits (forgery is an online guess, 2^-128 a try)
SHARE_HASH_BYTES = 16  # each committed share hash: a shifted share is a 128-bit preimage
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


class SecAggError(TrainingError):
    """Base class of secure aggregation failures."""


class ProtocolViolation(SecAggError):
    """A message out of place: wrong stage, wrong recipient, unknown sender, a replay."""


class ForgedKeys(SecAggError):
    """A client's public keys are not signed by its registered account, do not carry its
    MAC under the pair key, or its registered key is unusable."""


class InconsistentView(SecAggError):
    """The server's survivor list is not the one this client approved, lacks a quorum of
    approvals, or would make the client reveal both shares of one neighbour."""


class TooFewSurvivors(SecAggError):
    """Fewer clients remain than the protocol needs: the round aborts, nothing is learnt."""


# -- parameters ------------------------------------------------------------------------------

COMPLETE_UP_TO = 30  # rosters up to this size mask over the complete graph
DROPOUT = 0.3  # the share of a complete-graph roster that may drop out, in any stages


def quorum_for(n: int, threshold: int) -> int:
    """Approvals a survivor list needs: two lists with this many approvals share at least
    ``threshold`` approvers, so at least one honest one while at most ``threshold - 1``
    clients are corrupt, and an honest client approves one list a round."""
    return (n + threshold - 1) // 2 + 1


def sparse_threshold(degree: int) -> int:
    """The threshold of a sparse graph of ``degree``: ``degree // 4 + 1``, at least 2."""
    return max(2, degree // 4 + 1)


def min_partners_for(n: int, degree: int, threshold: int) -> int:
    """The fewest partners a client masks with: on a complete graph ``quorum - 1`` (the
    single-sum bound, ``2 m + 2 > n + t - 1``), on a sparse one ``degree // 2 + 1``;
    never below the threshold."""
    if degree >= n - 1:
        return max(threshold, min(quorum_for(n, threshold) - 1, n - 1))
    return max(threshold, degree // 2 + 1)


def secure_parameters(n: int) -> tuple[int, int, int]:
    """(degree, threshold, min_partners) for a roster of ``n``: the rule of
    ``docs/secagg-security.md``, which every trainer and auditor recomputes.

    Up to ``COMPLETE_UP_TO`` clients the graph is complete; the threshold ``t`` is the
    largest that still lets ``DROPOUT`` of the roster vanish (``n - quorum >= floor(DROPOUT
    n)``, at least 2), and ``min_partners = quorum - 1``: then the server, with up to
    ``t - 1`` clients, learns at most one sum, of at least ``quorum - t + 1`` honest inputs
    (exactly what a server that declares the others dropped learns anyway).  Above it the
    graph is a Harary graph of degree ``2 ceil(log2 n)``, ``t = degree // 4 + 1`` and
    ``min_partners = degree // 2 + 1``: no sum of fewer than ``min_partners - t + 2``
    honest inputs is learnt, and in particular no single one."""
    if n < 3:
        raise ValueError("secure aggregation needs at least 3 clients")
    if n <= COMPLETE_UP_TO:
        wanted = math.floor(DROPOUT * n)
        t = 2
        while t + 1 <= n - 1 and n - quorum_for(n, t + 1) >= wanted:
            t += 1
        return n - 1, t, min_partners_for(n, n - 1, t)
    degree = min(2 * math.ceil(math.log2(n)), n - 1)
    t = sparse_threshold(degree)
    return degree, t, min_partners_for(n, degree, t)


def graph_seed_for(chain_id: int, jobs: str, job_id: int, round: int, attempt: int) -> bytes:
    """The public seed that draws a sparse graph: fixed by the chain, the job and the
    attempt, so neither the aggregator nor a trainer picks it."""
    return tagged_hash(
        b"chainml/secagg/v3/graph",
        abi_encode(
            ["uint256", "address", "uint256", "uint256", "uint256"],
            [chain_id, jobs, job_id, round, attempt],
        ),
    )


def shuffle(seed: bytes, n: int) -> list[int]:
    """A permutation of ``range(n)`` from a 32-byte seed: Fisher-Yates from the last
    position down, each index drawn from the next little-endian uint32 of the ChaCha20
    stream ``prg.mask(seed, b"chainml/secagg/v3/shuffle|" + block)`` (blocks of 256 words,
    numbered from 0 as ASCII decimal), rejecting a word ``w >= 2^32 - 2^32 mod (i + 1)``
    and otherwise taking ``w mod (i + 1)``.  Specified so that any language can redo it."""

    def words() -> Iterator[int]:
        for block in itertools.count():
            yield from prg.mask(seed, b"chainml/secagg/v3/shuffle|%d" % block, 256).tolist()

    out, draw = list(range(n)), words()
    for i in range(n - 1, 0, -1):
        bound = i + 1
        limit = 2**32 - 2**32 % bound
        w = next(draw)
        while w >= limit:
            w = next(draw)
        j = w % bound
        out[i], out[j] = out[j], out[i]
    return out


@dataclass(frozen=True)
class RoundParams:
    chain_id: int
    jobs: str  # the Jobs contract: the EIP-712 domain of every signature
    job_id: int
    round: int
    roster: Mapping[int, str]  # client id -> registered account
    vector_len: int
    degree: int
    threshold: int
    clip: float  # L2 bound on each update
    graph_seed: bytes  # public randomness that draws the graph
    verifiable: bool = False  # each input also carries a lattice commitment (see verify_sum)
    keys: Mapping[int, bytes] = field(default_factory=dict)  # registered X25519 public keys
    min_partners: int = 0  # a client masks with at least this many neighbours (0: the rule's)
    attempt: int = 0  # the aggregator's attempt at this round (in the context: no replays)

    def __post_init__(self) -> None:
        n = len(self.roster)
        if n < 3 or any(not 1 <= i <= 65535 for i in self.roster):
            raise ValueError("need at least 3 clients with ids from 1 to 65535")
        if set(self.keys) != set(self.roster) or any(len(k) != 32 for k in self.keys.values()):
            raise ValueError("every client on the roster needs its registered X25519 key")
        if not 2 <= self.degree or (self.degree % 2 and self.degree < n - 1):
            raise ValueError("the degree is even (or n - 1 for a complete graph)")
        if not 2 <= self.threshold <= min(self.degree, n - 1):
            raise ValueError("need 2 <= threshold <= degree")
        if self.vector_len < 1 or self.clip <= 0 or len(self.graph_seed) != 32:
            raise ValueError("bad vector length, clip bound or graph seed")
        if not self.min_partners:
            object.__setattr__(
                self, "min_partners", min_partners_for(n, self.degree, self.threshold)
            )
        if not self.threshold <= self.min_partners <= min(self.degree, n - 1):
            raise ValueError("need threshold <= min_partners <= degree")
        if self.attempt < 0:
            raise ValueError("the attempt is a non-negative integer")

    @classmethod
    def derive(
        cls,
        roster: Mapping[int, str],
        keys: Mapping[int, bytes],
        vector_len: int,
        *,
        chain_id: int,
        jobs: str,
        job_id: int,
        round: int,
        attempt: int,
        clip: float,
        verifiable: bool = False,
    ) -> RoundParams:
        """The round's parameters as the documented rule fixes them from public data alone
        (the chain, the job, its roster and the attempt): what a trainer and an auditor
        recompute instead of taking the aggregator's word."""
        degree, threshold, min_partners = secure_parameters(len(roster))
        return cls.create(
            roster,
            keys,
            vector_len,
            chain_id=chain_id,
            jobs=jobs,
            job_id=job_id,
            round=round,
            clip=clip,
            graph_seed=graph_seed_for(chain_id, jobs, job_id, round, attempt),
            degree=degree,
            threshold=threshold,
            min_partners=min_partners,
            verifiable=verifiable,
            attempt=attempt,
        )

    @classmethod
    def create(
        cls,
        roster: Mapping[int, str],
        keys: Mapping[int, bytes],
        vector_len: int,
        *,
        chain_id: int,
        jobs: str,
        job_id: int,
        round: int,
        clip: float,
        graph_seed: bytes,
        degree: int | None = None,
        threshold: int | None = None,
        min_partners: int | None = None,
        verifiable: bool = False,
        attempt: int = 0,
    ) -> RoundParams:
        """Parameters with the rule's defaults, any of which a test or benchmark may set;
        a node uses ``derive``."""
        rule = secure_parameters(len(roster))
        degree = rule[0] if degree is None else degree
        if threshold is None:
            threshold = rule[1] if degree == rule[0] else sparse_threshold(degree)
        return cls(
            chain_id,
            jobs,
            job_id,
            round,
            dict(roster),
            vector_len,
            degree,
            threshold,
            clip,
            graph_seed,
            verifiable,
            dict(keys),
            min_partners or 0,
            attempt,
        )

    @cached_property
    def context(self) -> bytes:
        roster = b"".join(
            i.to_bytes(2, "big") + bytes.fromhex(a[2:]) + self.keys[i]
            for i, a in sorted(self.roster.items())
        )
        return tagged_hash(
            b"chainml/secagg/v3",
            abi_encode(
                [
                    "uint256",
                    "address",
                    "uint256",
                    "uint256",
                    "uint256",
                    "bytes32",
                    "uint256",
                    "uint256",
                    "uint256",
                    "uint256",
                    "bytes32",
                    "bool",
                ],
                [
                    self.chain_id,
                    self.jobs,
                    self.job_id,
                    self.round,
                    self.attempt,
                    keccak256(roster),
                    self.vector_len,
                    self.degree,
                    self.threshold,
                    self.min_partners,
                    self.graph_seed,
                    self.verifiable,
                ],
            ),
        )

    @property
    def smallest_sum(self) -> int:
        """The fewest honest inputs in any sum a server colluding with up to
        ``threshold - 1`` clients can learn (``docs/secagg-security.md``)."""
        return self.min_partners - self.threshold + 2

    @property
    def secure_len(self) -> int:
        """What is summed securely: the update, and the commitment randomness if any."""
        return self.vector_len + (lattice.RANDOMNESS_LEN if self.verifiable else 0)

    @cached_property
    def commitment_key(self) -> lattice.CommitmentKey:
        """Public matrices for the job (not the round: expanded once per job)."""
        return lattice.commitment_key(self.job_domain, self.vector_len)

    @cached_property
    def frac_bits(self) -> int:
        return fixedpoint.fraction_bits(len(self.roster), self.clip)

    @cached_property
    def quorum(self) -> int:
        return (len(self.roster) + self.threshold - 1) // 2 + 1

    @cached_property
    def neighbours(self) -> dict[int, frozenset[int]]:
        ids = sorted(self.roster)
        n = len(ids)
        if self.degree >= n - 1:
            return {i: frozenset(ids) - {i} for i in ids}
        ring = [ids[p] for p in shuffle(tagged_hash(b"chainml/secagg/v3/ring", self.context), n)]
        half = self.degree // 2
        return {
            ring[p]: frozenset(ring[(p + d) % n] for d in range(-half, half + 1) if d)
            for p in range(n)
        }

    def _eip712(self, struct: bytes) -> bytes:
        return keccak256(b"\x19\x01" + domain_separator(self.chain_id, self.jobs) + struct)

    @cached_property
    def job_domain(self) -> bytes:
        """What names the job across its rounds: pair keys are agreed for it once."""
        return abi_encode(
            ["uint256", "address", "uint256"], [self.chain_id, self.jobs, self.job_id]
        )

    def keys_digest(
        self, client: int, pk_s: bytes, seed_commitment: bytes, shares_root: bytes
    ) -> bytes:
        return self._eip712(
            keccak256(
                words(
                    KEYS_TYPEHASH,
                    self.job_id,
                    self.round,
                    self.context,
                    client,
                    pk_s,
                    seed_commitment,
                    shares_root,
                )
            )
        )

    def share_index(self, dealer: int, holder: int) -> int:
        """The x-coordinate of ``holder``'s shares of ``dealer``'s secrets: its place among
        the dealer's neighbours, from 1."""
        return sorted(self.neighbours[dealer]).index(holder) + 1

    def share_hash(self, dealer: int, holder: int, kind: str, share: bytes) -> bytes:
        """What a dealer commits to for each share it deals (``kind``: "key" or "seed"), so
        that the server can tell a holder's true share from a shifted one."""
        return tagged_hash(b"chainml/secagg/v4/share", self.label(kind, dealer, holder) + share)[
            :SHARE_HASH_BYTES
        ]

    def input_digest(self, commitment: bytes) -> bytes:
        """A trainer's round commitment, as the Jobs contract checks it (so that signing
        two different ones in a round is slashable evidence)."""
        return round_commitment_digest(
            self.chain_id, self.jobs, self.job_id, self.round, commitment
        )

    def seed_commitment(self, client: int, seed: bytes) -> bytes:
        return tagged_hash(b"chainml/secagg/seed", self.label("seed", client) + seed)

    def survivors_digest(self, survivors: Sequence[int]) -> bytes:
        key = tuple(survivors)
        if key not in self._digests:  # the server checks each approval against it
            listed = keccak256(self.context + b"".join(i.to_bytes(2, "big") for i in key))
            self._digests[key] = self._eip712(
                keccak256(words(SURVIVORS_TYPEHASH, self.job_id, self.round, listed))
            )
        return self._digests[key]

    @cached_property
    def _digests(self) -> dict[tuple[int, ...], bytes]:
        return {}

    def label(self, *parts: object) -> bytes:
        return self.context + b"|" + "|".join(map(str, parts)).encode()


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


def _sign_ok(params: RoundParams, digest: bytes, signature: bytes, client: int) -> bool:
    try:
        return recover_address(digest, signature).lower() == params.roster[client].lower()
    except (CryptoError, KeyError):
        return False


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
        self._stage = "keys"
        self._dealt: dict[int, tuple[Share, Share]] = {}  # neighbour -> (key, seed) share
        self._peers: dict[int, KeyAdvert] = {}
        self._secrets: dict[int, bytes] = {}  # neighbour -> X25519 mask secret with it
        self._held: dict[int, tuple[Share, Share]] = {}  # neighbour -> (key share, seed share)
        self._signed: tuple[int, ...] | None = None
        self.revealed: dict[int, str] = {}  # neighbour -> "self_mask" | "mask_key"

    def _expect(self, stage: str, recipient: int) -> None:
        if self._stage != stage:
            raise ProtocolViolation(f"client {self.id} is at stage {self._stage}, not {stage}")
        if recipient != self.id:
            raise ProtocolViolation(f"a message for client {recipient} reached client {self.id}")

    def advertise(self) -> KeyAdvert:
        """Stage 0.  Checks: none (it sends only fresh keys and commitments).  Deals the
        shares now, so the advert commits to each one."""
        if self._stage != "keys":
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
        self._stage = "neighbours"
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
        self._expect("neighbours", message.recipient)
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
        self._stage = "shares"
        return SealedShares(self.id, out)

    def _mask(self, message: ShareBatch) -> MaskedInput:
        """Stage 2.  Checks: each ciphertext is from a neighbour whose keys it took, once,
        opens under that direction's key for this round and pair, and holds the two shares
        whose hashes that neighbour's advert committed to.  It masks with every such
        neighbour and no other, and only if there are at least ``min_partners`` of them
        (the server decides whose shares arrive; the minimum is what keeps it from picking
        a victim's partners)."""
        self._expect("shares", message.recipient)
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
        self._stage = "masked"
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
        self._expect("masked", message.recipient)
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
        self._stage = "signed"
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
        self._expect("signed", message.recipient)
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
        self._stage = "done"
        return UnmaskShares(self.id, self_mask, mask_key)


# -- the server ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedInput:
    input_hash: bytes
    partners: tuple[int, ...]
    signature: bytes  # the trainer's EIP-712 RoundCommitment
    value_commitment: bytes = b""

    @property
    def commitment(self) -> bytes:
        return input_commitment(self.input_hash, self.partners, self.value_commitment)


@dataclass(frozen=True)
class RoundTranscript:
    """What the aggregator publishes so that anyone can check the sum: the signed keys
    (with seed commitments and share roots), each survivor's signed commitment to its
    masked input and partners, the survivor list with its quorum of signatures, the
    survivors' self-mask seeds and the mask keys of the dropped clients they had masked
    with, and the sum over Z_2^32.  It reveals what the aggregator saw, which the protocol
    makes worth only the sum.  Its encoding is specified in ``docs/protocol/secagg.md``."""

    adverts: Mapping[int, KeyAdvert]
    inputs: Mapping[int, SignedInput]
    survivors: tuple[int, ...]
    survivor_signatures: Mapping[int, bytes]
    seeds: Mapping[int, bytes]
    mask_keys: Mapping[int, bytes]
    total: bytes  # little-endian uint32

    def leaves(self, params: RoundParams) -> list[tuple[str, bytes]]:
        """(trainer account, signed commitment) for the round's commitment root."""
        return [(params.roster[i], self.inputs[i].commitment) for i in self.survivors]

    def encode(self) -> bytes:
        """Canonical JSON (sorted keys, no spaces, bytes as lower-case hex)."""
        doc = {
            "format": TRANSCRIPT_FORMAT,
            "adverts": {
                str(j): [
                    a.pk_s.hex(),
                    a.seed_commitment.hex(),
                    a.shares_root.hex(),
                    a.signature.hex(),
                ]
                for j, a in self.adverts.items()
            },
            "inputs": {
                str(i): [
                    s.input_hash.hex(),
                    list(s.partners),
                    s.signature.hex(),
                    s.value_commitment.hex(),
                ]
                for i, s in self.inputs.items()
            },
            "survivors": list(self.survivors),
            "survivor_signatures": {str(i): v.hex() for i, v in self.survivor_signatures.items()},
            "seeds": {str(i): v.hex() for i, v in self.seeds.items()},
            "mask_keys": {str(i): v.hex() for i, v in self.mask_keys.items()},
            "total": self.total.hex(),
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> RoundTranscript:
        """Raises ``AggregateMismatch`` for anything that is not a transcript of this
        format with every field of its size."""
        try:
            d = json.loads(raw)
            if not isinstance(d, dict) or d.get("format") != TRANSCRIPT_FORMAT:
                raise ValueError("unknown format")

            def h(v: Any, size: int | None = None) -> bytes:
                if not isinstance(v, str):
                    raise ValueError("not hex")
                out = bytes.fromhex(v)
                if size is not None and len(out) != size:
                    raise ValueError("wrong size")
                return out

            def ident(v: Any) -> int:
                i = int(v) if isinstance(v, str) and v.isdigit() else v
                if not isinstance(i, int) or isinstance(i, bool) or not 1 <= i <= 65535:
                    raise ValueError("not a client id")
                return i

            inputs = {}
            for i, v in d["inputs"].items():
                if not isinstance(v, list) or len(v) != 4 or not isinstance(v[1], list):
                    raise ValueError("an input is [hash, partners, signature, commitment]")
                inputs[ident(i)] = SignedInput(
                    h(v[0], 32), tuple(ident(x) for x in v[1]), h(v[2], 65), h(v[3])
                )
            adverts = {}
            for j, a in d["adverts"].items():
                if not isinstance(a, list) or len(a) != 4:
                    raise ValueError("an advert is [key, seed commitment, share root, signature]")
                adverts[ident(j)] = KeyAdvert(
                    ident(j), h(a[0], 32), h(a[1], 32), h(a[2], 32), h(a[3], 65)
                )
            transcript = cls(
                adverts=adverts,
                inputs=inputs,
                survivors=tuple(ident(i) for i in d["survivors"]),
                survivor_signatures={
                    ident(i): h(v, 65) for i, v in d["survivor_signatures"].items()
                },
                seeds={ident(i): h(v, 32) for i, v in d["seeds"].items()},
                mask_keys={ident(i): h(v, 32) for i, v in d["mask_keys"].items()},
                total=h(d["total"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise AggregateMismatch("not a secure-aggregation transcript") from exc
        if transcript.encode() != raw:  # one meaning, one encoding: what two parsers agree on
            raise AggregateMismatch("the transcript is not in its canonical encoding")
        return transcript


class AggregateMismatch(SecAggError):
    """A published aggregate that its transcript does not support, or a transcript that
    is malformed."""


def unmask(
    params: RoundParams, transcript: RoundTranscript, inputs: Mapping[int, NDArray[np.uint32]]
) -> NDArray[np.uint32]:
    """The sum over Z_2^32 of the survivors' inputs with every mask removed, from the
    transcript's seeds and keys (the aggregator and every verifier run this)."""
    p = params
    total = np.zeros(p.secure_len, dtype=np.uint32)
    for i in transcript.survivors:
        total += inputs[i]
        total -= _self_mask(p, transcript.seeds[i], i)
    survivors = set(transcript.survivors)
    for j, secret in sorted(transcript.mask_keys.items()):
        key = X25519KeyPair.from_private_bytes(secret)
        for i in sorted(survivors):
            if j in transcript.inputs[i].partners:
                pairwise = _pair_mask(p, key.exchange(transcript.adverts[i].pk_s), i, j)
                if _pair_sign(i, j) > 0:
                    total -= pairwise
                else:
                    total += pairwise
    return total


def _check_survivors(p: RoundParams, transcript: RoundTranscript) -> tuple[int, ...]:
    """The survivor list is a sorted subset of the roster with a quorum of signatures, and
    every survivor kept the minimum of partners on it."""
    survivors = transcript.survivors
    if list(survivors) != sorted(set(survivors)) or not set(survivors) <= set(p.roster):
        raise AggregateMismatch("the survivor list is not a sorted subset of the roster")
    if set(transcript.inputs) != set(survivors):
        raise AggregateMismatch("the transcript's inputs are not exactly the survivors'")
    digest = p.survivors_digest(survivors)
    signers = {
        c
        for c, sig in transcript.survivor_signatures.items()
        if c in survivors and _sign_ok(p, digest, sig, c)
    }
    if len(signers) < p.quorum:
        raise AggregateMismatch(
            f"{len(signers)} valid signatures on the survivors, quorum {p.quorum}"
        )
    for i in survivors:
        signed = transcript.inputs.get(i)
        if signed is None or not _sign_ok(
            p, p.input_digest(signed.commitment), signed.signature, i
        ):
            raise AggregateMismatch(f"client {i}'s input commitment is missing or not signed")
        if bool(signed.value_commitment) != p.verifiable:
            raise AggregateMismatch(f"client {i}'s input lacks or adds a value commitment")
        if (
            list(signed.partners) != sorted(set(signed.partners))
            or not set(signed.partners) <= p.neighbours[i]
        ):
            raise AggregateMismatch(f"client {i} claims partners outside its neighbourhood")
        if len(set(signed.partners) & set(survivors)) < p.min_partners:
            raise AggregateMismatch(f"client {i} kept fewer than {p.min_partners} partners")
    return survivors


def _total(p: RoundParams, transcript: RoundTranscript) -> NDArray[np.uint32]:
    if len(transcript.total) != 4 * p.secure_len:
        raise AggregateMismatch("the published sum has the wrong length")
    return np.frombuffer(transcript.total, dtype="<u4").astype(np.uint32)


def verify_sum(params: RoundParams, transcript: RoundTranscript) -> NDArray[np.float64]:
    """Check a verifiable round's published sum against the survivors' signed lattice
    commitments alone — no masked input is needed and none is seen; returns the decoded
    sum.  Raises ``AggregateMismatch`` if a commitment is missing or unsigned, if the
    transcript is malformed, or if the sum (one unit off in one coordinate is enough) does
    not open their total."""
    p = params
    if not p.verifiable:
        raise AggregateMismatch("this round carries no value commitments")
    survivors = _check_survivors(p, transcript)
    commitments = []
    for i in survivors:
        try:
            commitments.append(lattice.Commitment.from_bytes(transcript.inputs[i].value_commitment))
        except lattice.CommitmentError:
            raise AggregateMismatch(f"client {i}'s value commitment is malformed") from None
    total = _total(p, transcript)
    signed_total = total.view(np.int32).astype(np.int64)
    if not p.commitment_key.check_sum(
        commitments, signed_total[: p.vector_len], signed_total[p.vector_len :]
    ):
        raise AggregateMismatch("the sum does not open the survivors' combined commitments")
    return fixedpoint.decode(total[: p.vector_len].copy(), p.frac_bits)


def verify_round(
    params: RoundParams,
    transcript: RoundTranscript,
    fetch_input: Callable[[int], NDArray[np.uint32]],
) -> NDArray[np.float64]:
    """Check a published aggregate from its transcript and the masked inputs (public:
    each is uniformly random on its own); returns the decoded sum.  Raises
    ``AggregateMismatch`` for any signature, hash, seed, key or single unit that is off,
    and for any transcript that is malformed or incomplete."""
    p = params
    survivors = _check_survivors(p, transcript)
    total = _total(p, transcript)
    needed = set(survivors) | set(transcript.mask_keys)
    for j in sorted(needed):
        advert = transcript.adverts.get(j)
        if (
            advert is None
            or advert.sender != j
            or not _sign_ok(p, advert.digest(p), advert.signature, j)
        ):
            raise AggregateMismatch(f"client {j}'s keys are missing or not signed by its account")
    inputs = {}
    for i in survivors:
        signed = transcript.inputs[i]
        vector = fetch_input(i)
        if (
            vector.dtype != np.uint32
            or vector.shape != (p.secure_len,)
            or input_hash(vector) != signed.input_hash
        ):
            raise AggregateMismatch(f"client {i}'s masked input does not match its commitment")
        inputs[i] = vector
        seed = transcript.seeds.get(i, b"")
        if p.seed_commitment(i, seed) != transcript.adverts[i].seed_commitment:
            raise AggregateMismatch(f"client {i}'s revealed seed is not the one it committed to")
    alive = set(survivors)
    for i in survivors:
        for j in transcript.inputs[i].partners:
            if j in alive and i not in transcript.inputs[j].partners:
                raise AggregateMismatch(f"clients {i} and {j} disagree on masking each other")
            if j not in alive and j not in transcript.mask_keys:
                raise AggregateMismatch(f"client {j}'s mask key is missing")
    try:
        for j, secret in transcript.mask_keys.items():
            key = X25519KeyPair.from_private_bytes(secret)
            if j in survivors or key.public_bytes != transcript.adverts[j].pk_s:
                raise AggregateMismatch(f"client {j}'s revealed mask key is not its own")
        unmasked = unmask(p, transcript, inputs)
    except CryptoError as exc:  # a signed low-order key: no pair mask can be agreed with it
        raise AggregateMismatch(f"a mask key in the transcript is unusable: {exc}") from None
    if unmasked.astype("<u4").tobytes() != total.tobytes():
        raise AggregateMismatch("the published sum is not the sum of the committed inputs")
    return fixedpoint.decode(total[: p.vector_len].copy(), p.frac_bits)


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
    stage: str = "keys"
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
        KeyAdvert: "keys",
        SealedShares: "shares",
        MaskedInput: "masked",
        SurvivorSignature: "consistency",
        UnmaskShares: "unmask",
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
        self.stage = "aborted"
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
        if self.stage == "keys":
            if len(self._adverts) < p.quorum:
                raise self._abort(f"{len(self._adverts)} clients sent keys, {p.quorum} needed")
            self.stage = "shares"
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
        if self.stage == "shares":
            if len(self._shares) < p.quorum:
                raise self._abort(f"{len(self._shares)} clients shared, {p.quorum} needed")
            self.stage = "masked"
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
        if self.stage == "masked":
            self._survivors = self._survivor_list()
            if len(self._survivors) < p.quorum:
                raise self._abort(
                    f"{len(self._survivors)} masked inputs can be unmasked, quorum {p.quorum}"
                )
            self.stage = "consistency"
            return [SurvivorList(i, self._survivors) for i in self._survivors]
        if self.stage == "consistency":
            if len(self._signatures) < p.quorum:
                raise self._abort(f"{len(self._signatures)} signatures, quorum {p.quorum}")
            self.stage = "unmask"
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
        if self.stage != "unmask":
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
        self.stage = "done"
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


# -- one round in one process (tests, benchmarks) --------------------------------------------


def run_in_memory(
    params: RoundParams,
    clients: Mapping[int, SecAggClient],
    *,
    drop: Mapping[str, Iterable[int]] | None = None,
    server: SecAggServer | None = None,
) -> SecAggResult:
    """Run a round, dropping the named clients at the named stage ("keys", "shares",
    "masked", "consistency", "unmask"): from then on their messages are lost."""
    drop = {k: set(v) for k, v in (drop or {}).items()}
    gone: set[int] = set()
    server = server or SecAggServer(params)

    def alive(stage: str) -> list[int]:
        gone.update(drop.get(stage, ()))
        return [i for i in sorted(clients) if i not in gone]

    for i in alive("keys"):
        server.receive(clients[i].advertise())
    stages = ["shares", "masked", "consistency", "unmask"]
    for stage in stages:
        outgoing = server.advance()
        ids = set(alive(stage))
        for message in outgoing:
            if message.recipient in ids:
                server.receive(clients[message.recipient].handle(message))
    return server.finish()
