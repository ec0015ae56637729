"""Differential privacy for a job across node processes: each trainer node adds its share
of the Gaussian noise before masking, the aggregator charges a Rényi-DP accountant per
round (rebuilt from the job's round records, so a restart does not reset it) and reports
the job's ε in the round record, the metrics and the dashboard."""

from __future__ import annotations

import dataclasses
import json
import math
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import requests

from chainml.crypto.hazmat import fixedpoint
from chainml.ledger.anvil import stop_process
from chainml.ledger.bindings import JobParams
from chainml.ledger.devchain import DevChainProcess
from chainml.node.access import LedgerChainView
from chainml.node.rounds import AggregatorRole, audit_round, check_job_params, roster_of
from chainml.storage.access import unwrap_as_grantee
from chainml.storage.local import LocalBlobStore
from chainml.storage.sealed import load_manifest, open_artifact
from chainml.training import privacy
from chainml.training.data import dirichlet_partition, load
from chainml.training.errors import TrainingError
from chainml.training.job import JobConfig
from chainml.training.models import flatten, from_safetensors
from chainml.training.secagg import ProtocolViolation, RoundTranscript
from tests.node.test_rounds import ETHER, TRAINERS, _network, _start, _state, _wait
from tests.protocol.schemas import RECORD

Z = 0.5
CLIP_BOUND = 1_000  # thousandths: C = 1
DP_CONFIG = JobConfig(
    n_features=64, n_classes=10, hidden=(16,), epochs=2, dp="distributed", noise_multiplier=Z
)


def _accountant_epsilon(multipliers: list[float], delta: float) -> float:
    accountant = privacy.RdpAccountant()
    for z in multipliers:
        accountant.step(z)
    return accountant.epsilon(delta)


def _role(store: LocalBlobStore, cids: dict[int, str]) -> AggregatorRole:
    """An aggregator's accountant over round records in ``store`` (no chain: the records'
    CIDs as the chain would give them)."""
    role = AggregatorRole.__new__(AggregatorRole)
    role.store = store
    role.cm = SimpleNamespace(  # type: ignore[assignment]
        jobs=SimpleNamespace(round=lambda job_id, r: SimpleNamespace(aggregate_cid=cids[r]))
    )
    role.dp_spent = {}
    return role


def test_the_aggregator_s_accountant_survives_a_restart(tmp_path: Path):
    store = LocalBlobStore(tmp_path / "store")
    cids: dict[int, str] = {}
    roster = {i: f"0x{i:040x}" for i in range(1, 5)}
    role = _role(store, cids)
    for round_no, survivors in ((1, 4), (2, 3)):
        entry = role._privacy(7, round_no, DP_CONFIG, survivors, roster)
        cids[round_no] = store.put(json.dumps({"round": round_no, "dp": entry}).encode())
    assert entry["multiplier"] == pytest.approx(Z * math.sqrt(3 / 4))
    assert entry["rounds"] == 2 and entry["mode"] == "distributed" and entry["delta"] == 1e-5
    restarted = _role(store, cids)  # nothing in memory: the records on chain say it all
    third = restarted._privacy(7, 3, DP_CONFIG, 4, roster)
    expected = _accountant_epsilon([Z, Z * math.sqrt(3 / 4), Z], 1e-5)
    assert third["epsilon"] == pytest.approx(expected, rel=1e-12)
    assert third["epsilon"] > entry["epsilon"]
    # a record without its DP entry cannot be accounted for: refused, not skipped
    cids[1] = store.put(json.dumps({"round": 1}).encode())
    with pytest.raises(TrainingError):
        _role(store, cids)._privacy(7, 3, DP_CONFIG, 4, roster)


