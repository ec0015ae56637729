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
(``chainml.crypto.hazmat.fixedpoint``), so the masked vector is as many bytes as the float32
update.

The package: ``params`` (the rule, the graph, the context, ``Stage``), ``messages``,
``pairkeys`` (pair keys, MACs, share boxes, masks), ``client``, ``server``,
``transcript`` (the public record and its verification), ``simulation``
(``run_in_memory``), ``errors``.
"""

from __future__ import annotations

from chainml.training.secagg.client import (
    SecAggClient,
)
from chainml.training.secagg.errors import (
    AggregateMismatch,
    ForgedKeys,
    InconsistentView,
    ProtocolViolation,
    SecAggError,
    TooFewSurvivors,
)
from chainml.training.secagg.messages import (
    MAC_BYTES,
    SEALED_SHARES_BYTES,
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
    clip_l2,
)
from chainml.training.secagg.params import (
    COMPLETE_UP_TO,
    DROPOUT,
    KEYS_TYPEHASH,
    SHARE_HASH_BYTES,
    SURVIVORS_TYPEHASH,
    RoundParams,
    Stage,
    graph_seed_for,
    min_partners_for,
    quorum_for,
    secure_parameters,
    shuffle,
    sparse_threshold,
)
from chainml.training.secagg.server import (
    SecAggResult,
    SecAggServer,
)
from chainml.training.secagg.simulation import (
    run_in_memory,
)
from chainml.training.secagg.transcript import (
    TRANSCRIPT_FORMAT,
    RoundTranscript,
    SignedInput,
    unmask,
    verify_round,
    verify_sum,
)

__all__ = [
    "COMPLETE_UP_TO",
    "DROPOUT",
    "KEYS_TYPEHASH",
    "MAC_BYTES",
    "SEALED_SHARES_BYTES",
    "SHARE_BYTES",
    "SHARE_HASH_BYTES",
    "SURVIVORS_TYPEHASH",
    "TRANSCRIPT_FORMAT",
    "AggregateMismatch",
    "ForgedKeys",
    "InconsistentView",
    "KeyAdvert",
    "MaskedInput",
    "NeighbourKeys",
    "PairKeys",
    "ProtocolViolation",
    "RoundParams",
    "RoundTranscript",
    "SealedShares",
    "SecAggClient",
    "SecAggError",
    "SecAggResult",
    "SecAggServer",
    "ShareBatch",
    "SignedInput",
    "Stage",
    "SurvivorList",
    "SurvivorSignature",
    "TooFewSurvivors",
    "UnmaskRequest",
    "UnmaskShares",
    "clip_l2",
    "decode_share",
    "encode_share",
    "graph_seed_for",
    "input_commitment",
    "input_hash",
    "min_partners_for",
    "quorum_for",
    "run_in_memory",
    "secure_parameters",
    "shares_root",
    "shuffle",
    "sparse_threshold",
    "unmask",
    "verify_round",
    "verify_sum",
]
