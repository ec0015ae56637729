"""The round engine on its own: every strategy's round over an in-memory transport that an
attacker controls (dropping, delaying, reordering, replaying and forging messages) and a
clock the test moves, no processes.  What it promises: a stage closes when everyone it
reached has answered or when its time is up, not before and not later; a late, replayed
or forged message is refused and the round goes on without it; the aggregate is the
weighted mean of the counted trainers' deltas, the weight coordinate summed with them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from chainml.crypto import Identity
from chainml.training.engine import (
    Arrival,
    FedAvg,
    ManualClock,
    MemoryTransport,
    PlainUpdate,
    Private,
    Robust,
    RoundEngine,
    SecAggFedAvg,
    Strategy,
    SybilWatch,
    identify,
    strategy_for,
)
from chainml.training.engine.dp import dp_entry
from chainml.training.job import JobConfig
from chainml.training.models import flatten
from chainml.training.privacy import RdpAccountant
from chainml.training.secagg import (
    KeyAdvert,
    MaskedInput,
    PairKeys,
    RoundParams,
    TooFewSurvivors,
    clip_l2,
)

N, DIM, CLIP, TIMEOUT = 5, 12, 1.0, 10.0
IDS = {i: Identity.generate() for i in range(1, N + 1)}
ROSTER = {i: IDS[i].address for i in IDS}
PAIRS = {i: PairKeys(IDS[i].x25519) for i in IDS}


def _params(strategy: Strategy, round_no: int = 1) -> RoundParams:
    return RoundParams.create(
        ROSTER,
        {i: IDS[i].x25519.public_bytes for i in IDS},
        DIM + 1 + strategy.extra_len(),
        chain_id=31337,
        jobs="0x" + "00" * 19 + "01",
        job_id=1,
        round=round_no,
        clip=strategy.bound(CLIP, N, DIM + 1),
        graph_seed=bytes(range(32)),
    )


def _updates(seed: int = 0) -> tuple[dict[int, np.ndarray], dict[int, float]]:
    rng = np.random.default_rng(seed)
    deltas = {i: rng.normal(size=DIM) * 0.3 for i in IDS}
    weights = {i: 0.2 * i for i in IDS}
    return deltas, weights


def _round(
    strategy: Strategy,
    *,
    network: Any = None,
    drop: dict[str, list[int]] | None = None,
    unreachable: Any = None,
    sessions: dict[int, Any] | None = None,
    round_no: int = 1,
    seed: int = 0,
    stage_timeouts: dict[str, float] | None = None,
):
    """One round; returns the aggregate, each stage's (name, seconds, answered, sent to),
    the clock and the contributions."""
    params = _params(strategy, round_no)
    deltas, weights = _updates(seed)
    vectors = {
        i: strategy.contribution(deltas[i], weights[i], clip=CLIP, n_trainers=N) for i in IDS
    }
    trainers = {
        i: (
            ROSTER[i],
            (sessions or {}).get(i)
            or strategy.trainer(
                params, i, IDS[i], vectors[i], pairs=PAIRS[i], rng=np.random.default_rng(i)
            ),
        )
        for i in IDS
    }
    clock = ManualClock(100.0)
    transport = MemoryTransport(
        trainers, clock, drop=drop, network=network, unreachable=unreachable
    )
    stages: list[tuple[str, float, int, int]] = []
    engine = RoundEngine(
        transport,
        clock=clock,
        stage_timeout=TIMEOUT,
        stage_timeouts=stage_timeouts,
        on_stage=lambda *a: stages.append(a),
    )
    aggregate = engine.run(strategy.aggregation(params, clip=CLIP, n_trainers=N), ROSTER)
    return aggregate, stages, clock, vectors


def _mean(vectors: dict[int, np.ndarray], counted) -> np.ndarray:
    rows = np.stack([vectors[i] for i in counted])
    return rows[:, :-1].sum(axis=0) / rows[:, -1].sum()


def test_a_secure_round_is_the_weighted_mean_and_waits_for_nobody():
    aggregate, stages, clock, vectors = _round(SecAggFedAvg())
    assert aggregate.counted == (1, 2, 3, 4, 5)
    assert aggregate.weight == pytest.approx(sum(0.2 * i for i in IDS), abs=1e-4)
    assert np.allclose(aggregate.update, _mean(vectors, IDS), atol=1e-4)
    assert [s[0] for s in stages] == ["keys", "shares", "masked", "consistency", "unmask"]
    assert all(seconds == 0 and got == sent == N for _, seconds, got, sent in stages)
    assert clock() == 100.0  # everyone answered at once: no stage waited


def test_the_weight_coordinate_is_the_node_s():
    """What a trainer sends is ``JobConfig.local_update``'s vector (a trainer node's):
    the clipped delta times the weight ``min(1, records / weight_base)``, then the weight."""
    delta = np.arange(1.0, DIM + 1)
    vector = SecAggFedAvg().contribution(delta, 0.25, clip=CLIP, n_trainers=N)
    assert np.allclose(vector, np.append(clip_l2(delta, CLIP) * 0.25, 0.25))
    assert np.linalg.norm(vector[:-1]) == pytest.approx(CLIP * 0.25)
    config = JobConfig(n_features=6, n_classes=3, hidden=(4,), epochs=2, weight_base=400)
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(100, 6)), rng.integers(0, 3, size=100)
    start = config.initial_model().params
    node = config.local_update(start, x, y, round_no=2, clip=0.5)
    model = config.initial_model()
    model.fit(x, y, epochs=config.epochs, lr=config.lr, seed=config.seed * 1000 + 2)
    change = flatten(model.params).astype(np.float64) - flatten(start).astype(np.float64)
    simulated = SecAggFedAvg().contribution(change, 100 / 400, clip=0.5, n_trainers=N)
    assert np.array_equal(simulated, node)


def test_a_late_trainer_is_a_dropout_after_exactly_the_stage_timeout():
    """The attacker holds trainer 2's masked input back 15 s: the masked stage closes at
    its 10 s timeout without it, and when it arrives (a stage later) it is refused."""

    def network(stage: str, client: int, message: Any) -> float | None:
        return 15.0 if client == 2 and isinstance(message, MaskedInput) else 0.0

    aggregate, stages, clock, vectors = _round(SecAggFedAvg(), network=network)
    assert aggregate.counted == (1, 3, 4, 5)
    assert np.allclose(aggregate.update, _mean(vectors, (1, 3, 4, 5)), atol=1e-4)
    durations = {name: seconds for name, seconds, _, _ in stages}
    assert durations["masked"] == TIMEOUT
    assert sum(durations.values()) == TIMEOUT  # no other stage waited
    assert clock() == 100.0 + TIMEOUT


def test_a_stage_with_its_own_timeout_waits_that_long_and_no_other_does():
    """A norm-proof round's masked stage waits longer for the proofs (the node's
    ``proof_timeout``): an input 15 s late is counted under a 40 s masked stage, one held
    back past it is a dropout at exactly 40 s, and no other stage waits."""
    late = {2: 15.0, 3: 45.0}

    def network(stage: str, client: int, message: Any) -> float | None:
        return late.get(client, 0.0) if isinstance(message, MaskedInput) else 0.0

    aggregate, stages, _, vectors = _round(
        SecAggFedAvg(), network=network, stage_timeouts={"masked": 40.0}
    )
    assert aggregate.counted == (1, 2, 4, 5)
    assert np.allclose(aggregate.update, _mean(vectors, (1, 2, 4, 5)), atol=1e-4)
    durations = {name: seconds for name, seconds, _, _ in stages}
    assert durations.pop("masked") == 40.0
    assert set(durations.values()) == {0.0}
    with pytest.raises(ValueError):
        RoundEngine(
            MemoryTransport({}, ManualClock()),
            clock=ManualClock(),
            stage_timeout=TIMEOUT,
            stage_timeouts={"masked": 0.0},
        )


def test_reordered_and_delayed_delivery_within_the_timeout_changes_nothing():
    """Every reply delayed by a different amount below the timeout (so they arrive in
    another order than sent): the same survivors and the same sum as in order."""
    rng = np.random.default_rng(7)
    delays = {(s, c): float(rng.uniform(0, 9)) for s in ("keys", "shares", "masked",
              "consistency", "unmask") for c in IDS}  # fmt: skip
    shuffled, stages, _, _ = _round(
        SecAggFedAvg(), network=lambda stage, client, m: delays[(stage, client)]
    )
    in_order, _, _, _ = _round(SecAggFedAvg())
    assert shuffled.counted == in_order.counted == (1, 2, 3, 4, 5)
    assert np.array_equal(shuffled.total, in_order.total)
    for name, seconds, got, _ in stages:  # each stage waits for its slowest reply only
        assert seconds == pytest.approx(max(delays[(name, c)] for c in IDS))
        assert got == N


def test_a_trainer_the_aggregator_cannot_reach_is_not_waited_for():
    aggregate, stages, clock, _ = _round(
        SecAggFedAvg(), unreachable=lambda stage, client: client == 4 and stage == "masked"
    )
    assert aggregate.counted == (1, 2, 3, 5)
    assert clock() == 100.0
    assert [sent for name, _, _, sent in stages if name == "masked"] == [N - 1]


def test_lost_messages_and_crashed_trainers_leave_the_rest_counted():
    lost = {(1, "keys")}  # trainer 1's advert: lost

    def network(stage: str, client: int, message: Any) -> float | None:
        return None if (client, stage) in lost else 0.0

    aggregate, _, clock, _ = _round(SecAggFedAvg(), network=network)
    assert aggregate.counted == (2, 3, 4, 5)
    assert clock() == 100.0 + TIMEOUT  # the keys stage timed out waiting for 1
    crashed, _, clock, _ = _round(SecAggFedAvg(), drop={"masked": [5]})
    assert crashed.counted == (1, 2, 3, 4)
    assert clock() == 100.0  # a crashed trainer is unreachable: nobody waits for it


def test_too_few_survivors_fail_the_round():
    with pytest.raises(TooFewSurvivors):
        _round(SecAggFedAvg(), drop={"masked": [1, 2, 3]})


class _Replayer:
    """A session that also sends its advert a second time, and another trainer's."""

    def __init__(self, inner: Any, other: Any) -> None:
        self.inner, self.other = inner, other

    def open(self) -> list[Any]:
        mine = self.inner.open()
        return [*mine, *mine, *self.other.open()]

    def handle(self, message: Any) -> list[Any]:
        return self.inner.handle(message)