@contextmanager
def _dp_job(tmp_path: Path, config: JobConfig, rounds: int):
    """Four trainer nodes and an aggregator node run ``config`` for ``rounds`` rounds; yields
    the chain, the store, the aggregator, the job, its roster and each trainer's weight."""
    with DevChainProcess(tmp_path / "chain") as chain, ExitStack() as running:
        client, cm, nodes, store = _network(tmp_path, chain.url, config)
        aggregator = nodes[TRAINERS]
        # each trainer's weight, as _network split the records
        shards = dirichlet_partition(load("digits", seed=0).y_train, TRAINERS, 0.5, seed=0)
        weight_of = {
            node.identity.address.lower(): min(1.0, len(shard) / config.weight_base)
            for node, shard in zip(nodes, shards, strict=False)
        }
        for node in nodes:
            running.callback(stop_process, _start(node), 20)
        z, exponent = config.chain_dp()
        params = JobParams(
            aggregator=aggregator.identity.address,
            rounds=rounds,
            min_participants=TRAINERS - 1,
            max_participants=TRAINERS,
            min_stake=ETHER,
            challenge_window=3600,
            clip_bound=CLIP_BOUND,
            dp_noise_multiplier=z,
            dp_delta_exponent=exponent,
            config_hash=config.config_hash,
            config_cid=store.put(config.encode()),
        )
        job_id = cm.jobs.create_job(aggregator.identity.account, params, ETHER)
        on_chain = cm.jobs.job(job_id).params  # z = 0.5, δ = 1e-5: the promise is on chain
        assert (on_chain.dp_noise_multiplier, on_chain.dp_delta_exponent) == (500, 5)
        _wait(lambda: cm.jobs.job(job_id).rounds_done == rounds, timeout=90)
        yield cm, store, aggregator, job_id, roster_of(cm, job_id), weight_of


def _published_sum(store: LocalBlobStore, config: JobConfig, record: dict) -> np.ndarray:
    """The round's sum as the transcript publishes it, decoded."""
    transcript = RoundTranscript.decode(store.get(record["transcript"]))
    return fixedpoint.decode(
        np.frombuffer(transcript.total, dtype="<u4")[: config.vector_len()],
        fixedpoint.fraction_bits(TRAINERS, record["params"]["clip"]),
    )


def test_a_distributed_dp_job_across_processes_reports_its_epsilon(tmp_path: Path):
    rounds = 2
    with _dp_job(tmp_path, DP_CONFIG, rounds) as (cm, store, aggregator, job_id, roster, weight_of):
        charged = []
        for r in range(1, rounds + 1):
            counted = audit_round(cm, store, job_id, r)  # the noisy sum checks out
            record = json.loads(store.get(cm.jobs.round(job_id, r).aggregate_cid))
            RECORD.validate(record)  # docs/protocol/schemas/round-record-2.schema.json
            # SecAgg+'s range had room for the noise: C, the weight, and the trainers' noise
            bound = record["params"]["clip"]
            assert bound == pytest.approx(DP_CONFIG.secagg_bound(CLIP_BOUND / 1000, TRAINERS))
            # the published sum: the survivors' shares of noise on the delta part (variance
            # (z C)² s / n, far above the clipped steps' own spread), the weights untouched
            total = _published_sum(store, DP_CONFIG, record)
            weights = sum(weight_of[roster[i].lower()] for i in counted)
            assert abs(total[-1] - weights) < 1e-4
            spread = Z * (CLIP_BOUND / 1000) * math.sqrt(len(counted) / TRAINERS)
            assert np.std(total[:-1]) == pytest.approx(spread, rel=0.12)
            dp = record["dp"]
            charged.append(privacy.effective_multiplier(Z, len(counted), TRAINERS))
            assert dp["mode"] == "distributed" and dp["rounds"] == r
            assert dp["multiplier"] == pytest.approx(charged[-1])
            assert dp["epsilon"] == pytest.approx(_accountant_epsilon(charged, 1e-5), rel=1e-9)
        epsilon = dp["epsilon"]
        assert math.isfinite(epsilon) and epsilon > 0
        assert _state(aggregator, f"epsilon:{job_id}:{rounds}") == repr(epsilon)
        metrics = requests.get(aggregator.url + "/metrics", timeout=5).text
        line = next(m for m in metrics.splitlines() if m.startswith("chainml_job_epsilon{"))
        assert line.startswith(f'chainml_job_epsilon{{job="{job_id}"}}')
        assert float(line.split()[-1]) == pytest.approx(epsilon)
        page = requests.get(aggregator.url + "/", timeout=10).text
        rows = page[page.index('id="rounds"') :]
        assert "ε (DP)" in rows and f"{epsilon:.3f}" in rows
        accuracy = _state(aggregator, f"accuracy:{job_id}:{rounds}")
        assert accuracy is not None and 0.0 <= float(accuracy) <= 1.0


