"""SecAgg+ round parameters: the rule that fixes degree, threshold and ``min_partners``
from the roster size (``secure_parameters``), the public graph seed, the graph, and the
round's context that binds every MAC, box, mask label and signature; plus ``Stage``, the
stages a client and the server go through."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cached_property

from eth_abi.abi import encode as abi_encode

from chainml.crypto.eip712 import SECAGG_KEYS, SECAGG_SURVIVORS
from chainml.crypto.errors import CryptoError
from chainml.crypto.hashing import keccak256, tagged_hash
from chainml.crypto.hazmat import fixedpoint, lattice, prg
from chainml.crypto.keys import recover_address
from chainml.crypto.signing import round_commitment_digest

KEYS_TYPEHASH = SECAGG_KEYS.typehash
SURVIVORS_TYPEHASH = SECAGG_SURVIVORS.typehash
SHARE_HASH_BYTES = 16  # each committed share hash: a shifted share is a 128-bit preimage

# -- parameters ------------------------------------------------------------------------------


class Stage(StrEnum):
    """Where a client or the server is in a round.  The server goes keys, shares, masked,
    consistency, unmask, done (or aborted); a client keys, neighbours, shares, masked,
    signed, done.  A ``StrEnum``: each compares equal to its name as a string."""

    KEYS = "keys"
    NEIGHBOURS = "neighbours"  # a client that advertised, waiting for its neighbours' keys
    SHARES = "shares"
    MASKED = "masked"
    SIGNED = "signed"  # a client that approved a survivor list
    CONSISTENCY = "consistency"
    UNMASK = "unmask"
    ABORTED = "aborted"
    DONE = "done"


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

    @cached_property
    def job_domain(self) -> bytes:
        """What names the job across its rounds: pair keys are agreed for it once."""
        return abi_encode(
            ["uint256", "address", "uint256"], [self.chain_id, self.jobs, self.job_id]
        )

    def keys_digest(
        self, client: int, pk_s: bytes, seed_commitment: bytes, shares_root: bytes
    ) -> bytes:
        return SECAGG_KEYS.digest(
            self.chain_id,
            self.jobs,
            self.job_id,
            self.round,
            self.context,
            client,
            pk_s,
            seed_commitment,
            shares_root,
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
            self._digests[key] = SECAGG_SURVIVORS.digest(
                self.chain_id, self.jobs, self.job_id, self.round, listed
            )
        return self._digests[key]

    @cached_property
    def _digests(self) -> dict[tuple[int, ...], bytes]:
        return {}

    def label(self, *parts: object) -> bytes:
        return self.context + b"|" + "|".join(map(str, parts)).encode()


def _sign_ok(params: RoundParams, digest: bytes, signature: bytes, client: int) -> bool:
    try:
        return recover_address(digest, signature).lower() == params.roster[client].lower()
    except (CryptoError, KeyError):
        return False
