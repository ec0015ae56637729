"""Federated training in one process: local training, then one round of the round engine.

Each trainer starts from the global parameters, trains on its own shard and takes the
change (its delta).  Every round runs in ``chainml.training.engine``'s ``RoundEngine``,
the engine the node runs, over an in-memory transport and a hand-moved clock, with the
node's strategies: each trainer sends ``[clip(delta) · weight, weight]`` (its weight
``min(1, records / weight_base)``; by default ``weight_base`` is the largest shard, so
the largest trainer weighs 1), and the step is the sum's delta part over its last
coordinate, the survivors' total weight.  Modes:

- ``fedavg``: that sum in plaintext (unsigned, unchecked: the baseline);
- ``secagg``: the same sum under SecAgg+ (``chainml.training.secagg``), the trainers'
  updates masked, the weight coordinate summed with them;
- ``median``, ``trimmed_mean``, ``krum``: robust rules over signed plaintext updates,
  FoolsGold leaving out the trainers it flags (as the node does), for jobs that send
  updates to a committee instead.

``dp`` ("central" or "distributed", with ``fedavg`` or ``secagg``) wraps the sum in
Gaussian noise (``engine.dp``); ε at ``delta`` is in the history.

Attackers for the poisoning tests transform their own data or delta (``label_flip``,
``sign_flip``); an ``unclipped`` attacker skips the clip (a robust round refuses its
update).  ``drop``: per round, per stage, the trainers that go silent from that stage on.

``norm_proofs=True`` (with ``secagg``): each trainer commits to its fixed-point delta and
proves that its L2 norm is within the clip (``chainml.training.normproofs``, spec
docs/protocol/zk-norm.md §12), exactly as a trainer node does; the aggregator checks every
claim at the close of the masked stage and does not count an input whose claim fails
(``History.refused``), then checks that the round's sum opens the sum of the survivors'
commitments.  An unclipped attacker commits to its real (too long) delta and presents a
valid proof made for its clipped one: refused.  One that commits to its clipped delta and
sends another (``Attack.mismatch``) passes its proof, and the round's sum then fails the
aggregate check (``zk.AggregateMismatch``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chainml.crypto import Identity
from chainml.ledger.errors import UnknownDataset
from chainml.training import normproofs, privacy, robust
from chainml.training.data import Dataset
from chainml.training.engine import (
    FedAvg,
    ManualClock,
    MemoryTransport,
    Private,
    Robust,
    RoundEngine,
    SecAggFedAvg,
    Strategy,
    SybilWatch,
    secure_params,
)
from chainml.training.engine.plain import PlainTrainer
from chainml.training.engine.secagg import SecAggTrainer
from chainml.training.errors import TrainingError
from chainml.training.models import MLP, Model, flatten, unflatten
from chainml.training.normproofs import NormClaim
from chainml.training.secagg import PairKeys, RoundParams, SecAggClient, clip_l2

MODES = ("fedavg", "secagg", *robust.RULES)


@dataclass
class History:
    accuracy: list[float] = field(default_factory=list)
    participants: list[tuple[int, ...]] = field(default_factory=list)
    # each client's deltas summed over the rounds (what FoolsGold scores; robust modes)
    delta_sums: NDArray[np.float64] | None = None
    epsilon: float | None = None  # (ε, delta)-DP of the whole job so far, with dp on
    refused: list[tuple[int, ...]] = field(default_factory=list)  # failed norm proofs a round


@dataclass(frozen=True)
class Attack:
    kind: str  # "label_flip" or "sign_flip"
    clients: frozenset[int]  # positions in the shard list
    scale: float = 10.0
    sybil: bool = False  # one adversary behind all of them: they share the first one's data
    unclipped: bool = False  # the attacker does not clip its delta
    # with norm_proofs: it commits to (and proves) its clipped delta but sends the other
    mismatch: bool = False
    # with norm_proofs: it claims weight 1 (more records than its shard holds), scaled by it
    overweight: bool = False


def train_federated(
    data: Dataset,
    shards: Sequence[NDArray[np.int64]],
    *,
    rounds: int,
    mode: str = "fedavg",
    make_model: Callable[[], Model] | None = None,
    local_epochs: int = 5,
    lr: float = 0.1,
    clip: float = 10.0,
    attack: Attack | None = None,
    byzantine: int = 0,
    seed: int = 0,
    identities: Mapping[int, Identity] | None = None,
    drop: Mapping[int, Mapping[str, Sequence[int]]] | None = None,
    dp: str | None = None,
    noise_multiplier: float = 1.0,
    delta: float = 1e-5,
    norm_proofs: bool = False,
    weight_base: int | None = None,
) -> tuple[Model, History]:
    """Train for ``rounds``; ``dp`` is None, "central" or "distributed" (Gaussian noise of
    ``noise_multiplier * clip`` on the sum; ε at ``delta`` in the history).
    ``weight_base``: the records that weigh 1 (``JobConfig.weight_base``); by default the
    largest shard's.  A round has at least 3 trainers, as a node's does (``TrainingError``
    for fewer shards)."""
    if mode not in MODES:
        raise TrainingError(f"mode is one of {MODES}")
    if norm_proofs and (mode != "secagg" or dp):
        raise TrainingError("norm_proofs needs mode 'secagg' without dp")
    if dp not in (None, "central", "distributed") or (dp and mode not in ("fedavg", "secagg")):
        raise TrainingError("dp is 'central' or 'distributed', with fedavg or secagg")
    n = len(shards)
    if n < 3:
        raise TrainingError("a round needs at least 3 trainers")
    accountant = privacy.RdpAccountant()
    noise_rng = np.random.default_rng([seed, 99])
    model = (make_model or (lambda: MLP(data.n_features, data.n_classes, (64,), seed=seed)))()
    like = model.params
    history = History()
    counts = np.array([len(s) for s in shards], dtype=np.float64)
    base = weight_base or int(counts.max())
    weights = np.minimum(1.0, counts / base)
    if identities is None and mode == "fedavg":  # nothing signed or sealed: stand-ins
        roster = {i: f"0x{i:040x}" for i in range(1, n + 1)}
        keys = {i: i.to_bytes(32, "big") for i in roster}
        pairs: dict[int, PairKeys] = {}
    else:
        identities = identities or {i: Identity.generate() for i in range(1, n + 1)}
        roster = {i: identities[i].address for i in range(1, n + 1)}
        keys = {i: identities[i].x25519.public_bytes for i in range(1, n + 1)}
        pairs = {i: PairKeys(identities[i].x25519) for i in roster}  # kept across the job
    rules = normproofs.ClaimRules(clip, base, _datasets(roster, shards)) if norm_proofs else None
    strategy = _strategy(mode, byzantine, dp, noise_multiplier, noise_rng, rules)
    clock = ManualClock()
    n_classes = data.n_classes
    for r in range(1, rounds + 1):
        start = flatten(model.params).astype(np.float64)
        deltas, vectors = [], []
        for k, shard in enumerate(shards):
            if attack and attack.sybil and k in attack.clients:
                shard = shards[min(attack.clients)]
            local = make_model() if make_model else MLP(data.n_features, n_classes, (64,))
            local.set_params(model.params)
            y = data.y_train[shard]
            if attack and k in attack.clients and attack.kind == "label_flip":
                y = n_classes - 1 - y
            local.fit(
                data.x_train[shard], y, epochs=local_epochs, lr=lr, seed=seed * 1000 + r * 100 + k
            )
            change = flatten(local.params).astype(np.float64) - start
            if attack and k in attack.clients and attack.kind == "sign_flip":
                change = -attack.scale * change
            w = float(weights[k])
            if attack and k in attack.clients and attack.unclipped:
                deltas.append(change)
                vectors.append(np.append(change * w, w))
            else:
                deltas.append(clip_l2(change, clip))
                vectors.append(
                    strategy.contribution(change, w, clip=clip, n_trainers=n, rng=noise_rng)
                )
        length = len(start) + 1  # the delta and the weight

        def derive(bound: float, r: int = r, length: int = length) -> RoundParams:
            return RoundParams.create(
                roster,
                keys,
                length + strategy.extra_len(),
                chain_id=31337,
                jobs="0x" + "00" * 19 + "01",
                job_id=1,
                round=r,
                clip=bound,
                graph_seed=np.random.default_rng([seed, r]).bytes(32),
            )

        params = secure_params(
            derive, strategy.bound(clip, n, length), norm_proofs=norm_proofs, dim=len(start)
        )
        sessions = {}
        for i in roster:
            rng = np.random.default_rng([seed, r, i])
            k = i - 1
            evil = attack is not None and k in attack.clients
            session: Any
            if identities is None:  # plaintext FedAvg: the update, unsigned
                session = PlainTrainer(params, None, vectors[k], signed=False)
                sessions[i] = (roster[i], session)
                continue
            # what backs its weight: its shard as data set i (an overweight attacker claims 1)
            records = base if evil and attack.overweight else len(shards[k])  # type: ignore[union-attr]
            stake = normproofs.DataStake(i, max(records, 1), base) if norm_proofs else None
            if stake is not None and evil and attack.unclipped:  # type: ignore[union-attr]
                honest = clip_l2(deltas[k], clip) * weights[k]
                session = _norm_attacker(
                    params,
                    i,
                    identities[i],
                    vectors[k],
                    np.append(honest, weights[k]),
                    stake,
                    pairs[i],
                    rng,
                    clip,
                    attack.mismatch,  # type: ignore[union-attr]
                )
            else:
                session = strategy.trainer(
                    params,
                    i,
                    identities[i],
                    vectors[k],
                    pairs=pairs[i],
                    rng=rng,
                    clip=clip,
                    stake=stake,
                )
            sessions[i] = (roster[i], session)
        transport = MemoryTransport(sessions, clock, drop=(drop or {}).get(r))
        engine = RoundEngine(transport, clock=clock, stage_timeout=STAGE_TIMEOUT)
        aggregate = engine.run(strategy.aggregation(params, clip=clip, n_trainers=n), roster)
        if norm_proofs:
            history.refused.append(tuple(sorted(aggregate.refused)))
        if aggregate.multiplier is not None:
            accountant.step(aggregate.multiplier)
        if mode not in ("fedavg", "secagg"):  # the committee sees each delta: FoolsGold's input
            stacked_deltas = np.stack(deltas)
            history.delta_sums = (
                stacked_deltas
                if history.delta_sums is None
                else history.delta_sums + stacked_deltas
            )
        model.set_params(unflatten((start + aggregate.update).astype(np.float32), like))
        history.accuracy.append(model.accuracy(data.x_test, data.y_test))
        if dp:
            history.epsilon = accountant.epsilon(delta)
        history.participants.append(aggregate.counted)
    return model, history


STAGE_TIMEOUT = 10.0  # seconds of the hand-moved clock: only a trainer that never answers waits


def _strategy(
    mode: str,
    byzantine: int,
    dp: str | None,
    noise_multiplier: float,
    rng: np.random.Generator,
    rules: normproofs.ClaimRules | None,
) -> Strategy:
    if mode in robust.RULES:
        f = max(byzantine, 1) if mode == "trimmed_mean" else byzantine
        return Robust(mode, f=f, watch=SybilWatch())
    inner: Strategy = (
        SecAggFedAvg(norm_proofs=rules is not None, rules=rules) if mode == "secagg" else FedAvg()
    )
    return Private(inner, dp, noise_multiplier, rng=rng) if dp else inner


def _norm_attacker(
    params: RoundParams,
    slot: int,
    identity: Identity,
    real: NDArray[np.float64],
    honest: NDArray[np.float64],
    stake: normproofs.DataStake,
    pairs: PairKeys,
    rng: np.random.Generator,
    clip: float,
    mismatch: bool,
) -> SecAggTrainer:
    """A trainer that did not clip, in a norm-proof round: it proves its clipped vector
    (``honest``) and sends its ``real`` one, committing to the real one (refused: the
    proof is not for that commitment) or, with ``mismatch``, to the clipped one (its proof
    passes; the sum does not open the commitments)."""
    proven = normproofs.commit_input(params, honest, stake, rng)
    sent = normproofs.commit_input(params, real, stake, rng)
    commitment = proven.commitment if mismatch else sent.commitment

    def claim() -> NormClaim:
        proof = normproofs.prove_input(params, slot, clip, proven).proof
        return NormClaim(slot, stake.dataset, stake.records, commitment, proof)

    client = SecAggClient(params, slot, identity, sent.vector, pairs=pairs, rng=rng)
    return SecAggTrainer(client, claim)


@dataclass(frozen=True)
class _Dataset:
    owner: str
    record_count: int
    revoked: bool = False


def _datasets(
    roster: Mapping[int, str], shards: Sequence[NDArray[np.int64]]
) -> Callable[[int], normproofs.DatasetRecord]:
    """The Datasets contract as this simulation has it: trainer ``i``'s shard is data set
    ``i``, with as many records as the shard."""

    def get(dataset_id: int) -> normproofs.DatasetRecord:
        if dataset_id not in roster:
            raise UnknownDataset(f"no data set {dataset_id}")
        return _Dataset(roster[dataset_id], len(shards[dataset_id - 1]))

    return get
