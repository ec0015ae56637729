"""The TypeScript verifier (``verifier-ts/``) audits a round of a job with norm-bound proofs
that node processes ran (docs/protocol/zk-norm.md §12-§13): four trainer nodes, one of
which claims three times its data set's records (its proof holds for that weight, its data
set does not back it), and an aggregator node over loopback, a dev chain in its own
process. The verifier is handed the chain's facts and the data sets, or reads them itself
over JSON-RPC (``--datasets``); it counts the trainers chainml's own audit counts, finds
the refused claim unbacked, and refuses the round when it has no data sets to check the
weights against or when a data set holds fewer records than a counted claim says."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from chainml.ledger.anvil import stop_process
from chainml.ledger.devchain import DevChainProcess
from chainml.node.rounds import audit_round
from chainml.storage.local import LocalBlobStore
from chainml.training.job import JobConfig
from tests.node.test_rounds import TRAINERS, _network, _post_job, _start, _wait
from tests.node.test_rounds_zk import _commit_datasets, _start_attacker
from tests.protocol.test_ts_verifier import _case, _run, _verify, verifier  # noqa: F401

NORM = JobConfig(n_features=64, n_classes=10, hidden=(8,), epochs=1, norm_proofs=True)


def _norm_case(cm: Any, store: LocalBlobStore, job_id: int, out: Path) -> dict[str, Any]:
    """``_case`` of round 1, with every claim the record names filed under its CID and the
    data sets those claims name as the Datasets contract lists them."""
    case = _case(cm, store, job_id, 1, out)
    record = json.loads((out / "blobs" / case["aggregate_cid"]).read_bytes())
    cids = [*record["norm"]["claims"].values()]
    cids += [e["claim"] for e in record["norm"]["refused"].values() if e["claim"]]
    datasets = {}
    for cid in cids:
        raw = store.get(cid)
        (out / "blobs" / cid).write_bytes(raw)
        d = cm.datasets.get(json.loads(raw)["dataset"])
        datasets[str(json.loads(raw)["dataset"])] = {
            "owner": d.owner,
            "record_count": d.record_count,
            "revoked": d.revoked,
        }
    return dict(case, datasets=datasets)


def test_the_ts_verifier_audits_a_norm_proof_round_run_by_node_processes(
    tmp_path: Path,
    verifier: Path,  # noqa: F811
) -> None:
    with DevChainProcess(tmp_path / "chain") as chain:
        _client, cm, nodes, store = _network(tmp_path, chain.url, NORM, stage_timeout=20)
        trainers, aggregator = nodes[:TRAINERS], nodes[TRAINERS]
        _commit_datasets(cm, trainers)
        with ExitStack() as running:
            for node in trainers[:-1]:
                running.callback(stop_process, _start(node), 20)
            running.callback(stop_process, _start_attacker(trainers[-1], "overweight"), 20)
            job_id = _post_job(cm, store, aggregator, rounds=1, config=NORM)
            _wait(lambda: cm.jobs.job(job_id).participant_count == TRAINERS)
            running.callback(stop_process, _start(aggregator), 20)
            _wait(lambda: cm.jobs.job(job_id).rounds_done == 1, timeout=240)
        counted = list(audit_round(cm, store, job_id, 1))
        attacker = int(cm.jobs.functions.participant_of(job_id, trainers[-1].identity.address))
        assert attacker not in counted and len(counted) == TRAINERS - 1

        out = tmp_path / "audit"
        case = _norm_case(cm, store, job_id, out)
        code, result = _verify(verifier, case, out / "case.json")
        assert code == 0 and result["ok"] and result["counted"] == counted, result
        # the verifier reads the chain, the keys and the data sets itself
        args = ["--rpc", chain.url, "--jobs", cm.jobs.address, "--job", str(job_id)]
        args += ["--round", "1", "--blobs", str(out / "blobs")]
        code, by_rpc = _run(verifier, *args, "--datasets", cm.datasets.address)
        assert code == 0 and (by_rpc["counted"], by_rpc["sum"]) == (counted, result["sum"])
        # with no data sets it cannot check the weights: refused, saying why
        code, none = _run(verifier, *args)
        assert (code, none["check"]) == (3, "zk-norm/13 data sets"), none
        # a counted trainer's data set holding fewer records than its claim counts
        record = json.loads((out / "blobs" / case["aggregate_cid"]).read_bytes())
        claim = json.loads((out / "blobs" / record["norm"]["claims"][str(counted[0])]).read_bytes())
        fewer = json.loads(json.dumps(case["datasets"]))
        fewer[str(claim["dataset"])]["record_count"] = claim["records"] - 1
        code, result = _verify(verifier, dict(case, datasets=fewer), out / "fewer.json")
        assert (code, result["check"]) == (3, "zk-norm/12.4 claims"), result