def test_a_central_dp_job_noises_the_model_and_not_the_published_sum(tmp_path: Path):
    """Central DP across processes: the trainers send no noise, so the published sum is
    the clipped steps alone; the aggregator adds N(0, (zC)²) after unmasking, so the new
    model (opened with the aggregator's job key) is the old one plus the sum and that
    noise, over the total weight; the record charges z for the round."""
    config = dataclasses.replace(DP_CONFIG, dp="central")
    with _dp_job(tmp_path, config, 1) as (cm, store, aggregator, job_id, roster, weight_of):
        counted = audit_round(cm, store, job_id, 1)
        record = json.loads(store.get(cm.jobs.round(job_id, 1).aggregate_cid))
        assert record["params"]["clip"] == pytest.approx(CLIP_BOUND / 1000 + 1.0)  # no headroom
        total = _published_sum(store, config, record)
        weight = sum(weight_of[roster[i].lower()] for i in counted)
        assert abs(total[-1] - weight) < 1e-4
        assert np.std(total[:-1]) < 0.1 * Z * CLIP_BOUND / 1000  # no noise in what is published
        view = LedgerChainView(cm)
        bundle = store.get(_state(aggregator, f"job-key:{job_id}") or "")
        key = unwrap_as_grantee(
            view, bundle, aggregator.identity.x25519, job_id, aggregator.identity.address
        )
        sealed = open_artifact(store, key, load_manifest(store, record["model_manifest"]))
        new = flatten(from_safetensors(sealed)).astype(np.float64)
        old = flatten(config.initial_model().params).astype(np.float64)
        noise = (new - old) * weight - total[:-1]
        assert np.std(noise) == pytest.approx(Z * CLIP_BOUND / 1000, rel=0.12)
        assert abs(np.mean(noise)) < 0.1
        dp = record["dp"]
        assert (dp["mode"], dp["multiplier"], dp["rounds"]) == ("central", Z, 1)
        assert dp["epsilon"] == pytest.approx(_accountant_epsilon([Z], 1e-5), rel=1e-9)


def test_a_job_s_dp_parameters_on_chain_must_be_its_configuration_s():
    """A trainer takes no part in, and an aggregator does not serve, a job whose DP fields on
    chain say other than its configuration: no noise, less noise, another δ, or DP fields
    on a job whose configuration adds none."""
    base = JobParams(
        aggregator="0x" + "11" * 20,
        rounds=1,
        min_participants=1,
        max_participants=2,
        min_stake=1,
        challenge_window=60,
        clip_bound=CLIP_BOUND,
        dp_noise_multiplier=500,
        dp_delta_exponent=5,
        config_hash=DP_CONFIG.config_hash,
    )
    check_job_params(DP_CONFIG, base)
    plain = JobConfig(n_features=64, n_classes=10, hidden=(16,), epochs=2)
    check_job_params(plain, dataclasses.replace(base, dp_noise_multiplier=0, dp_delta_exponent=0))
    for wrong in ((0, 0), (499, 5), (500, 6)):
        with pytest.raises(ProtocolViolation, match="DP parameters"):
            check_job_params(
                DP_CONFIG,
                dataclasses.replace(base, dp_noise_multiplier=wrong[0], dp_delta_exponent=wrong[1]),
            )
    with pytest.raises(ProtocolViolation, match="DP parameters"):
        check_job_params(plain, base)
