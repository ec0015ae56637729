"""The TypeScript verifier (``verifier-ts/``, written from ``docs/protocol`` alone) audits
rounds that node processes ran: four trainer nodes and an aggregator node over loopback,
a dev chain in its own process. What it reads is what any auditor reads: the chain (the
job's configuration hash and clip bound, each round's record CID, root and bitmap, the
participants and their registered X25519 keys) and the public blobs those CIDs name.

Both of a plain job's and a verifiable job's rounds check out, whether the verifier is
handed the chain's facts or reads them itself over JSON-RPC (with the committed ABIs); the same record with its
sum one unit off (a new transcript, a new record, as a lying aggregator would post) and
the true record with a wrong bitmap are refused (exit 3). chainml's own audit counts the
same trainers."""

from __future__ import annotations

import json
import shutil
import subprocess
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from chainml.crypto.keys import Identity, X25519KeyPair
from chainml.ledger.anvil import stop_process
from chainml.ledger.devchain import DevChainProcess
from chainml.node.rounds import audit_round
from chainml.storage.local import LocalBlobStore
from chainml.storage.unixfs import cid_v1
from chainml.training.job import JobConfig
from tests.node.test_rounds import TRAINERS, _network, _post_job, _start, _wait
from tests.protocol.schemas import JOB, RECORD

ROOT = Path(__file__).resolve().parents[2]
VERIFIER = ROOT / "verifier-ts"
CLI = VERIFIER / "dist" / "src" / "cli.js"
# the demo's model (4,810 parameters): the verifier's answer, the sum, is then longer than a
# pipe's 64 KiB, and an auditor reading it through a pipe must get all of it
PLAIN = JobConfig(n_features=64, n_classes=10, hidden=(64,), epochs=1, verifiable=False)
VERIFIABLE = JobConfig(n_features=64, n_classes=10, hidden=(64,), epochs=1, verifiable=True)


@pytest.fixture(scope="module")
def verifier() -> Path:
    """The compiled verifier (``make test`` installs it; build it here if only installed)."""
    node = shutil.which("node")
    if node is None or not (VERIFIER / "node_modules").is_dir():
        pytest.fail(
            "the TypeScript verifier is not installed: run `make test` (npm ci in verifier-ts)"
        )
    if not CLI.exists():
        subprocess.run(
            [node, "node_modules/typescript/bin/tsc", "-p", "tsconfig.json"],
            cwd=VERIFIER,
            check=True,
            timeout=120,
        )
    return Path(node)


def _case(cm: Any, store: LocalBlobStore, job_id: int, round_no: int, out: Path) -> dict[str, Any]:
    """What an auditor reads from the chain for one round, and every blob the record names,
    fetched from the store and filed under its CID."""
    job = cm.jobs.job(job_id)
    info = cm.jobs.round(job_id, round_no)
    roster = {
        i + 1: cm.jobs.functions.participant_at(job_id, i) for i in range(job.participant_count)
    }
    blobs = out / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    record_bytes = store.get(info.aggregate_cid)
    (blobs / info.aggregate_cid).write_bytes(record_bytes)
    record = json.loads(record_bytes)
    RECORD.validate(record)  # the aggregator's record, as docs/protocol/schemas/ describes it
    JOB.validate(json.loads(store.get(job.params.config_cid)))
    published = job.params.config_cid  # the job's configuration, as its requester published it
    for cid in [record["transcript"], *record.get("inputs", {}).values(), published]:
        (blobs / cid).write_bytes(store.get(cid))
    return {
        "chain_id": cm.jobs.client.chain_id,
        "jobs": cm.jobs.address,
        "job_id": job_id,
        "round": round_no,
        "clip_bound": job.params.clip_bound,
        "config_hash": job.params.config_hash.hex(),
        "config_cid": published,
        "aggregate_cid": info.aggregate_cid,
        "commitment_root": info.commitment_root.hex(),
        "bitmap": str(info.bitmap),
        "roster": {str(i): a for i, a in roster.items()},
        "keys": {str(i): cm.registry.party(a).x25519_key.hex() for i, a in roster.items()},
        "blobs": "blobs",
    }


def _verify(node: Path, case: dict[str, Any], path: Path) -> tuple[int, dict[str, Any]]:
    path.write_text(json.dumps(case))
    return _run(node, str(path))


def _run(node: Path, *args: str) -> tuple[int, dict[str, Any]]:
    done = subprocess.run([str(node), str(CLI), *args], capture_output=True, text=True, timeout=120)
    assert done.stderr == "", done.stderr
    return done.returncode, json.loads(done.stdout)


def _one_unit_off(case: dict[str, Any], out: Path) -> dict[str, Any]:
    """The round's record as an aggregator that added one to the sum would post it."""
    blobs = out / "blobs"
    record = json.loads((blobs / case["aggregate_cid"]).read_bytes())
    transcript = json.loads((blobs / record["transcript"]).read_bytes())
    total = bytearray(bytes.fromhex(transcript["total"]))
    total[:4] = ((int.from_bytes(total[:4], "little") + 1) % 2**32).to_bytes(4, "little")
    transcript["total"] = total.hex()
    raw = json.dumps(transcript, sort_keys=True, separators=(",", ":")).encode()
    (blobs / cid_v1(raw)).write_bytes(raw)
    record["transcript"] = cid_v1(raw)
    raw = json.dumps(record, sort_keys=True, separators=(",", ":")).encode()
    (blobs / cid_v1(raw)).write_bytes(raw)
    return dict(case, aggregate_cid=cid_v1(raw))


