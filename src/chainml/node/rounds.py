"""Training rounds across node processes: the trainer and aggregator roles.

Every message between them is an envelope (signed by the sender's registered account,
sealed to the recipient's registered X25519 key).  The aggregator's round is the round
engine's (``chainml.training.engine``, the same one the simulator runs): the job's
strategy (``engine.strategy_for``: SecAgg+, a robust rule, DP) says what the trainers
send and how it is combined, ``RoundEngine`` runs the stages over ``EnvelopeTransport``
(the courier out, the round's inbox in) on the node's clock; the SecAgg+ state machines of
``chainml.training.secagg`` do the protocol work.  This module moves messages, keeps time,
and makes each step durable:

- the **aggregator** (the job's ``aggregator`` on chain) starts round ``r`` once every
  participant has joined: it sends each trainer a ``round/start`` (job configuration,
  global parameters, SecAgg+ parameters), then runs the five SecAgg+ stages, each closed
  when every expected message is in or ``stage_timeout`` passes (whoever is late has
  dropped out).  It seals the new global model, stores a public round record (sealed
  aggregate, transcript, masked inputs) and submits one transaction: the record's CID,
  the Merkle root over the trainers' signed commitments, the participant bitmap.  A round
  that falls below the threshold, or that a crash interrupted, is aborted and retried as
  a new attempt; nothing reaches the chain for it.
- a **trainer** checks that a ``round/start`` comes from the job's aggregator and carries
  the configuration whose hash is on chain, trains on its own data and answers each stage
  through the strategy's trainer session (``engine.secagg.SecAggTrainer``: its SecAgg+
  client, and a norm-proof job's claim just before its masked input).  Before it sends
  its signed commitment it records it in SQLite; a trainer that has committed in a round
  never takes part in that round again (after a crash its SecAgg+ keys are gone: it is a
  dropout), so no trainer ever signs two commitments for one round.

A job whose configuration names a robust rule (``aggregation``: ``krum``, ``median`` or
``trimmed_mean``) accepts plaintext updates instead, each sealed to the aggregator and
signed as the trainer's round commitment: the aggregator applies the rule, keeps
FoolsGold similarity scores over the job's rounds, and raises a ``sybil_poisoner`` alert
(log, ``/v1/alerts``, dashboard) for each trainer they flag.

A job whose configuration asks for differential privacy (``dp``) gets Gaussian noise on
the delta part of the sum: each trainer adds its share before masking (``distributed``)
or the aggregator adds it to the unmasked sum (``central``).  The aggregator charges a
Rényi-DP accountant per round (with distributed noise, the survivors' effective
multiplier), rebuilt from the job's round records on chain so a restart does not reset
it, and reports the job's ε in each round record (``dp``), in ``chainml_job_epsilon`` and
on the dashboard.

A job whose configuration asks for norm-bound proofs (``norm_proofs``) has each trainer
commit to its fixed-point delta and prove in zero knowledge that its L2 norm is within the
job's clip bound (docs/protocol/zk-norm.md §12): the trainer advertises its keys at once,
proves while the first stages run, and sends its ``NormClaim`` (purpose ``zk/norm-claim``)
just before its masked input.  The aggregator holds the masked inputs back until the
masked stage closes, checks all the claims in one batch, and counts only the inputs whose
claims verify; the others are dropouts, their claims kept in the record as evidence.  The
record names every counted claim, so ``audit_round`` re-verifies them and checks the sum
against the survivors' commitments.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import requests
from numpy.typing import NDArray

from chainml.crypto import Identity, MerkleTree, commitment_leaf, keccak256, zk
from chainml.crypto.errors import CryptoError, InvalidProof
from chainml.crypto.signing import verify_round_commitment
from chainml.crypto.stream import generate_key
from chainml.errors import ChainmlError
from chainml.ledger.bindings import Chainml, JobParams, JobState
from chainml.ledger.errors import LedgerError
from chainml.ledger.settle import Settlement
from chainml.node.access import LedgerChainView
from chainml.node.envelope import Opened, seal_envelope
from chainml.node.state import NodeState
from chainml.node.workers import Actions, crash_point
from chainml.storage.access import unwrap_as_grantee, wrap_for_grantee
from chainml.storage.errors import StorageError
from chainml.storage.sealed import load_manifest, open_artifact, seal_artifact
from chainml.storage.store import BlobStore
from chainml.training import normproofs, wire
from chainml.training.engine import (
    Arrival,
    PlainUpdate,
    RoundEngine,
    SybilWatch,
    dp_entry,
    secure_params,
    strategy_for,
)
from chainml.training.engine.plain import within_bounds as _within_bounds  # noqa: F401 (tests)
from chainml.training.engine.secagg import COMPARED_PARAMS, SecAggTrainer, record_params
from chainml.training.errors import TrainingError
from chainml.training.job import JobConfig
from chainml.training.models import Params, flatten, from_safetensors, to_safetensors, unflatten
from chainml.training.normproofs import NormClaim
from chainml.training.secagg import (
    AggregateMismatch,
    MaskedInput,
    PairKeys,
    ProtocolViolation,
    RoundParams,
    RoundTranscript,
    SecAggClient,
    SecAggError,
    Stage,
    UnmaskShares,
    verify_round,
    verify_sum,
)

log = logging.getLogger("chainml.node.rounds")

START = "round/start"
TO_CLIENT = "secagg/client"
TO_SERVER = "secagg/server"
PLAIN = "robust/update"
NORM = "zk/norm-claim"
STAGES = ("keys", "shares", "masked", "consistency", "unmask")
MAX_ATTEMPTS = 3


class DeliveryFailed(ChainmlError):
    """An envelope did not reach its recipient's node."""


