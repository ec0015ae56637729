"""An IPFS peer on one test host, driven line by line: what a party's tools do with blobs.

``python -m chainml.devtools.hostpeer REPO --swarm-address 10.231.7.3/24 [--peer MADDR]``
runs the embedded kubo engine (``IpfsEngineStore``) listening on that address, prints
``{"multiaddr": ...}``, then answers one JSON object per line read from stdin with one
JSON line:

- ``{"op": "connect", "peer": MULTIADDR}`` → ``{"ok": true}``
- ``{"op": "put", "path": FILE}`` → ``{"cid": CID}``
- ``{"op": "get", "cid": CID}`` → ``{"size": N, "sha256": HEX, "seconds": S}``: fetched
  by CID (from peers if not held here), every block re-hashed by the store
- ``{"op": "pin", "cid": CID}`` → ``{"ok": true}``; ``{"op": "has", "cid": CID}`` →
  ``{"has": bool}``
- ``{"op": "audit", "rpc": URL, "deployment": FILE, "job": J, "rounds": [R, ...]}`` →
  ``{"counted": {R: [slots]}, "seconds": S, "pinned": [CIDs], "fetched": {kind: n}}``:
  ``audit_round`` of each round against this host's store, i.e. the round record and
  transcript fetched by CID from whichever peer holds them, then every masked input and
  the sealed aggregate (manifest and ciphertext) as well, each re-hashed against its
  CID; everything read is pinned here (a participant keeps the records of jobs it took
  part in).

A failed command answers ``{"error": TYPE, "message": TEXT}`` and the peer goes on; it
stops when stdin closes or on SIGTERM.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from chainml.errors import ChainmlError
from chainml.storage.ipfs_engine import IpfsEngineStore


class _Recording:
    """The store, noting every CID read through it (to pin what an audit read)."""

    def __init__(self, store: IpfsEngineStore) -> None:
        self.store = store
        self.read: list[str] = []

    def get(self, cid: str) -> bytes:
        self.read.append(cid)
        return self.store.get(cid)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


def _audit(store: IpfsEngineStore, cmd: dict[str, Any]) -> dict[str, Any]:
    from chainml.ledger.bindings import Chainml
    from chainml.ledger.client import LedgerClient
    from chainml.ledger.deploy import Deployment
    from chainml.node.rounds import audit_round
    from chainml.storage.sealed import load_manifest

    cm = Chainml.connect(LedgerClient(str(cmd["rpc"])), Deployment.load(Path(cmd["deployment"])))
    recording = _Recording(store)
    started = time.perf_counter()
    counted: dict[str, list[int]] = {}
    kinds = {"records": 0, "transcripts": 0, "masked_inputs": 0, "sealed_aggregates": 0}
    for r in cmd["rounds"]:
        job_id, round_no = int(cmd["job"]), int(r)
        counted[str(r)] = list(audit_round(cm, recording, job_id, round_no))
        # what the audit of a verifiable job does not need, fetched and hashed all the
        # same: every masked input, and the sealed aggregate (manifest and ciphertext)
        record = json.loads(recording.get(cm.jobs.round(job_id, round_no).aggregate_cid))
        for cid in record["inputs"].values():
            recording.get(str(cid))
        manifest = load_manifest(recording, str(record["model_manifest"]))
        recording.get(manifest.ciphertext_cid)
        kinds["records"] += 1
        kinds["transcripts"] += 1
        kinds["masked_inputs"] += len(record["inputs"])
        kinds["sealed_aggregates"] += 1
    seconds = time.perf_counter() - started
    read = list(dict.fromkeys(recording.read))
    for cid in read:
        store.pin(cid)
    return {"counted": counted, "seconds": seconds, "pinned": read, "fetched": kinds}


def _answer(store: IpfsEngineStore, cmd: dict[str, Any]) -> dict[str, Any]:
    op = cmd.get("op")
    if op == "connect":
        store.connect(str(cmd["peer"]))
        return {"ok": True}
    if op == "put":
        return {"cid": store.put(Path(cmd["path"]))}
    if op == "get":
        started = time.perf_counter()
        data = store.get(str(cmd["cid"]), timeout=float(cmd.get("timeout", 30)))
        return {
            "size": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
            "seconds": time.perf_counter() - started,
        }
    if op == "pin":
        store.pin(str(cmd["cid"]))
        return {"ok": True}
    if op == "has":
        return {"has": store.has(str(cmd["cid"]))}
    if op == "audit":
        return _audit(store, cmd)
    raise ValueError(f"unknown op {op!r}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chainml.devtools.hostpeer")
    parser.add_argument("repo", type=Path)
    parser.add_argument("--swarm-address", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--peer", action="append", default=[])
    args = parser.parse_args(argv)

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    with IpfsEngineStore(
        args.repo, swarm_port=args.port, peers=args.peer, swarm_address=args.swarm_address
    ) as store:
        print(json.dumps({"multiaddr": store.multiaddr}), flush=True)
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                reply = _answer(store, json.loads(line))
            except (ChainmlError, OSError, ValueError, KeyError, TypeError) as exc:
                reply = {"error": type(exc).__name__, "message": str(exc)[:500]}
            print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
