"""``audit_round`` against ``docs/protocol/secagg.md`` §12, on a real five-client round and
a stand-in for the chain: the audit takes a round's aggregation rule from the job
configuration bound to the chain, never from the record, so an aggregator cannot relabel a
secure-aggregation round as a robust one (whose audit checks signatures and the root, not
the sum) to have a wrong sum pass (§15 item 2); and an honest round should keep checking
out after a trainer rotates its registered key (§15 item 4, fixed: the keys are read as
the round saw them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from chainml.node.rounds import _bitmap, _root, audit_round, record_params, round_params
from chainml.storage.local import LocalBlobStore
from chainml.training.job import JobConfig
from chainml.training.secagg import AggregateMismatch, SecAggClient, SecAggServer, run_in_memory
from tests.protocol.make_secagg_vectors import CHAIN_ID, JOBS, identity
from tests.protocol.standin import StandInChain

JOB, ROUND, ATTEMPT, CLIP = 4, 2, 0, 5.0
CONFIG = JobConfig(n_features=4, n_classes=2, hidden=(), epochs=1, verifiable=False)
ROSTER = {i: identity(i).address for i in range(1, 6)}


def _chain(**kw: object) -> StandInChain:
    keys = {identity(i).address: identity(i).x25519.public_bytes for i in ROSTER}
    return StandInChain(CONFIG, ROSTER, keys, clip=CLIP, chain_id=CHAIN_ID, jobs=JOBS, **kw)  # type: ignore[arg-type]


def _relabelled_record(
    tmp_path: Path, *, relabel: bool, off: bool = True, prefix: str = ""
) -> tuple[StandInChain, LocalBlobStore]:
    """A real five-client round of a secure-aggregation job, recorded with a sum that is
    not the survivors' (one unit off) if ``off``, and, if ``relabel``, marked as a robust
    round that carries the survivors' own signed SecAgg+ commitments."""
    store = LocalBlobStore(tmp_path / "blobs")
    params = round_params(_chain(), JOB, ROUND, ATTEMPT, CONFIG, CLIP, ROSTER)  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    clients = {
        i: SecAggClient(params, i, identity(i), rng.normal(scale=0.1, size=params.vector_len))
        for i in ROSTER
    }
    server = SecAggServer(params)
    result = run_in_memory(params, clients, server=server)
    transcript = json.loads(result.transcript.encode())
    total = bytearray(bytes.fromhex(transcript["total"]))
    total[0] ^= int(off)
    transcript["total"] = total.hex()
    record = {
        "format": "chainml-round-record/2",
        "job": JOB,
        "round": ROUND,
        "config": CONFIG.encode().decode(),
        "transcript": store.put(
            json.dumps(transcript, sort_keys=True, separators=(",", ":")).encode()
        ),
        "inputs": {str(i): store.put(v.astype("<u4").tobytes()) for i, v in server.inputs.items()},
        "params": record_params(params, ATTEMPT),
    }
    if relabel:
        signed = result.transcript.inputs
        record["aggregation"] = "krum"
        record["commitments"] = {str(i): signed[i].commitment.hex() for i in result.survivors}
        record["signatures"] = {str(i): signed[i].signature.hex() for i in result.survivors}
    raw = json.dumps(record, sort_keys=True, separators=(",", ":"))  # as the aggregator stores it
    chain = _chain(
        record_cid=store.put(("{" + prefix + raw[1:]).encode()),
        root=_root(JOB, ROUND, result.transcript.leaves(params)),
        bitmap=_bitmap(result.survivors),
    )
    return chain, store


def test_the_control_a_wrong_sum_is_refused(tmp_path: Path) -> None:
    chain, store = _relabelled_record(tmp_path, relabel=False)
    with pytest.raises(AggregateMismatch, match="published sum"):
        audit_round(chain, store, JOB, ROUND)  # type: ignore[arg-type]


def test_a_secure_job_record_relabelled_robust_is_refused(tmp_path: Path) -> None:
    chain, store = _relabelled_record(tmp_path, relabel=True)
    with pytest.raises(AggregateMismatch):
        audit_round(chain, store, JOB, ROUND)  # type: ignore[arg-type]


def test_the_control_an_honest_record_checks_out(tmp_path: Path) -> None:
    chain, store = _relabelled_record(tmp_path, relabel=False, off=False)
    assert audit_round(chain, store, JOB, ROUND) == tuple(ROSTER)  # type: ignore[arg-type]


def test_an_honest_round_checks_out_after_a_trainer_rotates_its_key(tmp_path: Path) -> None:
    chain, store = _relabelled_record(tmp_path, relabel=False, off=False)
    chain.keys[identity(2).address] = identity(99).x25519.public_bytes  # Registry.rotate_key
    assert audit_round(chain, store, JOB, ROUND) == tuple(ROSTER)  # type: ignore[arg-type]


def test_a_record_with_a_duplicate_key_is_refused(tmp_path: Path) -> None:
    """Two parsers could audit different transcripts from one record: one that keeps the
    first of two ``transcript`` keys reads a missing blob, chainml the last."""
    unknown = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"
    chain, store = _relabelled_record(
        tmp_path, relabel=False, off=False, prefix=f'"transcript":"{unknown}",'
    )
    with pytest.raises(AggregateMismatch):
        audit_round(chain, store, JOB, ROUND)  # type: ignore[arg-type]