def test_replayed_and_forged_messages_are_refused():
    """Trainer 1's transport sends its advert twice and trainer 2's advert as its own:
    the replay is refused by the strategy, the forgery by the engine (its claimed sender
    is not its signer), and trainer 2's own advert, which also arrives, counts once."""
    strategy = SecAggFedAvg()
    params = _params(strategy)
    deltas, weights = _updates()

    def session(i: int) -> Any:
        vector = strategy.contribution(deltas[i], weights[i], clip=CLIP, n_trainers=N)
        return strategy.trainer(
            params, i, IDS[i], vector, pairs=PAIRS[i], rng=np.random.default_rng(i)
        )

    aggregate, stages, _, _ = _round(strategy, sessions={1: _Replayer(session(1), session(2))})
    assert aggregate.counted == (1, 2, 3, 4, 5)
    advert = KeyAdvert.__new__(KeyAdvert)
    object.__setattr__(advert, "sender", 2)
    assert identify(Arrival(ROSTER[1], advert), ROSTER) is None
    assert identify(Arrival(ROSTER[2], advert), ROSTER) == 2
    plain = PlainUpdate(np.zeros(3, dtype=np.float32), b"")
    assert identify(Arrival(ROSTER[3].upper().replace("0X", "0x"), plain), ROSTER) == 3
    assert identify(Arrival("0x" + "00" * 20, plain), ROSTER) is None