class Courier:
    """Seals, signs and posts envelopes to registered parties' endpoints."""

    def __init__(self, identity: Identity, cm: Chainml, *, timeout: float = 10.0) -> None:
        self.identity, self.cm, self.timeout = identity, cm, timeout
        self.chain_id = cm.registry.client.chain_id
        self._local = threading.local()  # a session per sending thread (kept-alive sockets)

    @property
    def session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        return session

    def send(self, to: str, purpose: str, payload: bytes, job_id: int, round_no: int) -> None:
        party = self.cm.registry.party(to)
        envelope = seal_envelope(
            self.identity,
            recipient=to,
            recipient_key=party.x25519_key,
            purpose=purpose,
            plaintext=payload,
            chain_id=self.chain_id,
            registry=self.cm.registry.address,
            timestamp=int(time.time()),
            job_id=job_id,
            round=round_no,
        )
        body = envelope.to_bytes()
        url = party.endpoint.rstrip("/") + "/v1/envelopes"
        try:
            reply = self.session.post(url, data=body, timeout=self.timeout)
        except requests.ConnectionError:
            # a pooled connection to a peer that restarted: once more on a fresh one
            self.session.close()
            self._local.session = None
            try:
                reply = self.session.post(url, data=body, timeout=self.timeout)
            except requests.RequestException as exc:
                raise DeliveryFailed(f"{to}: {type(exc).__name__}") from None
        except requests.RequestException as exc:
            raise DeliveryFailed(f"{to}: {type(exc).__name__}") from None
        if reply.status_code != 202:
            raise DeliveryFailed(f"{to} refused the envelope: HTTP {reply.status_code}")


