"""Node: authenticated envelopes per second against one node process, and mutated envelopes.

Load: a paced, open-loop stream of genuine envelopes (signed, sealed, each with a fresh
nonce) from registered, staked senders to one real node process on loopback, at 200 per
second for 30 seconds (10 s with --quick).  Reported: errors, achieved rate, latency
percentiles.  Baseline, measured in the same run against the same node: ``GET /v1/status``
at the same rate (no cryptography, no disk), so the ratio is the cost of authentication.

Fuzz: 1,000 (--quick) or 10,000 mutated envelopes posted to the node: none may be accepted,
none may get a 5xx, every refusal must carry a known cause.

Hostile: ``GET /v1/status`` latency while hostile clients run (deeply nested JSON, huge
numbers, forged 4 MiB envelopes, chunked bodies past the cap), against the same probe with
the node otherwise idle, in the same run; the refusals per second the node answered meanwhile
(every answer typed, none 5xx); and the node's peak resident memory while 16 clients post
5 MiB bodies in parallel, against its resident memory before.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
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


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def _probe(url: str, seconds: float) -> list[float]:
    """Sequential ``GET /v1/status`` for ``seconds``, 100 a second at most; latencies in ms."""
    session = requests.Session()
    out: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        t0 = time.perf_counter()
        r = session.get(url + "/v1/status", timeout=10)
        out.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, r.text
        time.sleep(max(0.0, 0.01 - (time.perf_counter() - t0)))
    return out


def _pcts(latencies: list[float]) -> dict[str, float]:
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "requests": len(latencies),
        "p50_ms": round(q[49], 2),
        "p99_ms": round(q[98], 2),
        "max_ms": round(max(latencies, default=0.0), 2),
    }


def hostile(url: str, forged: bytes, seconds: float, clients: int = 4) -> dict[str, Any]:
    """``clients`` threads sending hostile requests back to back for ``seconds`` while the
    probe measures ``/v1/status``; refusals counted by status and cause."""
    port = int(url.rsplit(":", 1)[1])
    deep = b"[" * 70_000 + b"]" * 70_000
    huge = b'{"v":' + b"9" * 5_000 + b"}"
    stop = threading.Event()
    outcome: Counter[str] = Counter()
    lock = threading.Lock()

    def chunked_past_cap() -> str:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(
                b"POST /v1/keys/release HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            try:
                for _ in range(64):
                    s.sendall(b"10000\r\n" + b"a" * 65536 + b"\r\n")
            except OSError:
                pass
            try:
                head = s.recv(64)
            except OSError:
                return "reset"
            return head.split(b" ", 2)[1].decode() if head.startswith(b"HTTP/") else "closed"

    def client(k: int) -> None:
        session = requests.Session()
        i = 0
        while not stop.is_set():
            kind = (k + i) % 4
            i += 1
            try:
                if kind == 3:
                    key = chunked_past_cap()
                else:
                    body = (deep, huge, forged)[kind]
                    r = session.post(url + "/v1/envelopes", data=body, timeout=30)
                    key = f"{r.status_code} {r.json().get('error')}"
            except requests.RequestException as exc:
                key = type(exc).__name__
            with lock:
                outcome[key] += 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    started = time.perf_counter()
    for t in threads:
        t.start()
    try:
        latencies = _probe(url, seconds)
    finally:
        stop.set()
        for t in threads:
            t.join()
    elapsed = time.perf_counter() - started
    refused = sum(n for key, n in outcome.items() if key[:1] == "4")
    return {
        "status_under_hostile": _pcts(latencies),
        "hostile_outcomes": dict(outcome),
        "refusals_per_s": round(refused / elapsed, 1),
        "hostile_5xx": sum(n for key, n in outcome.items() if key[:1] == "5"),
    }


def parallel_oversized(url: str, pid: int, posts: int = 16) -> dict[str, Any]:
    """``posts`` clients each posting a 5 MiB body in parallel (chunked, so the node reads
    up to its cap); the node's peak RSS sampled every 20 ms, against its RSS before."""
    before = _rss(pid)
    peak = [before]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak.append(_rss(pid))
            time.sleep(0.02)

    def chunks() -> Any:
        for _ in range(80):
            yield b"a" * 65536

    def post(_: int) -> str:
        try:
            r = requests.post(url + "/v1/envelopes", data=chunks(), timeout=60)
            return f"{r.status_code} {r.json().get('error')}"
        except requests.RequestException as exc:
            return type(exc).__name__

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        with ThreadPoolExecutor(posts) as pool:
            answers = Counter(pool.map(post, range(posts)))
    finally:
        stop.set()
        sampler.join()
    return {
        "posts": posts,
        "bytes_each": 80 * 65536,
        "answers": dict(answers),
        "rss_before_mb": round(before / 2**20, 1),
        "rss_peak_mb": round(max(peak) / 2**20, 1),
        "rss_growth_mb": round((max(peak) - before) / 2**20, 1),
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
            window = 3 if quick else 20
            log(f"hostile: /v1/status for {window} s idle, then {window} s with hostile clients")
            idle = _pcts(_probe(url, window))
            forged = envelope(senders[2], b"\0" * (4 << 20))
            at = forged.index(b'"signature":"') + len(b'"signature":"')
            forged = forged[:at] + b"1" * 128 + b'1b"}'  # someone else's signature
            under = hostile(url, forged, window)
            log("memory: 16 parallel 5 MiB posts")
            memory = parallel_oversized(url, proc.pid)
            alive = proc.poll() is None and requests.get(url + "/v1/status", timeout=10).ok
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
        "hostile_baseline": "the same /v1/status probe, the node otherwise idle, same run",
        "status_idle": idle,
        **under,
        "status_p99_ratio_hostile_to_idle": round(
            under["status_under_hostile"]["p99_ms"] / max(idle["p99_ms"], 1e-9), 2
        ),
        "parallel_oversized": memory,
        "alive_after_hostile": alive,
    }