def test_norm_proof_rounds_count_only_proven_inputs():
    """A norm-proof round through the engine: every claim checked at the masked stage's
    close; a trainer that sends no claim is not counted, the others are."""
    from chainml.training import normproofs

    class NoClaim:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def open(self) -> list[Any]:
            return self.inner.open()

        def handle(self, message: Any) -> list[Any]:
            return [
                m for m in self.inner.handle(message) if not isinstance(m, normproofs.NormClaim)
            ]

    def lookup(dataset: int) -> Any:
        from types import SimpleNamespace

        return SimpleNamespace(owner=ROSTER[dataset], record_count=1000, revoked=False)

    rules = normproofs.ClaimRules(CLIP, 1000, lookup)
    strategy = SecAggFedAvg(norm_proofs=True, rules=rules)
    base = strategy.bound(CLIP, N, DIM + 1)
    params = normproofs_params = _params(strategy)
    from chainml.training.engine import secure_params

    params = secure_params(
        lambda bound: RoundParams.create(
            ROSTER,
            {i: IDS[i].x25519.public_bytes for i in IDS},
            DIM + 1 + strategy.extra_len(),
            chain_id=31337,
            jobs="0x" + "00" * 19 + "01",
            job_id=1,
            round=1,
            clip=bound,
            graph_seed=bytes(range(32)),
        ),
        base,
        norm_proofs=True,
        dim=DIM,
    )
    assert params.clip >= normproofs_params.clip
    deltas, _ = _updates()
    trainers = {}
    for i in IDS:
        stake = normproofs.DataStake(i, 200 * i, 1000)
        vector = strategy.contribution(deltas[i], stake.weight, clip=CLIP, n_trainers=N)
        session = strategy.trainer(
            params, i, IDS[i], vector, pairs=PAIRS[i], rng=np.random.default_rng(i),
            clip=CLIP, stake=stake,
        )  # fmt: skip
        trainers[i] = (ROSTER[i], NoClaim(session) if i == 3 else session)
    clock = ManualClock()
    engine = RoundEngine(MemoryTransport(trainers, clock), clock=clock, stage_timeout=TIMEOUT)
    aggregate = engine.run(strategy.aggregation(params, clip=CLIP, n_trainers=N), ROSTER)
    assert aggregate.counted == (1, 2, 4, 5)
    assert aggregate.refused == {3: "no norm claim"}
    assert clock() == TIMEOUT  # the masked stage waited for 3's claim
    record = aggregate.record(lambda blob: f"cid-{len(blob)}")
    assert set(record["norm"]["claims"]) == {"1", "2", "4", "5"}
    assert record["norm"]["refused"] == {"3": {"reason": "no norm claim", "claim": ""}}