@dataclass(frozen=True)
class RoundStart:
    """What the aggregator sends each trainer to open a round.  It carries no SecAgg+
    parameters: the trainer derives them from the chain, the job and the attempt
    (``round_params``), so an aggregator cannot pick a degree, threshold or graph."""

    config: bytes  # the job configuration, canonical JSON
    params: bytes  # global parameters, safetensors
    roster: Mapping[int, str]
    clip: float
    attempt: int

    def encode(self) -> bytes:
        return json.dumps(
            {
                "format": "chainml-round-start/2",
                "config": self.config.decode(),
                "params": base64.b64encode(self.params).decode(),
                "roster": {str(k): v for k, v in self.roster.items()},
                "clip": self.clip,
                "attempt": self.attempt,
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> RoundStart:
        try:
            d = json.loads(raw)
            if d["format"] != "chainml-round-start/2":
                raise ValueError("unknown format")
            clip = float(d["clip"])
            if not math.isfinite(clip) or clip <= 0:
                raise ValueError("the clip bound is a positive number")
            attempt = d["attempt"]
            if (
                not isinstance(attempt, int)
                or isinstance(attempt, bool)
                or not 0 <= attempt < 2**32
            ):
                raise ValueError("the attempt is a small non-negative integer")
            return cls(
                d["config"].encode(),
                base64.b64decode(d["params"], validate=True),
                {int(k): str(v) for k, v in d["roster"].items()},
                clip,
                attempt,
            )
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise ProtocolViolation("malformed round start") from exc


def round_params(
    cm: Chainml,
    job_id: int,
    round_no: int,
    attempt: int,
    config: JobConfig,
    clip: float,
    roster: Mapping[int, str],
    block: int | str = "latest",
) -> RoundParams:
    """A round's SecAgg+ parameters as the documented rule fixes them from public data
    (``RoundParams.derive``): the aggregator, every trainer and every auditor compute the
    same ones, and take none from another party.  ``clip`` is the job's bound on chain; the
    secure range adds room for the weight coordinate and any distributed noise.  ``block``:
    where to read the registered keys (an auditor reads them as the round saw them).  With
    norm proofs the vector carries the commitment's blinding words too, and the range the
    room they and the grid's rounding take (``normproofs.headroom``, at the fraction bits
    that range itself gives: the least range that holds it)."""
    keys = registered_keys(cm, roster, block)
    base = config.secagg_bound(clip, len(roster))

    def derive(bound: float) -> RoundParams:
        return RoundParams.derive(
            roster,
            keys,
            config.secagg_len(),
            chain_id=cm.jobs.client.chain_id,
            jobs=cm.jobs.address,
            job_id=job_id,
            round=round_no,
            attempt=attempt,
            clip=bound,
            verifiable=config.verifiable,
        )

    return secure_params(derive, base, norm_proofs=config.norm_proofs, dim=config.vector_len() - 1)


def _root(job_id: int, round_no: int, leaves: Sequence[tuple[str, bytes]]) -> bytes:
    """The commitment root of a round: one leaf per counted trainer (account, commitment)."""
    return MerkleTree([commitment_leaf(a, job_id, round_no, c) for a, c in leaves]).root


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _bitmap(counted: Iterable[int]) -> int:
    return sum(1 << (i - 1) for i in counted)


class UnpublishedConfig(ChainmlError):
    """A job's published configuration is missing, or is not what its hash names."""


def published_config(cm: Chainml, store: BlobStore, job_id: int) -> JobConfig | None:
    """The configuration a job publishes under its ``config_cid``, checked against its
    ``config_hash`` and decoded; None if the job publishes none."""
    params = cm.jobs.job(job_id).params
    if not params.config_cid:
        return None
    try:
        raw = store.get(params.config_cid)
    except StorageError as exc:
        raise UnpublishedConfig(f"job {job_id}: its configuration is not in the store") from exc
    if keccak256(raw) != params.config_hash:
        raise UnpublishedConfig(f"job {job_id}: the published configuration is not the hashed one")
    try:
        return JobConfig.decode(raw)
    except TrainingError as exc:
        raise UnpublishedConfig(f"job {job_id}: the published configuration: {exc}") from exc


def check_job_params(config: JobConfig, params: JobParams) -> None:
    """The job on chain promises what its configuration asks: its DP fields are the
    configuration's (``JobConfig.chain_dp``), so anyone reading the chain sees the noise a
    job adds; raises ``ProtocolViolation`` (a trainer takes no part, an aggregator does
    not serve it)."""
    recorded = (params.dp_noise_multiplier, params.dp_delta_exponent)
    if recorded != config.chain_dp():
        raise ProtocolViolation(
            f"the job's DP parameters on chain {recorded} are not its configuration's "
            f"{config.chain_dp()}"
        )


def _check_on_chain(
    info: Any,
    job_id: int,
    round_no: int,
    leaves: Sequence[tuple[str, bytes]],
    counted: Iterable[int],
) -> None:
    """The root and bitmap the chain recorded are those of the round's record."""
    if _root(job_id, round_no, leaves) != info.commitment_root:
        raise AggregateMismatch(f"round {round_no}: the commitment root is not the record's")
    if info.bitmap != _bitmap(counted):
        raise AggregateMismatch(f"round {round_no}: the bitmap is not the record's trainers")


def roster_of(cm: Chainml, job_id: int) -> dict[int, str]:
    """Bitmap index + 1 -> participant, as the Jobs contract records them."""
    count = cm.jobs.job(job_id).participant_count
    return {i + 1: str(cm.jobs.contract.call("participant_at", job_id, i)) for i in range(count)}


class JobFacts:
    """What never changes about a job once set, read from the chain once: its parameters
    (fixed when it is posted) and, once every slot is taken, its participants.  The hot
    path of a round (every envelope, every round start) reads these, not the chain."""

    def __init__(self, cm: Chainml) -> None:
        self.cm = cm
        self._params: dict[int, JobParams] = {}
        self._rosters: dict[int, dict[int, str]] = {}

    def params(self, job_id: int) -> JobParams:
        params = self._params.get(job_id)
        if params is None:
            params = self.cm.jobs.job(job_id).params
            if int(params.aggregator, 16):  # a job that exists
                self._params[job_id] = params
        return params

    def roster(self, job_id: int, *, fresh: bool = False) -> dict[int, str]:
        """The job's participants (``roster_of``); ``fresh``: read past any cached head."""
        roster = self._rosters.get(job_id)
        if roster is None:
            if fresh:
                refresh = getattr(self.cm.jobs.client, "refresh", None)
                if refresh is not None:
                    refresh()
            roster = roster_of(self.cm, job_id)
            if len(roster) >= self.params(job_id).max_participants:
                self._rosters[job_id] = roster
        return roster


def registered_keys(
    cm: Chainml, roster: Mapping[int, str], block: int | str = "latest"
) -> dict[int, bytes]:
    """Each participant's X25519 key as the Registry lists it at ``block`` (SecAgg+'s pair
    keys)."""
    return {i: cm.registry.party(a, block=block).x25519_key for i, a in roster.items()}


def recorded_at(cm: Chainml, job_id: int, round_no: int, aggregate_cid: str) -> int:
    """The block before the one that recorded ``aggregate_cid`` as the round's result:
    the chain as the round's parties saw it (a key rotated later changes nothing)."""
    events = cm.jobs.contract.past_events(
        "RoundRecorded", where={"job_id": job_id, "round": round_no}
    )
    for event in reversed(events):
        if event.args["aggregate_cid"] == aggregate_cid:
            return max(event.block_number - 1, 0)
    raise AggregateMismatch(f"round {round_no}: no RoundRecorded event names its record")


# -- the trainer -----------------------------------------------------------------------------


def _may_join(recorded: str | None, attempt: int) -> bool:
    """Whether a trainer takes part in ``attempt`` of a round, given what it recorded of
    the round: yes if nothing; never once it sent an input (``committed:``), so no update
    of it is masked twice; and after advertising keys in an earlier attempt that failed
    (``keys:<attempt>``) only for a later one, with fresh keys: nothing that depends on its
    update has left it yet."""
    if recorded is None:
        return True
    kind, _, earlier = recorded.partition(":")
    return kind == "keys" and earlier.isdigit() and attempt > int(earlier)


class TrainerRole:
    def __init__(
        self,
        identity: Identity,
        cm: Chainml,
        state: NodeState,
        courier: Courier,
        data: tuple[NDArray[np.float64], NDArray[np.int64]],
        *,
        metrics: Any = None,
    ) -> None:
        self.identity, self.cm, self.state, self.courier = identity, cm, state, courier
        self.x, self.y = data
        self.metrics = metrics
        # (job, round) -> its session (the strategy's: SecAgg+ client, claim) and start time
        self.clients: dict[tuple[int, int], tuple[SecAggTrainer, float]] = {}
        self.pairs = PairKeys(identity.x25519)  # agreed once per job and peer, kept
        self.facts = JobFacts(cm)
        self._prover = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prover")

    def on_start(self, opened: Opened) -> None:
        h = opened.header
        job_params = self.facts.params(h.job_id)
        if h.sender.lower() != job_params.aggregator.lower():
            raise ProtocolViolation("a round start from someone other than the job's aggregator")
        start = RoundStart.decode(opened.plaintext)
        if keccak256(start.config) != job_params.config_hash:
            raise ProtocolViolation("the job configuration does not match its hash on chain")
        config = JobConfig.decode(start.config)
        check_job_params(config, job_params)
        if start.roster != self.facts.roster(h.job_id) and start.roster != self.facts.roster(
            h.job_id,
            fresh=True,  # a join this node has not seen yet
        ):
            raise ProtocolViolation("the round's roster is not the job's participants")
        slot = next(
            (i for i, a in start.roster.items() if a.lower() == self.identity.address.lower()), 0
        )
        if not slot:
            raise ProtocolViolation("this node is not a participant of the job")
        key = f"secagg:{h.job_id}:{h.round}"
        if not _may_join(self.state.get(key), start.attempt):
            log.info("round %d of job %d: already took part; staying out", h.round, h.job_id)
            return
        if not abs(start.clip - job_params.clip_bound / 1000) <= 1e-9:
            raise ProtocolViolation("the clip bound is not the job's")
        params = round_params(
            self.cm, h.job_id, h.round, start.attempt, config, start.clip, start.roster
        )
        global_params = from_safetensors(start.params)
        update = self._train(config, global_params, h.round, start.clip)
        # distributed DP: this trainer's share of the noise, before masking (not on the weight)
        update = config.add_trainer_noise(update, clip=start.clip, n_trainers=len(start.roster))
        if config.aggregation != "secagg":  # a robust job: the update itself, signed
            (signed,) = strategy_for(config).trainer(params, slot, self.identity, update).open()
            self.state.put(key, "committed:" + signed.commitment.hex())  # durable first
            crash_point("secagg:after-commit")
            self.courier.send(h.sender, PLAIN, signed.encode(), h.job_id, h.round)
            return
        if config.norm_proofs:  # SecAgg+ sums exactly the integers committed to
            stake = normproofs.own_stake(
                self.cm.datasets, self.identity.address, len(self.y), config.weight_base
            )  # its weight, backed by its data set on chain
            committed = normproofs.commit_input(params, update, stake, linf=config.linf_bound)
            update = committed.vector
        client = SecAggClient(params, slot, self.identity, update, pairs=self.pairs)
        self.state.put(key, f"keys:{start.attempt}")
        claim = None
        if config.norm_proofs:  # proven while the keys and shares stages run
            claim = self._prover.submit(self._prove, params, slot, start.clip, committed).result
        # its claim goes just before its masked input (the strategy's session says so)
        session = SecAggTrainer(client, claim)
        self.clients[(h.job_id, h.round)] = (session, time.monotonic())
        self._reply(h.sender, h.job_id, h.round, session.open())

    def warm(self, config: JobConfig) -> None:
        """Ahead of a norm-proof job's first round (on joining it): derive the generators
        its commitments need, on the prover's thread (a round's proof waits behind it)."""
        if config.norm_proofs:
            self._prover.submit(normproofs.warm, config.vector_len() - 1)

    def _train(
        self, config: JobConfig, global_params: Params, round_no: int, clip: float
    ) -> NDArray[np.float64]:
        """This node's ``[delta · weight, weight]`` for the round (clipped to ``clip``)."""
        return config.local_update(global_params, self.x, self.y, round_no=round_no, clip=clip)

    def _prove(
        self, params: RoundParams, slot: int, clip: float, committed: normproofs.CommittedInput
    ) -> NormClaim:
        return normproofs.prove_input(params, slot, clip, committed)

    def on_secagg(self, opened: Opened) -> None:
        h = opened.header
        entry = self.clients.get((h.job_id, h.round))
        if entry is None:
            log.info(
                "round %d of job %d: no state for it (not started, or lost): ignored",
                h.round,
                h.job_id,
            )
            return
        session, started = entry
        if h.sender.lower() != self.facts.params(h.job_id).aggregator.lower():
            raise ProtocolViolation(
                "secure-aggregation traffic from someone other than the aggregator"
            )
        message = wire.decode(opened.plaintext)
        try:
            replies = session.handle(message)
        except zk.NormBoundExceeded:  # not this node's clipped update: stay out
            del self.clients[(h.job_id, h.round)]
            log.warning("round %d of job %d: the update is not provable", h.round, h.job_id)
            return
        for reply in replies:
            if isinstance(reply, MaskedInput):
                # durable before it leaves: this node never commits twice in one round
                self.state.put(
                    f"secagg:{h.job_id}:{h.round}", "committed:" + reply.commitment.hex()
                )
                crash_point("secagg:after-commit")
        self._reply(h.sender, h.job_id, h.round, replies)
        if any(isinstance(reply, UnmaskShares) for reply in replies):
            del self.clients[(h.job_id, h.round)]
            if self.metrics is not None:
                self.metrics.round_seconds.labels(role="trainer", outcome="done").observe(
                    time.monotonic() - started
                )

    def _reply(self, to: str, job_id: int, round_no: int, messages: Sequence[Any]) -> None:
        """Send the session's messages in order: a norm claim as ``zk/norm-claim``, the
        SecAgg+ messages as ``secagg/server``."""
        for message in messages:
            if isinstance(message, NormClaim):
                self.courier.send(to, NORM, message.encode(), job_id, round_no)
            else:
                self.courier.send(to, TO_SERVER, wire.encode(message), job_id, round_no)


class EnvelopeTransport:
    """The round engine's transport in a node: each message an envelope signed by this
    node and sealed to its recipient (``AggregatorRole._send_all``, side by side), each
    arrival taken off the round's inbox, where the dispatcher thread puts what opened
    (its signer checked by the envelope layer)."""

    def __init__(
        self,
        role: AggregatorRole,
        job_id: int,
        round_no: int,
        roster: Mapping[int, str],
        start: bytes,
        box: queue.Queue[tuple[str, Any]],
        *,
        attempt: int = 1,
    ) -> None:
        self.role, self.job_id, self.round_no = role, job_id, round_no
        self.roster, self.payload, self.box = roster, start, box
        self.attempt = attempt

    def start(self, roster: Mapping[int, str]) -> set[int]:
        ids = list(roster)
        delivered = self.role._send_all(
            [(roster[i], START, self.payload) for i in ids], self.job_id, self.round_no
        )
        log.info(  # the harnesses (devtools.hostjob) wait for these lines: keep their form
            "job %d round %d (attempt %d): started with %d trainers",
            self.job_id,
            self.round_no,
            self.attempt,
            sum(delivered),
        )
        # a trainer the start did not reach is not waited for: it has dropped out
        return {i for i, ok in zip(ids, delivered, strict=True) if ok}

    def send(self, messages: Sequence[tuple[int, Any]]) -> set[int]:
        delivered = self.role._send_all(
            [(self.roster[i], TO_CLIENT, wire.encode(m)) for i, m in messages],
            self.job_id,
            self.round_no,
        )
        return {i for (i, _), ok in zip(messages, delivered, strict=True) if ok}

    def receive(self, timeout: float) -> Arrival | None:
        try:
            sender, message = self.box.get(timeout=timeout)
        except queue.Empty:
            return None
        return Arrival(sender, message)


# -- the aggregator --------------------------------------------------------------------------


class AggregatorRole:
    def __init__(
        self,
        identity: Identity,
        cm: Chainml,
        state: NodeState,
        courier: Courier,
        store: BlobStore,
        *,
        jobs_dir: Path,
        validation: tuple[NDArray[np.float64], NDArray[np.int64]] | None = None,
        stage_timeout: float = 10.0,
        proof_timeout: float = 60.0,
        metrics: Any = None,
        clock: Callable[[], float] = time.monotonic,
        alerts: Any = None,
        settlement: Settlement | None = None,
    ) -> None:
        """``settlement``: the node's policy of when a step counts (``[chain] settle``);
        with one, a round starts only once the joins it counts and the previous round's
        record are settled, and a record counts once its own block is."""
        self.identity, self.cm, self.state, self.courier, self.store = (
            identity,
            cm,
            state,
            courier,
            store,
        )
        self.jobs_dir, self.validation = Path(jobs_dir), validation
        self.stage_timeout, self.metrics, self.clock = stage_timeout, metrics, clock
        # a norm-proof round's masked stage waits this much longer: the trainers' proofs
        self.proof_timeout = proof_timeout
        self.settlement = settlement
        self.actions = Actions(state, cm.jobs.client, settlement)
        self.alerts = alerts
        self.watches: dict[int, SybilWatch] = {}  # FoolsGold: per job, each trainer's steps
        # DP: per job, the noise multiplier each recorded round was charged
        self.dp_spent: dict[int, dict[int, float]] = {}
        self.inbox: dict[tuple[int, int], queue.Queue[tuple[str, Any]]] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="courier")
        self.facts = JobFacts(cm)
        self._closed: set[int] = set()  # jobs never to serve: another's, or over
        self._latest: dict[int, tuple[int, Params]] = {}  # job -> (round, model) published
        self._idle_at: tuple[int, float] | None = None  # (head, jobs_dir mtime) of a tick
        self._warmed: set[int] = set()  # norm-proof dimensions whose generators are derived

    # messages arrive on the node's dispatcher thread
    def on_secagg(self, opened: Opened) -> None:
        h = opened.header
        with self._lock:
            box = self.inbox.get((h.job_id, h.round))
        if box is None:
            log.info("secure-aggregation message for a round not running: ignored")
            return
        if h.purpose == PLAIN:
            box.put((h.sender, PlainUpdate.decode(opened.plaintext)))
        elif h.purpose == NORM:
            box.put((h.sender, NormClaim.decode(opened.plaintext)))
        else:
            box.put((h.sender, wire.decode(opened.plaintext)))

    def _at(self) -> int | str:
        """The block the aggregator's decisions read the chain at: the settled head
        (``ViewDistrusted`` while the node's view is held), or the latest without a policy."""
        if self.settlement is None:
            return "latest"
        return max(self.settlement.settled_head(self.cm.jobs.client), 0)

    def _my_open_jobs(self, at: int | str) -> list[int]:
        count = self.cm.jobs.functions.job_count(block=at)
        mine = []
        for job_id in range(1, count + 1):
            if job_id in self._closed:
                continue
            if self.facts.params(job_id).aggregator.lower() != self.identity.address.lower():
                self._closed.add(job_id)  # a job's aggregator never changes
                continue
            job = self.cm.jobs.job(job_id, block=at)
            if job.state != JobState.OPEN or job.rounds_done >= job.params.rounds:
                self._settle_pending(job_id, job.rounds_done)  # its last record, now settled
                self._closed.add(job_id)  # finished or cancelled: never open again
                continue
            if job.participant_count >= job.params.max_participants:
                mine.append(job_id)
        return mine

    def tick(self) -> bool:
        """Run the next round of each open job this node aggregates; True if one ran (its
        result may open the next round at once)."""
        ran = False
        # nothing a tick acts on changed (the chain's head, the served configurations):
        # the previous tick's outcome stands
        unchanged = (self.cm.jobs.client.block_number(), _mtime(self.jobs_dir))
        if unchanged == self._idle_at:
            return False
        self._idle_at = None
        at = self._at()
        for job_id in self._my_open_jobs(at):
            config = self._config(job_id)
            if config is None:
                continue
            round_no = self.cm.jobs.job(job_id, block=at).rounds_done + 1
            self._settle_pending(job_id, round_no - 1)  # the previous record, now settled
            status = self.state.get(f"round:{job_id}:{round_no}") or "new:0"
            kind, attempt = status.split(":", 1)
            if kind in ("running", "done"):  # interrupted, or not on chain after all: void
                log.warning(
                    "job %d round %d: attempt %s did not reach the chain; aborted",
                    job_id,
                    round_no,
                    attempt,
                )
                kind = "aborted"
                self.state.put(f"round:{job_id}:{round_no}", f"aborted:{attempt}")
            if kind in ("aborted", "new") and int(attempt) >= MAX_ATTEMPTS:
                continue
            if kind == "submitting":  # not settled yet, or a crash before it was sent: finish
                self._settle_pending(job_id, round_no)
                continue
            self.run_round(job_id, round_no, config, int(attempt) + 1)
            ran = True
        if not ran:
            self._idle_at = unchanged
        return ran

    def _settle_pending(self, job_id: int, round_no: int) -> None:
        """Finish a round whose record was stored but not yet counted (a crash before it
        was sent, or mined and waiting for its block to settle): submit it once, and mark
        it done once settled, aborted if the chain refused it."""
        key = f"round:{job_id}:{round_no}"
        kind, _, attempt = (self.state.get(key) or "").partition(":")
        if round_no < 1 or kind != "submitting":
            return
        record = json.loads(self.state.get(f"record:{job_id}:{round_no}") or "{}")
        outcome = self._submit(job_id, round_no, int(attempt), record)
        if outcome != "pending":
            self.state.put(key, f"{outcome}:{attempt}")
        if outcome == "done":
            self._report_epsilon(job_id, round_no, record)

    def _config(self, job_id: int) -> JobConfig | None:
        params = self.facts.params(job_id)
        path = self.jobs_dir / f"{params.config_hash.hex()}.json"
        if not path.exists():
            return None
        config = JobConfig.decode(path.read_bytes())
        try:
            check_job_params(config, params)
        except ProtocolViolation as exc:
            log.warning("job %d: not served: %s", job_id, exc)
            return None
        dim = config.vector_len() - 1
        if config.norm_proofs and dim not in self._warmed:  # before the first claims arrive
            self._warmed.add(dim)
            self._pool.submit(normproofs.warm, dim)
        return config

    def _model_key(self, job_id: int) -> bytes:
        """The job's model key, kept only wrapped to this node's own X25519 key."""
        view = LedgerChainView(self.cm)
        ref = self.state.get(f"job-key:{job_id}")
        if ref is None:
            key = generate_key()
            bundle = wrap_for_grantee(view, key, job_id, self.identity.address)
            self.state.put(f"job-key:{job_id}", self.store.put(bundle))
            return key
        return unwrap_as_grantee(
            view, self.store.get(ref), self.identity.x25519, job_id, self.identity.address
        )

    def _global(self, job_id: int, round_no: int, config: JobConfig) -> Params:
        if round_no == 1:
            return config.initial_model().params
        latest = self._latest.get(job_id)
        if latest is not None and latest[0] == round_no - 1:  # this node just published it
            return latest[1]
        record = json.loads(self.store.get(self.cm.jobs.round(job_id, round_no - 1).aggregate_cid))
        manifest = load_manifest(self.store, record["model_manifest"])
        return from_safetensors(open_artifact(self.store, self._model_key(job_id), manifest))

    def run_round(self, job_id: int, round_no: int, config: JobConfig, attempt: int) -> bool:
        """One attempt at a round, run by the round engine over envelopes
        (``EnvelopeTransport``) with the job's strategy (``engine.strategy_for``); the
        result recorded and submitted (``_publish``).  False if it was aborted."""
        started = self.clock()
        roster = self.facts.roster(job_id)
        clip = self.facts.params(job_id).clip_bound / 1000
        # room above the clip for the appended weight coordinate (at most 1) and for the
        # trainers' noise in a distributed-DP job; the trainers derive the same parameters
        params = round_params(self.cm, job_id, round_no, attempt, config, clip, roster)
        global_params = self._global(job_id, round_no, config)
        start = RoundStart(config.encode(), to_safetensors(global_params), roster, clip, attempt)
        key = f"round:{job_id}:{round_no}"
        self.state.put(key, f"running:{attempt}")
        rules = None
        if config.norm_proofs:  # each claim's weight checked against its data set on chain
            rules = normproofs.ClaimRules(
                clip,
                config.weight_base,
                normproofs.dataset_lookup(self.cm.datasets),
                config.linf_bound,
            )
        strategy = strategy_for(
            config, watch=self.watches.setdefault(job_id, SybilWatch()), rules=rules
        )
        box: queue.Queue[tuple[str, Any]] = queue.Queue()
        with self._lock:
            self.inbox[(job_id, round_no)] = box
        transport = EnvelopeTransport(
            self, job_id, round_no, roster, start.encode(), box, attempt=attempt
        )

        def on_stage(stage: str, seconds: float, got: int, sent: int) -> None:
            crash_point(f"aggregator:{stage}")
            if self.metrics is not None:
                self.metrics.stage_seconds.labels(stage=stage).observe(seconds)
            log.info(
                "job %d round %d: stage %s closed with %d of %d",
                job_id,
                round_no,
                stage,
                got,
                sent,
            )

        masked = self.stage_timeout + self.proof_timeout if config.norm_proofs else None
        engine = RoundEngine(
            transport,
            clock=self.clock,
            stage_timeout=self.stage_timeout,
            stage_timeouts={Stage.MASKED: masked} if masked else None,
            on_stage=on_stage,
        )
        try:
            aggregation = strategy.aggregation(params, clip=clip, n_trainers=len(roster))
            aggregate = engine.run(aggregation, roster)
        except (SecAggError, InvalidProof) as exc:
            # too few survivors, or a sum that does not open the survivors' commitments
            self.state.put(key, f"aborted:{attempt}")
            log.warning("job %d round %d (attempt %d) aborted: %s", job_id, round_no, attempt, exc)
            if self.metrics is not None:
                self.metrics.round_seconds.labels(role="aggregator", outcome="aborted").observe(
                    self.clock() - started
                )
            return False
        finally:
            with self._lock:
                self.inbox.pop((job_id, round_no), None)
        for i, why in sorted(aggregate.refused.items()):
            log.warning(
                "job %d round %d: client %d's input not counted: %s", job_id, round_no, i, why
            )
        for i, score in sorted(aggregate.flagged.items()):
            if self.alerts is not None:
                self.alerts.raise_(
                    "sybil_poisoner",
                    roster[i],
                    f"job {job_id}: updates too alike to another trainer's "
                    f"(FoolsGold weight {score:.2f})",
                )
        new = flatten(global_params).astype(np.float64) + aggregate.update
        fields = aggregate.record(self.store.put)
        if config.dp is not None:
            fields["dp"] = self._privacy(job_id, round_no, config, len(aggregate.counted), roster)
        return self._publish(
            job_id,
            round_no,
            attempt,
            config,
            unflatten(new.astype(np.float32), global_params),
            aggregate.leaves,
            aggregate.counted,
            fields,
            started,
        )

    def _privacy(
        self,
        job_id: int,
        round_no: int,
        config: JobConfig,
        survivors: int,
        roster: Mapping[int, str],
    ) -> dict[str, Any]:
        """The round record's ``dp`` entry: the multiplier this round is charged and the
        job's ε at ``dp_delta`` through it.  The earlier rounds' multipliers come from
        their records on chain (cached), so a restarted aggregator does not start over."""
        spent = self.dp_spent.setdefault(job_id, {})
        for earlier in range(1, round_no):
            if earlier not in spent:
                record = json.loads(
                    self.store.get(self.cm.jobs.round(job_id, earlier).aggregate_cid)
                )
                try:
                    spent[earlier] = float(record["dp"]["multiplier"])
                except (KeyError, TypeError, ValueError) as exc:
                    raise TrainingError(
                        f"job {job_id} round {earlier}: the record has no DP entry"
                    ) from exc
        multiplier = config.round_multiplier(survivors, len(roster))
        if multiplier is None:
            raise TrainingError(f"job {job_id} does not ask for differential privacy")
        charged = [spent[r] for r in range(1, round_no)] + [multiplier]
        assert config.dp is not None
        return dp_entry(config.dp, config.noise_multiplier, config.dp_delta, charged)

    def _publish(
        self,
        job_id: int,
        round_no: int,
        attempt: int,
        config: JobConfig,
        new_params: Params,
        leaves: list[tuple[str, bytes]],
        counted: Sequence[int],
        fields: dict[str, Any],
        started: float,
    ) -> bool:
        """Seal the new model, store the round record, and submit it on chain once."""
        key = f"round:{job_id}:{round_no}"
        sealed = seal_artifact(
            self.store,
            self._model_key(job_id),
            to_safetensors(new_params, config.architecture()),
            artifact_id=f"job-{job_id}-aggregate",
            version=round_no,
            media_type="application/vnd.safetensors",
        )
        record = {
            "format": "chainml-round-record/2",
            "job": job_id,
            "round": round_no,
            "config": config.encode().decode(),  # its hash is the job's config_hash on chain
            "model_manifest": sealed.manifest_cid,
            "model_ciphertext": sealed.manifest.ciphertext_cid,
            **fields,
            "root": _root(job_id, round_no, leaves).hex(),
            "bitmap": _bitmap(counted),
        }
        accuracy = None
        if self.validation is not None:
            model = config.initial_model()
            model.set_params(new_params)
            accuracy = model.accuracy(*self.validation)
            self.state.put(f"accuracy:{job_id}:{round_no}", f"{accuracy:.6f}")
        self.state.put(f"record:{job_id}:{round_no}", json.dumps(record))
        self.state.put(key, f"submitting:{attempt}")
        crash_point("aggregator:before-submit")
        outcome = self._submit(job_id, round_no, attempt, record)
        if outcome == "pending":  # mined; the next ticks count it once its block settles
            log.info(
                "job %d round %d (attempt %d): recorded, waiting for its block to settle",
                job_id,
                round_no,
                attempt,
            )
            return False
        if outcome == "aborted":
            self.state.put(key, f"aborted:{attempt}")
            log.warning(
                "job %d round %d (attempt %d): the chain refused the result",
                job_id,
                round_no,
                attempt,
            )
            return False
        self.state.put(key, f"done:{attempt}")
        self._latest[job_id] = (round_no, new_params)
        self._report_epsilon(job_id, round_no, record)
        if self.metrics is not None:
            self.metrics.round_seconds.labels(role="aggregator", outcome="done").observe(
                self.clock() - started
            )
        log.info(
            "job %d round %d: %d trainers counted, accuracy %s",
            job_id,
            round_no,
            len(counted),
            accuracy,
        )
        return True

    def _report_epsilon(self, job_id: int, round_no: int, record: dict[str, Any]) -> None:
        """A DP round on chain: its ε for the dashboard (state) and the metric."""
        if "dp" not in record:
            return
        epsilon = float(record["dp"]["epsilon"])
        self.state.put(f"epsilon:{job_id}:{round_no}", repr(epsilon))
        log.info(
            "job %d round %d: (%.4g, %.2g)-DP so far (%s noise)",
            job_id,
            round_no,
            epsilon,
            float(record["dp"]["delta"]),
            record["dp"]["mode"],
        )
        if self.metrics is not None:
            self.metrics.job_epsilon.labels(job=str(job_id)).set(epsilon)

    def _submit(self, job_id: int, round_no: int, attempt: int, record: dict[str, Any]) -> str:
        """Submit the round's record once: ``"done"`` (settled), ``"pending"`` (mined, not
        settled yet: ask again later) or ``"aborted"`` (the chain refused it)."""
        cid = self.store.put(json.dumps(record, sort_keys=True, separators=(",", ":")).encode())
        contract = self.cm.jobs.contract
        client = contract.client

        def send() -> str:
            return str(
                client.send(
                    self.identity.account,
                    to=contract.address,
                    data=contract.abi.encode_call(
                        "submit_round",
                        [job_id, round_no, cid, bytes.fromhex(record["root"]), record["bitmap"]],
                    ),
                    wait=False,
                )
            )

        key = f"round:{job_id}:{round_no}:{attempt}"
        if self.actions.perform(
            key,
            done_on_chain=lambda: (
                self.cm.jobs.job(job_id, block=self._at()).rounds_done >= round_no
            ),
            send=send,
        ):
            return "done"
        action = self.actions.get(key)
        return "pending" if action is not None and action.status == "sent" else "aborted"

    def _send(self, to: str, purpose: str, payload: bytes, job_id: int, round_no: int) -> bool:
        try:
            self.courier.send(to, purpose, payload, job_id, round_no)
            return True
        except (DeliveryFailed, LedgerError) as exc:
            log.info(
                "job %d round %d: %s unreachable (%s): counted as dropped",
                job_id,
                round_no,
                to,
                exc,
            )
            return False

    def _send_all(
        self, messages: Sequence[tuple[str, str, bytes]], job_id: int, round_no: int
    ) -> list[bool]:
        """Send each (recipient, purpose, payload) at once, side by side (a stage waits on
        the slowest trainer, not on their sum); whether each was delivered."""
        return list(
            self._pool.map(lambda m: self._send(m[0], m[1], m[2], job_id, round_no), messages)
        )


# -- auditing -------------------------------------------------------------------------------


def audit_round(cm: Chainml, store: BlobStore, job_id: int, round_no: int) -> tuple[int, ...]:
    """What anyone can check from the chain and the public blobs alone: the round record
    on chain names the job configuration (checked against its hash on chain, and the only
    source of the aggregation rule) and the transcript; the SecAgg+ parameters are derived
    from the chain, that configuration and the attempt, never read from the record; the sum
    is checked against the survivors' signed lattice commitments (or, for a job without
    them, recomputed from the masked inputs), and the commitment root and bitmap on chain
    must be the transcript's.  Returns the trainers counted; raises ``AggregateMismatch``
    for anything that does not check out, a malformed or missing blob included."""
    info = cm.jobs.round(job_id, round_no)
    job = cm.jobs.job(job_id)
    try:
        raw_record = store.get(info.aggregate_cid)
        record = json.loads(raw_record)
        if json.dumps(record, sort_keys=True, separators=(",", ":")).encode() != raw_record:
            raise AggregateMismatch(f"round {round_no}: the record is not in its canonical form")
        raw_config = record["config"].encode()
        if keccak256(raw_config) != job.params.config_hash:
            raise AggregateMismatch(
                f"round {round_no}: the record's configuration is not the job's"
            )
        if job.params.config_cid and keccak256(store.get(job.params.config_cid)) != (
            job.params.config_hash
        ):  # what the job publishes must be what its hash names
            raise AggregateMismatch(
                f"round {round_no}: the configuration published under the job's config_cid "
                "is not the one its config_hash names"
            )
        config = JobConfig.decode(raw_config)
        # the rule is the configuration's (bound to the chain), never the record's word
        if record.get("aggregation", "secagg") != config.aggregation:
            raise AggregateMismatch(f"round {round_no}: the record's rule is not the job's")
        if config.aggregation != "secagg":
            return _audit_robust(cm, record, info, job_id, round_no)
        recorded = record["params"]
        attempt = recorded["attempt"]
        if not isinstance(attempt, int) or isinstance(attempt, bool) or attempt < 0:
            raise ValueError("the attempt is a non-negative integer")
        block = recorded_at(cm, job_id, round_no, info.aggregate_cid)
        params = round_params(
            cm,
            job_id,
            round_no,
            attempt,
            config,
            job.params.clip_bound / 1000,
            roster_of(cm, job_id),
            block,
        )
        if record.get("job") != job_id or record.get("round") != round_no:
            raise AggregateMismatch(f"round {round_no}: the record is another round's")
        derived = record_params(params, attempt)
        for name in COMPARED_PARAMS:
            if recorded.get(name) != derived[name]:
                raise AggregateMismatch(
                    f"round {round_no}: the record's {name} is not the one the rule derives"
                )
        refs = {int(i): str(c) for i, c in record["inputs"].items()}
        transcript = RoundTranscript.decode(store.get(record["transcript"]))
    except AggregateMismatch:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError, TrainingError) as exc:
        raise AggregateMismatch(f"round {round_no}: not a round record") from exc
    except StorageError as exc:
        raise AggregateMismatch(f"round {round_no}: a blob of the record is missing") from exc

    def fetch(i: int) -> NDArray[np.uint32]:
        try:
            blob = store.get(refs[i])
        except (KeyError, StorageError) as exc:
            raise AggregateMismatch(f"client {i}'s masked input is missing") from exc
        if len(blob) % 4:
            raise AggregateMismatch(f"client {i}'s masked input is not whole uint32 values")
        return np.frombuffer(blob, dtype="<u4").astype(np.uint32)

    if params.verifiable:  # the signed lattice commitments alone: no masked input needed
        verify_sum(params, transcript)
    else:
        verify_round(params, transcript, fetch)
    if config.norm_proofs:
        rules = normproofs.ClaimRules(  # the data sets as they were when the round was recorded
            job.params.clip_bound / 1000,
            config.weight_base,
            normproofs.dataset_lookup(cm.datasets, block),
            config.linf_bound,
        )
        _audit_norm(store, params, rules, record, transcript)
    _check_on_chain(info, job_id, round_no, transcript.leaves(params), transcript.survivors)
    return transcript.survivors


