"""Node: authenticated envelopes per second against one node process, and mutated envelopes.

Load: a paced, open-loop stream of genuine envelopes (signed, sealed, each with a fresh
nonce) from registered, staked senders to one real node process on loopback, at 200 per
second for 30 seconds (10 s with --quick).  Reported: errors, achieved rate, latency
percentiles.  Baseline, measured in the same run against the same node: ``GET /v1/status``
at the same rate (no cryptography, no disk), so the ratio is the cost of authentication.

Fuzz: 1,000 (--quick) or 10,000 mutated envelopes posted to the node: none may be accepted,
none may get a 5xx, every refusal must carry a known cause.
"""

from __future__ import annotations

import os
import random
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import requests

from chainml.crypto import Identity
from chainml.ledger.bindings import Role
from chainml.ledger.client import LedgerClient
from chainml.ledger.devchain import DevChainProcess
from chainml.node import daemon, localnet
from chainml.node.envelope import CAUSES, seal_envelope
from chainml.node.mutate import mutations

ETHER = 10**18
PASSWORD = "benchmark"
RATE = 200
SENDERS = 4


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def paced(url: str, bodies: list[bytes] | None, seconds: float, method: str) -> dict[str, Any]:
    """RATE requests per second for ``seconds`` from 8 threads; latencies in ms."""
    total = int(RATE * seconds)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    lock = threading.Lock()
    start = time.perf_counter() + 0.2
    counter = iter(range(total))

    def worker() -> None:
        session = requests.Session()
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            due = start + i / RATE
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            t0 = time.perf_counter()
            try:
                if method == "POST":
                    r = session.post(url, data=bodies[i] if bodies else b"", timeout=10)
                else:
                    r = session.get(url, timeout=10)
                code = r.status_code
            except requests.RequestException as exc:
                with lock:
                    errors.append(type(exc).__name__)
                continue
            with lock:
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[code] += 1

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "requests": total,
        "rate_per_s": round(len(latencies) / elapsed, 1),
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "transport_errors": len(errors),
        "p50_ms": round(q[49], 2),
        "p95_ms": round(q[94], 2),
        "p99_ms": round(q[98], 2),
        "max_ms": round(max(latencies, default=0.0), 2),
    }


def run(quick: bool) -> dict[str, Any]:
    seconds = 10 if quick else 30
    fuzz = 1_000 if quick else 10_000
    with (
        tempfile.TemporaryDirectory() as tmp_name,
        DevChainProcess(Path(tmp_name) / "chain") as chain,
    ):
        tmp = Path(tmp_name)
        client = LedgerClient(chain.url)
        cm, dev = localnet.deploy(client, tmp)
        node_dir = localnet.init_node(tmp, "bench", PASSWORD, rpc=chain.url, work=1 << 12)
        config = node_dir.config
        port = int(node_dir.url.rsplit(":", 1)[1])
        config.write_text(
            config.read_text()
            .replace("rate_per_peer = 50", "rate_per_peer = 100000")
            .replace("rate_overall = 500", "rate_overall = 100000")
            # the fuzzer is a hostile peer: here its envelopes must reach every check,
            # not be cut short by the ban that protects a real node
            .replace("ban_after_refusals = 20", "ban_after_refusals = 1000000000")
        )
        node = node_dir.identity
        senders = [Identity.generate() for _ in range(SENDERS)]
        for ident in [node, *senders]:
            client.transact(dev, to=ident.address, value=2 * ETHER)
            cm.registry.register_identity(ident, Role.TRAINER, "x", ETHER)

        def envelope(sender: Identity, payload: bytes, recipient: Identity = node) -> bytes:
            return seal_envelope(
                sender,
                recipient=recipient.address,
                recipient_key=recipient.x25519.public_bytes,
                purpose="bench",
                plaintext=payload,
                chain_id=client.chain_id,
                registry=cm.registry.address,
                timestamp=int(time.time()),
            ).to_bytes()

        log(f"sealing {RATE * seconds} envelopes")
        bodies = [envelope(senders[i % SENDERS], os.urandom(1024)) for i in range(RATE * seconds)]
        proc = daemon.spawn(config, PASSWORD, quiet=True)
        url = f"http://127.0.0.1:{port}"
        try:
            daemon.wait_ready(url, proc)
            log(f"baseline: GET /v1/status at {RATE}/s for {seconds} s")
            baseline = paced(url + "/v1/status", None, seconds, "GET")
            log(f"load: POST /v1/envelopes at {RATE}/s for {seconds} s")
            load = paced(url + "/v1/envelopes", bodies, seconds, "POST")

            log(f"fuzz: {fuzz} mutated envelopes")
            good = envelope(senders[0], b"fuzz seed")
            first = requests.post(url + "/v1/envelopes", data=good, timeout=10)
            assert first.status_code == 202, first.text
            other = Identity.generate()
            stream = mutations(
                random.Random(7),
                good,
                misaddressed=lambda: envelope(senders[1], b"x", other),
                oversized=lambda extra: envelope(senders[1], b"\0" * (4 * 2**20 + extra)),
            )
            outcome: Counter[str] = Counter()
            untyped_seen: list[str] = []
            session = requests.Session()
            for _ in range(fuzz):
                _, body = next(stream)
                r = session.post(url + "/v1/envelopes", data=body, timeout=30)
                if r.status_code == 202:
                    outcome["accepted"] += 1
                elif r.status_code >= 500:
                    outcome["5xx"] += 1
                else:
                    cause = r.json().get("error")
                    if cause not in CAUSES and not untyped_seen:
                        untyped_seen.append(f"{r.status_code} {r.text[:200]}")
                    outcome[cause if cause in CAUSES else "untyped"] += 1
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)
    ok = load["statuses"] == {"202": RATE * seconds} and load["transport_errors"] == 0
    return {
        "benchmark": "node",
        "baseline": "GET /v1/status on the same node at the same rate (no crypto, no disk)",
        "seconds": seconds,
        "target_rate_per_s": RATE,
        "envelopes": load,
        "status_baseline": baseline,
        "load_without_errors": ok,
        "p50_ratio_to_baseline": round(load["p50_ms"] / max(baseline["p50_ms"], 1e-9), 2),
        "p99_ratio_to_baseline": round(load["p99_ms"] / max(baseline["p99_ms"], 1e-9), 2),
        "mutated": fuzz,
        "mutated_outcomes": dict(outcome),
        "first_untyped": untyped_seen[:1],
        "mutated_none_accepted": outcome["accepted"] == 0
        and outcome["5xx"] == 0
        and outcome["untyped"] == 0,
    }