def test_a_robust_round_refuses_bad_updates_and_applies_the_rule():
    watch = SybilWatch()
    strategy = Robust("median", watch=watch)
    deltas, weights = _updates()

    class Bad:
        def __init__(self, message: PlainUpdate) -> None:
            self.message = message

        def open(self) -> list[Any]:
            return [self.message]

        def handle(self, message: Any) -> list[Any]:
            return []

    too_long = np.append(np.full(DIM, 5.0) * weights[1], weights[1]).astype(np.float32)
    unsigned = PlainUpdate(
        strategy.contribution(deltas[2], weights[2], clip=CLIP, n_trainers=N).astype(np.float32),
        b"\x00" * 65,
    )
    from chainml.training.engine.plain import sign_update

    params = _params(strategy)
    aggregate, _, clock, vectors = _round(
        strategy, sessions={1: Bad(sign_update(params, IDS[1], too_long))}
    )
    assert aggregate.counted == (2, 3, 4, 5)
    steps = np.stack([vectors[i][:-1] / vectors[i][-1] for i in (2, 3, 4, 5)])
    assert np.allclose(aggregate.update, np.median(steps, axis=0), atol=1e-6)
    assert clock() == 100.0 + TIMEOUT  # 1 never sent a valid update: the stage timed out
    record = aggregate.record(lambda blob: "unused")
    assert record["aggregation"] == "median" and set(record["signatures"]) == {"2", "3", "4", "5"}
    assert sorted(watch.steps) == [2, 3, 4, 5]
    forged, _, _, _ = _round(strategy, sessions={2: Bad(unsigned)}, round_no=2)
    assert forged.counted == (1, 3, 4, 5)


def test_a_robust_round_below_quorum_fails():
    with pytest.raises(TooFewSurvivors):
        _round(Robust("krum"), drop={"keys": [1, 2, 3]})


def test_fedavg_in_plaintext_is_the_secure_round_s_sum():
    plain, _, _, vectors = _round(FedAvg())
    secure, _, _, _ = _round(SecAggFedAvg())
    assert np.allclose(plain.update, secure.update, atol=1e-4)
    assert np.allclose(plain.update, _mean(vectors, IDS), atol=1e-5)


@pytest.mark.parametrize("mode", ["central", "distributed"])
def test_dp_noises_the_sum_and_charges_the_survivors_multiplier(mode: str):
    strategy = Private(SecAggFedAvg(), mode, 2.0, rng=np.random.default_rng(1))
    quiet, _, _, _ = _round(SecAggFedAvg(), drop={"masked": [5]})
    noisy, _, _, _ = _round(strategy, drop={"masked": [5]})
    assert noisy.counted == quiet.counted == (1, 2, 3, 4)
    expected = 2.0 if mode == "central" else 2.0 * np.sqrt(4 / 5)
    assert noisy.multiplier == pytest.approx(expected)
    assert not np.allclose(noisy.total, quiet.total, atol=1e-3)  # the noise is there
    assert noisy.weight == pytest.approx(quiet.weight, abs=1e-4)  # never on the weight
    if mode == "distributed":  # the secure range has room for each trainer's share
        assert strategy.bound(CLIP, N, DIM + 1) > SecAggFedAvg().bound(CLIP, N, DIM + 1)
    entry = dp_entry(mode, 2.0, 1e-5, [2.0, expected])
    accountant = RdpAccountant()
    accountant.step(2.0)
    accountant.step(expected)
    assert entry["epsilon"] == accountant.epsilon(1e-5) and entry["rounds"] == 2


def test_a_job_s_configuration_names_its_strategy():
    secure = strategy_for(JobConfig(n_features=4, n_classes=2))
    assert isinstance(secure, SecAggFedAvg) and not secure.norm_proofs
    private = strategy_for(JobConfig(n_features=4, n_classes=2, dp="central"))
    assert isinstance(private, Private) and private.mode == "central"
    robust = strategy_for(JobConfig(n_features=4, n_classes=2, aggregation="krum"))
    assert isinstance(robust, Robust) and robust.name == "krum"
    config = JobConfig(n_features=4, n_classes=2, dp="distributed", noise_multiplier=1.5)
    assert strategy_for(config).bound(2.0, 7, config.vector_len()) == pytest.approx(
        config.secagg_bound(2.0, 7)
    )


def test_the_engine_refuses_a_non_positive_timeout():
    clock = ManualClock()
    with pytest.raises(ValueError):
        RoundEngine(MemoryTransport({}, clock), clock=clock, stage_timeout=0)
    with pytest.raises(ValueError):
        clock.advance(-1)