def _audit_norm(
    store: BlobStore,
    params: RoundParams,
    rules: normproofs.ClaimRules,
    record: dict[str, Any],
    transcript: RoundTranscript,
) -> None:
    """A norm-proof round's record: every survivor's claim verifies (one batch) and the sum
    opens the sum of their commitments; every claim the aggregator refused does not
    verify (it dropped no honest trainer on a pretext).  ``AggregateMismatch`` otherwise."""
    round_no = params.round

    def claim(cid: str) -> NormClaim:
        try:
            return NormClaim.decode(store.get(cid))
        except (StorageError, ProtocolViolation) as exc:
            raise AggregateMismatch(
                f"round {round_no}: a norm claim is missing or malformed"
            ) from exc

    try:
        norm = record["norm"]
        counted = {i: claim(norm["claims"][str(i)]) for i in transcript.survivors}
        refused = {int(i): claim(e["claim"]) for i, e in norm["refused"].items() if e["claim"]}
    except (KeyError, TypeError, AttributeError, ValueError) as exc:
        raise AggregateMismatch(
            f"round {round_no}: the record lacks a survivor's norm claim"
        ) from exc
    bad = normproofs.refused_claims(params, rules, counted)
    if bad:
        raise AggregateMismatch(
            f"round {round_no}: client {min(bad)}'s norm claim does not verify ({bad[min(bad)]})"
        )
    try:
        normproofs.check_sum(
            params,
            rules.weight_base,
            np.frombuffer(transcript.total, dtype="<u4"),
            [counted[i] for i in transcript.survivors],
        )
    except InvalidProof as exc:
        raise AggregateMismatch(f"round {round_no}: {exc}") from exc
    if refused and len(normproofs.refused_claims(params, rules, refused)) != len(refused):
        raise AggregateMismatch(f"round {round_no}: a refused norm claim verifies")


