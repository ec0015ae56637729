"""The demo's flow, end to end on a real chain process: what `make demo` runs, norm-bound
proofs included. One run (about a minute) serves every test here."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from chainml.ledger.bindings import JobState
from chainml.node.demo import DemoResult, run
from chainml.storage.local import LocalBlobStore


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, DemoResult]:
    path = tmp_path_factory.mktemp("demo")
    return path, run(path, rounds=2)


def test_demo_runs_a_real_job_and_pays_out_every_wei(demo: tuple[Path, DemoResult]):
    tmp_path, result = demo
    assert result.job_state == JobState.FINALIZED
    assert sum(result.rewards.values()) + result.refund == result.escrow
    assert all(v > 0 for v in result.rewards.values())
    assert result.accuracies[-1] > 0.85 and len(result.rewards) == 10
    store = LocalBlobStore(tmp_path / "blobs")
    for cid in result.round_cids:  # each round's public record on chain
        record = json.loads(store.get(cid))
        # the demo's job asks for norm-bound proofs: a counted claim for each survivor
        # (a hospital late under load is a dropout, 7 of 10 the quorum), none refused
        assert len(record["norm"]["claims"]) >= 7 and record["norm"]["refused"] == {}
        sealed = store.get(record["model_ciphertext"])
        assert b"__metadata__" not in sealed and b'"F32"' not in sealed  # no safetensors in clear
    assert result.model_version > 0  # sealed, granted, and opened through the guardians
    served = result.inference  # and served by the grantee's node to a paying clinic
    assert served is not None and served.agreement >= 0.995
    assert abs(served.encrypted_accuracy - served.plaintext_accuracy) <= 0.005
    assert served.receipt_checks and all(v == "ok" for _, v in served.receipt_checks)


def test_the_demo_s_nodes_joined_and_claimed_by_themselves(demo: tuple[Path, DemoResult]):
    tmp_path, result = demo
    for name in result.rewards:
        db = sqlite3.connect(tmp_path / "nodes" / name / "state.db")
        actions = dict(db.execute("SELECT key, status FROM actions").fetchall())
        db.close()
        job = result.job_id
        assert actions[f"join:{job}"] == "done" and actions[f"claim:{job}"] == "done"
        log = (tmp_path / "nodes" / name / "node.log").read_text()
        assert "stopped" in log
