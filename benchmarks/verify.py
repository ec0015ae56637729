"""Verify: what an outside auditor pays to check one recorded round, in chainml's Python
verifier and in the TypeScript verifier written from ``docs/protocol`` alone, and what the
chain charges to act on a round: a challenge, a committee vote and its resolution.

Each round is real and on a real chain: a dev chain in its own process, ten registered
trainers that joined a job, a SecAgg+ round between them in process (one trainer dropped
after sharing, so the unmasking of a dropped key is in the check), its record and every
blob it names in a blob store, and the record's CID, root and bitmap submitted on chain.
Both verifiers then audit it from the chain and the blobs: ``audit_round`` in Python, and
``node verifier-ts/dist/src/cli.js --rpc`` reading the chain itself over JSON-RPC. Each
is timed on a plain round (the sum recomputed from the masked inputs) and a verifiable one
(the sum checked against the lattice commitments), at 4,810 parameters (the demo's model)
and, in the full run, 10^5.

Baseline: the Python verifier; the ratio is TypeScript over Python, same round, same run.
The TypeScript time includes starting Node (``node_start_seconds`` is that alone).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from chainml.crypto import keccak256
from chainml.devtools.chainround import ChainWorld
from chainml.ledger.devchain import DevChainProcess
from chainml.node.rounds import audit_round
from chainml.storage.local import LocalBlobStore
from chainml.training.job import JobConfig

TRAINERS = 10
CLIP = 5.0
ROOT = Path(__file__).resolve().parents[1]
CLI = ROOT / "verifier-ts" / "dist" / "src" / "cli.js"
# the demo's model (64 → 64 → 10: 4,810 parameters) and one of 100,180 parameters
SHAPES = {4810: (64, (64,)), 100_000: (784, (126,))}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _node() -> str:
    node = shutil.which("node")
    if node is None or not CLI.exists():
        raise SystemExit("the TypeScript verifier is not built: run `make test` first")
    return node


def _export(store: LocalBlobStore, record_cid: str, out: Path) -> Path:
    """The record and every blob it names, each in a file named by its CID: what an
    auditor downloads (the verifier checks each against its name)."""
    out.mkdir(parents=True)
    record = json.loads(store.get(record_cid))
    for cid in [record_cid, record["transcript"], *record["inputs"].values()]:
        (out / cid).write_bytes(store.get(cid))
    return out


def _time_ts(node: str, url: str, jobs: str, job_id: int, blobs: Path) -> tuple[float, Any]:
    args = [node, str(CLI), "--rpc", url, "--jobs", jobs, "--job", str(job_id), "--round", "1"]
    started = time.perf_counter()
    done = subprocess.run(
        [*args, "--blobs", str(blobs)], capture_output=True, text=True, timeout=300
    )
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the TypeScript verifier refused an honest round: {done.stdout}")
    return elapsed, json.loads(done.stdout)


def challenge_gas(w: ChainWorld, job_id: int, uphold: bool) -> dict[str, int]:
    """Challenge round 1 of ``job_id``; committee members vote ``uphold`` until a majority
    of stake decides; anyone resolves. Gas of each step (the largest vote)."""
    jobs = w.cm.jobs
    receipt = jobs.functions.challenge(
        w.validator_ids[0].account, job_id, 1, keccak256(b"the sum is one unit off")
    )
    challenge_id = jobs.events.challenge_opened(receipt)[0].challenge_id
    committee = jobs.challenge_info(challenge_id).committee
    by_address = {v.address: v for v in w.validator_ids}
    votes = [
        jobs.vote(by_address[member].account, challenge_id, uphold).gas_used
        for member in committee[: len(committee) // 2 + 1]
    ]
    resolved = jobs.resolve(w.dev, challenge_id)
    return {
        "challenge": receipt.gas_used,
        "vote": max(votes),
        "resolve": resolved.gas_used,
        "committee": len(committee),
    }


def run(quick: bool = False) -> dict[str, Any]:
    node = _node()
    started = time.perf_counter()
    subprocess.run([node, "-e", ""], check=True)
    node_start = time.perf_counter() - started
    sizes = [4810] if quick else [4810, 100_000]
    rows = []
    gas: dict[str, dict[str, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalBlobStore(Path(tmp) / "blobs")
        with DevChainProcess(Path(tmp) / "chain") as chain:
            w = ChainWorld(chain.url, store, trainers=TRAINERS, validators=8)
            for size in sizes:
                features, hidden = SHAPES[size]
                for verifiable in (False, True):
                    config = JobConfig(
                        n_features=features,
                        n_classes=10,
                        hidden=hidden,
                        epochs=1,
                        verifiable=verifiable,
                    )
                    job_id = w.job(config, CLIP)
                    cid, round_s = w.round(job_id, config, CLIP)
                    t0 = time.perf_counter()
                    counted = audit_round(w.cm, store, job_id, 1)
                    py_s = time.perf_counter() - t0
                    blobs = _export(store, cid, Path(tmp) / f"job-{job_id}")
                    ts_s, ts = _time_ts(node, chain.url, w.cm.jobs.address, job_id, blobs)
                    if list(counted) != ts["counted"]:
                        raise SystemExit(f"the verifiers disagree: {counted} vs {ts['counted']}")
                    row = {
                        "parameters": config.vector_len() - 1,
                        "verifiable": verifiable,
                        "trainers_counted": len(counted),
                        "round_seconds": round(round_s, 3),
                        "python_seconds": round(py_s, 3),
                        "typescript_seconds": round(ts_s, 3),
                        "ts_over_python": round(ts_s / py_s, 2),
                    }
                    log(json.dumps(row))
                    rows.append(row)
                    if size == sizes[0]:
                        # an honest round challenged (the challenger loses), and one upheld
                        gas["upheld" if verifiable else "rejected"] = challenge_gas(
                            w, job_id, uphold=verifiable
                        )
    return {
        "baseline": "chainml's Python verifier (audit_round), same round, same run",
        "trainers": TRAINERS,
        "node_start_seconds": round(node_start, 3),
        "rounds": rows,
        "gas": gas,
    }