def _audit_robust(
    cm: Chainml, record: dict[str, Any], info: Any, job_id: int, round_no: int
) -> tuple[int, ...]:
    """A robust round's record: every counted trainer signed its commitment, and the root
    and bitmap on chain are theirs (the updates themselves went to the aggregator only)."""
    roster = roster_of(cm, job_id)
    counted = sorted(int(i) for i in record["commitments"])
    leaves = []
    for i in counted:
        commitment = bytes.fromhex(record["commitments"][str(i)])
        try:
            verify_round_commitment(
                roster[i],
                bytes.fromhex(record["signatures"][str(i)]),
                cm.jobs.client.chain_id,
                cm.jobs.address,
                job_id,
                round_no,
                commitment,
            )
        except (KeyError, CryptoError):
            raise AggregateMismatch(
                f"round {round_no}: trainer {i}'s commitment is not signed"
            ) from None
        leaves.append((roster[i], commitment))
    _check_on_chain(info, job_id, round_no, leaves, counted)
    return tuple(counted)


# -- routing --------------------------------------------------------------------------------


def run_aggregator(role: AggregatorRole, stop: threading.Event, interval: float) -> None:
    """Tick now, then again at once after a round ran (the next one may be due), else
    every ``interval`` seconds, until ``stop`` is set."""
    while True:
        ran = False
        try:
            ran = role.tick()
        except (ChainmlError, TrainingError) as exc:
            log.warning("aggregator: %s: %s", type(exc).__name__, exc)
        if stop.wait(0 if ran else interval):
            return


def load_npz(path: Path) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """A party's data: ``x`` (float) and ``y`` (int) arrays in an .npz (no pickles)."""
    with np.load(path, allow_pickle=False) as data:
        return np.asarray(data["x"], dtype=np.float64), np.asarray(data["y"], dtype=np.int64)


__all__ = [
    "COMPARED_PARAMS",
    "AggregatorRole",
    "Courier",
    "DeliveryFailed",
    "EnvelopeTransport",
    "PlainUpdate",
    "RoundStart",
    "TrainerRole",
    "audit_round",
    "check_job_params",
    "load_npz",
    "record_params",
    "roster_of",
    "run_aggregator",
]