def test_the_ts_verifier_audits_rounds_run_by_node_processes(
    tmp_path: Path, verifier: Path
) -> None:
    with DevChainProcess(tmp_path / "chain") as chain:
        _client, cm, nodes, store = _network(tmp_path, chain.url, PLAIN)
        trainers, aggregator = nodes[:TRAINERS], nodes[TRAINERS]
        (aggregator.config.parent / "jobs" / f"{VERIFIABLE.config_hash.hex()}.json").write_bytes(
            VERIFIABLE.encode()
        )
        with ExitStack() as running:
            for node in trainers:
                running.callback(stop_process, _start(node), 20)
            jobs = {
                "plain": _post_job(cm, store, aggregator, rounds=1, config=PLAIN),
                "verifiable": _post_job(cm, store, aggregator, rounds=1, config=VERIFIABLE),
            }
            for job_id in jobs.values():
                _wait(lambda j=job_id: cm.jobs.job(j).participant_count == TRAINERS)
            running.callback(stop_process, _start(aggregator), 20)
            for job_id in jobs.values():
                _wait(lambda j=job_id: cm.jobs.job(j).rounds_done == 1, 150)
            # past the challenge window: the nodes finalise both jobs and claim their rewards
            # themselves; the requester (the aggregator's account) takes any remainder
            _client.increase_time(3601)
            for job_id in jobs.values():
                _wait(lambda j=job_id: cm.jobs.job(j).claimed_participations == TRAINERS, 60)
                if cm.jobs.job(job_id).paid < cm.jobs.job(job_id).escrow:
                    cm.jobs.refund(aggregator.identity.account, job_id)
        for name, job_id in jobs.items():
            out = tmp_path / f"audit-{name}"
            case = _case(cm, store, job_id, 1, out)
            code, result = _verify(verifier, case, out / "case.json")
            assert code == 0 and result["ok"], result
            assert result["counted"] == [1, 2, 3, 4] == list(audit_round(cm, store, job_id, 1))
            assert len(result["sum"]) == PLAIN.vector_len()
            # the same round, the verifier reading the chain itself over JSON-RPC
            args = ["--rpc", chain.url, "--jobs", cm.jobs.address, "--job", str(job_id)]
            code, by_rpc = _run(verifier, *args, "--round", "1", "--blobs", str(out / "blobs"))
            assert code == 0 and (by_rpc["counted"], by_rpc["sum"]) == (
                result["counted"],
                result["sum"],
            )
            code, none = _run(verifier, *args, "--round", "2", "--blobs", str(out / "blobs"))
            assert (code, none["ok"], none["check"]) == (3, False, "cid")
            code, result = _verify(verifier, _one_unit_off(case, out), out / "off.json")
            want = "10.1/9 compare" if name == "plain" else "10.2/5 commitment"
            assert (code, result["ok"], result["check"]) == (3, False, want)
            code, result = _verify(verifier, dict(case, bitmap="7"), out / "bitmap.json")
            assert (code, result["check"]) == (3, "12/7 bitmap")
            # the blob under the job's configuration CID is not the configuration
            published = out / "blobs" / case["config_cid"]
            genuine = published.read_bytes()
            published.write_bytes(genuine.replace(b'"epochs":1', b'"epochs":9'))
            code, result = _verify(verifier, case, out / "config.json")
            assert (code, result["check"]) == (3, "cid"), result
            published.write_bytes(genuine)
        # each job's escrow, to the wei: what each trainer was paid, and the refund
        for job_id in jobs.values():
            args = ["--rpc", chain.url, "--jobs", cm.jobs.address, "--job", str(job_id)]
            code, escrow = _run(verifier, *args, "--escrow")
            assert code == 0 and escrow["ok"] and escrow["escrow"]["state"] == "finalized"
            job = cm.jobs.job(job_id)
            paid = {
                str(e.args["participant"]).lower(): int(e.args["amount"])
                for e in cm.jobs.contract.past_events("RewardClaimed", where={"job_id": job_id})
            }
            assert {a: int(v) for a, v in escrow["escrow"]["owed"].items()} == paid
            assert set(paid.values()) == {job.escrow // TRAINERS}  # one round, all four in it
            claimed, refunded = int(escrow["escrow"]["claimed"]), int(escrow["escrow"]["refunded"])
            assert claimed + refunded == job.escrow
        # a trainer rotates its X25519 key after the rounds: the rounds still check out, the
        # keys read as the rounds saw them (the block before each RoundRecorded)
        trainer = trainers[0].identity
        rotated = Identity(trainer.account, X25519KeyPair.generate())
        cm.registry.rotate_key(
            trainer.account,
            rotated.x25519.public_bytes,
            rotated.proof_of_possession(cm.jobs.client.chain_id, cm.registry.address),
        )
        for name, job_id in jobs.items():
            out = tmp_path / f"audit-{name}"
            args = ["--rpc", chain.url, "--jobs", cm.jobs.address, "--job", str(job_id)]
            code, by_rpc = _run(verifier, *args, "--round", "1", "--blobs", str(out / "blobs"))
            assert code == 0 and by_rpc["counted"] == [1, 2, 3, 4], by_rpc
            assert list(audit_round(cm, store, job_id, 1)) == [1, 2, 3, 4]
