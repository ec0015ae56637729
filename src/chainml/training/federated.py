"""Federated training in one process: local training, then one aggregation per round.

Each trainer starts from the global parameters, trains on its own shard and returns the
change (its delta), clipped to the job's L2 bound.  The aggregate is applied to the global
model.  Aggregation modes:

- ``fedavg``: plaintext mean weighted by sample counts;
- ``secagg``: the same weighted mean computed with SecAgg+ (``chainml.training.secagg``):
  each trainer masks ``n_k / n_max * delta_k`` and the server, which knows the public
  record counts (they are committed on chain), divides the sum by ``sum(n_k) / n_max``;
- ``median``, ``trimmed_mean``, ``krum``: robust aggregators over plaintext deltas, for
  jobs that send updates to a committee instead.

Attackers for the poisoning tests transform their own data or delta (``label_flip``,
``sign_flip``); an ``unclipped`` attacker skips the clip.

``norm_proofs=True`` (with ``secagg``): each trainer commits to its fixed-point input and
proves that its L2 norm is within the round's bound (``chainml.crypto.zk``, spec
docs/protocol/zk-norm.md); the aggregator verifies every proof before the masked stage and
drops a trainer whose proof fails (``History.refused``), then checks that the round's sum
opens the sum of the survivors' commitments.  An unclipped attacker commits to its real
(too long) input and presents a valid proof made for its clipped one: refused.  One that
commits to its clipped input and sends another (``Attack.mismatch``) passes its proof, and
the round's sum then fails the aggregate check (``zk.AggregateMismatch``).  Shortcut
of this one-process simulation: the commitments' blinding sum is added up directly instead
of travelling as 16-bit limbs through secure aggregation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from chainml.crypto import Identity, zk
from chainml.crypto.hazmat import fixedpoint
from chainml.training import privacy, robust
from chainml.training.data import Dataset
from chainml.training.errors import TrainingError
from chainml.training.models import MLP, Model, flatten, unflatten
from chainml.training.secagg import PairKeys, RoundParams, SecAggClient, clip_l2, run_in_memory

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
) -> tuple[Model, History]:
    """Train for ``rounds``; ``dp`` is None, "central" or "distributed" (Gaussian noise of
    ``noise_multiplier * clip`` on the sum; ε at ``delta`` in the history)."""
    if mode not in MODES:
        raise TrainingError(f"mode is one of {MODES}")
    if norm_proofs and (mode != "secagg" or dp):
        raise TrainingError("norm_proofs needs mode 'secagg' without dp")
    if dp not in (None, "central", "distributed") or (dp and mode not in ("fedavg", "secagg")):
        raise TrainingError("dp is 'central' or 'distributed', with fedavg or secagg")
    accountant = privacy.RdpAccountant()
    noise_rng = np.random.default_rng([seed, 99])
    model = (make_model or (lambda: MLP(data.n_features, data.n_classes, (64,), seed=seed)))()
    like = model.params
    history = History()
    n = len(shards)
    counts = np.array([len(s) for s in shards], dtype=np.float64)
    n_classes = data.n_classes
    if mode == "secagg" and identities is None:
        identities = {i: Identity.generate() for i in range(1, n + 1)}
    pairs = {i: PairKeys(identity.x25519) for i, identity in (identities or {}).items()}
    for r in range(1, rounds + 1):
        start = flatten(model.params).astype(np.float64)
        deltas = []
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
            unclipped = attack and k in attack.clients and attack.unclipped
            deltas.append(change if unclipped else clip_l2(change, clip))
        weights = counts / counts.max()  # public record counts; scaled sums keep their clip
        if dp == "distributed":  # each trainer noises its own weighted, clipped delta
            deltas = [
                d + privacy.distributed_noise(len(d), clip, noise_multiplier, n, noise_rng) / w
                for d, w in zip(deltas, weights, strict=True)
            ]
        if mode == "fedavg":
            weighted_sum = np.tensordot(weights, np.stack(deltas), axes=1)
            participants = tuple(range(1, n + 1))
        elif mode == "secagg":
            assert identities is not None
            bound = clip  # SecAgg's range check; distributed noise needs room above the clip
            if dp == "distributed":
                bound += privacy.noise_headroom(noise_multiplier, clip, n, len(start))
            params = RoundParams.create(
                {i: identities[i].address for i in range(1, n + 1)},
                {i: identities[i].x25519.public_bytes for i in range(1, n + 1)},
                len(start),
                chain_id=31337,
                jobs="0x" + "00" * 19 + "01",
                job_id=1,
                round=r,
                clip=bound,
                graph_seed=np.random.default_rng([seed, r]).bytes(32),
            )
            inputs = [deltas[i - 1] * weights[i - 1] for i in range(1, n + 1)]
            round_drop = {k: list(v) for k, v in ((drop or {}).get(r) or {}).items()}
            proven: dict[int, tuple[bytes, zk.CommitmentOpening]] = {}
            if norm_proofs:
                liar = bool(attack and attack.mismatch)
                inputs, proven, refused = _prove_and_verify(
                    params, identities, inputs, seed, r, mismatch=liar
                )
                history.refused.append(refused)
                round_drop["masked"] = [*round_drop.get("masked", []), *refused]
            clients = {
                i: SecAggClient(
                    params,
                    i,
                    identities[i],
                    inputs[i - 1],
                    pairs=pairs[i],  # each trainer keeps its pair keys across the job
                    rng=np.random.default_rng([seed, r, i]),
                )
                for i in range(1, n + 1)
            }
            result = run_in_memory(params, clients, drop=round_drop)
            participants = result.survivors
            weighted_sum = result.total
            if norm_proofs:
                words = np.frombuffer(result.transcript.total, dtype="<u4")[: len(start)]
                zk.verify_aggregate(
                    [proven[i][0] for i in participants],
                    words.view(np.int32).astype(np.int64),
                    sum(proven[i][1].blinding for i in participants),
                )
        if mode in ("fedavg", "secagg"):
            if dp == "central":
                weighted_sum = weighted_sum + privacy.central_noise(
                    len(start), clip, noise_multiplier, noise_rng
                )
                accountant.step(noise_multiplier)
            elif dp == "distributed":
                accountant.step(
                    privacy.effective_multiplier(noise_multiplier, len(participants), n)
                )
            update = weighted_sum / sum(weights[i - 1] for i in participants)
        else:
            f = max(byzantine, 1) if mode == "trimmed_mean" else byzantine
            update = robust.aggregate(mode, np.stack(deltas), f)
            participants = tuple(range(1, n + 1))
        if mode not in ("fedavg", "secagg"):  # the committee sees each delta: FoolsGold's input
            stacked_deltas = np.stack(deltas)
            history.delta_sums = (
                stacked_deltas
                if history.delta_sums is None
                else history.delta_sums + stacked_deltas
            )
        model.set_params(unflatten((start + update).astype(np.float32), like))
        history.accuracy.append(model.accuracy(data.x_test, data.y_test))
        if dp:
            history.epsilon = accountant.epsilon(delta)
        history.participants.append(participants)
    return model, history


def _norm_context(params: RoundParams, trainer: str) -> zk.NormContext:
    return zk.NormContext(
        params.chain_id, params.jobs, params.job_id, params.round, params.attempt, trainer
    )


def _prove_and_verify(
    params: RoundParams,
    identities: Mapping[int, Identity],
    inputs: Sequence[NDArray[np.float64]],
    seed: int,
    round_no: int,
    *,
    mismatch: bool = False,
) -> tuple[
    list[NDArray[np.float64]], dict[int, tuple[bytes, zk.CommitmentOpening]], tuple[int, ...]
]:
    """Each trainer commits to its fixed-point input and proves its norm (an unclipped one
    presents the proof of its clipped input); the aggregator verifies.  Returns the inputs
    as the SecAgg+ clients will encode them (exactly: already on the fixed-point grid),
    the commitments and openings, and the trainers refused."""
    f, dim = params.frac_bits, len(inputs[0])
    norm = zk.NormParams(dim, zk.bound_sq_for(params.clip, f, dim))
    room = params.clip - (np.sqrt(dim) + 1) / (1 << f)  # rounding stays within the clip
    exact: list[NDArray[np.float64]] = []
    proven: dict[int, tuple[bytes, zk.CommitmentOpening]] = {}
    submitted = []
    for i, value in enumerate(inputs, start=1):
        rng = np.random.default_rng([seed, round_no, i, 7])
        ctx = _norm_context(params, identities[i].address)
        honest = fixedpoint.encode(clip_l2(value, room), f, rng).view(np.int32)
        x = honest
        if np.linalg.norm(value) > params.clip * (1 + 1e-9):  # a trainer that did not clip
            x = fixedpoint.encode(value, f, rng).view(np.int32)
        commitment, opening = zk.commit(honest)
        proof = zk.prove_norm(ctx, norm, honest, opening)
        if x is not honest and not mismatch:  # the attacker commits to what it really sends
            commitment, opening = zk.commit(x)
        submitted.append((ctx, commitment, proof))
        proven[i] = (commitment, opening)
        exact.append(x.astype(np.float64) / (1 << f))
    refused = tuple(k + 1 for k in zk.invalid_norm_proofs(norm, submitted))  # the aggregator
    return exact, proven, refused
