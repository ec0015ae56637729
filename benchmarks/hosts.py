"""Rounds across hosts: each party in its own network namespace, blobs over IPFS.

The job of ``chainml.devtools.hostjob``: the dev chain on one host, an aggregator node and
three trainer nodes on four more, each bound to its own address on a private bridge (0 ms
added round trip: veth links through one kernel bridge), each node's blob store its
embedded kubo engine; an auditor on a trainer's host fetches every round's blobs by CID
from the aggregator's host.  Measured:

- ``round_s``: wall time between consecutive rounds reaching the chain (median over
  rounds 2..N), and ``first_round_s`` from the last join to round 1;
- ``bytes_per_round``: per host, bytes sent and received on its link per round (kernel
  counters of its veth pair, so everything: envelopes, chain JSON-RPC, bitswap);
- ``record_fetch_s``: one round record fetched by CID by a fresh IPFS peer on another host;
  ``audit_s``: every round audited there from blobs fetched by CID;
- ``setup_s``: hosts, chain, deployment and node start until every trainer joined.

Baseline, same run, same data and job: the same round in one process (each trainer's
local update, the SecAgg+ round through ``run_in_memory``, the new global model), median
of three.  Ratio: ``round_s`` against it.

Each figure at 0 ms added round trip (veth links through one kernel bridge) and at 50 ms:
the kernel here has no netem, so a delay relay (``chainml.devtools.delayrelay``, 25 ms
each way) sits in front of every service on every host — chain RPC, node APIs, the
aggregator's IPFS swarm — and every request/response exchange across hosts takes 50 ms
more (TCP handshakes with the relay are not delayed).  A full run measures each on a
network of its own (6 rounds direct, 5 through the relays); a quick run, to stay under a
minute, sets up one network whose traffic goes through the relays throughout: rounds 1-2
at no delay (``round_s`` at 0 ms is round 2 alone), then the relays add the 50 ms and
rounds 4-5 are measured (round 3 straddles the switch); the record fetch and the audit
are then measured at 50 ms only.

A full run (``make bench``) also stages faults (``faults``): four trainers, the last
one's host cut off while its masked input is on its way in round 2 (round 2 must count
the other three with its sum verified); and 50 ms with 1% random loss on every link
(nftables in each namespace; every round must count every trainer and check out).
Either failing fails the benchmark.

Needs root (network namespaces); elsewhere the result says why it was skipped.  Not
measured here yet: the PoS devnet's figures.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks import rounds
from chainml.devtools import hostjob
from chainml.devtools.hosts import unavailable

TRAINERS = 3
CLIP = 10.0  # the job's clip_bound of 10,000 thousandths
RTT_MS = 50


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def in_process_round(round_no: int = 1) -> float:
    """Seconds for one secure round of the same job, same shards, in one process."""
    return rounds.in_process_round(round_no, hostjob.CONFIG, TRAINERS, CLIP)


def _measure(rounds: int, rtt_ms: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="chainml-hosts-") as tmp:
        result = hostjob.run(Path(tmp), trainers=TRAINERS, rounds=rounds, rtt_ms=rtt_ms, say=log)
    if result.leftovers:
        raise RuntimeError(f"the hosts left {result.leftovers}")
    per_round = {
        name: {"sent": b.sent // rounds, "received": b.received // rounds}
        for name, b in result.link_bytes.items()
    }
    trainer_sent = [per_round[f"trainer-{i}"]["sent"] for i in range(1, TRAINERS + 1)]
    return {
        "rounds": rounds,
        "round_s": round(statistics.median(result.round_seconds[1:]), 3),
        "first_round_s": round(result.round_seconds[0], 3),
        "bytes_per_round": per_round,
        "trainer_sent_per_round_mean": int(statistics.mean(trainer_sent)),
        "record_fetch_s": round(result.record_fetch_seconds, 4),
        "audit_s": round(result.audit_seconds, 3),
        "audited_blobs": result.fetched,
        "setup_s": round(result.setup_seconds, 1),
        "accuracy": result.accuracy,
    }


def _dropout() -> dict[str, Any]:
    """Four trainers; in round 2 the last one's host is cut off while its masked input is
    on its way (its uploads throttled so that there is a moment to do it in): round 2
    must count the other three, its sum checked by the auditor, and no attempt repeated.
    (With three trainers SecAgg+'s quorum is all three: no dropout can be survived.)"""
    log("-- four trainers, the last cut off in round 2's masked stage")
    with tempfile.TemporaryDirectory(prefix="chainml-hosts-") as tmp:
        # a stage timeout well above the throttled upload's few seconds, even when loaded
        result = hostjob.run(
            Path(tmp), trainers=4, rounds=3, cut_trainer_round=2, stage_timeout=12, say=log
        )
    counted = {r: len(slots) for r, slots in result.audited.items()}
    if counted != {1: 4, 2: 3, 3: 4} or set(result.attempts.values()) != {1}:
        raise RuntimeError(f"the dropout was not survived: {result.audited} {result.attempts}")
    return {
        "counted_per_round": counted,
        "attempts": result.attempts,
        "round_2_s": round(result.round_seconds[1], 2),
        "audited": "every round's sum checked against the survivors' commitments",
    }


def _one_network(rounds: int, switch_at: int) -> dict[str, Any]:
    """Both latencies on one network (a quick run): the relays pass traffic at no delay up
    to round ``switch_at - 1`` and add ``RTT_MS`` from then on; round ``switch_at``
    straddles the switch and is left out."""
    with tempfile.TemporaryDirectory(prefix="chainml-hosts-") as tmp:
        result = hostjob.run(
            Path(tmp),
            trainers=TRAINERS,
            rounds=rounds,
            rtt_ms=RTT_MS,
            rtt_from_round=switch_at,
            say=log,
        )
    if result.leftovers or result.link_bytes_at_switch is None:
        raise RuntimeError(f"the hosts left {result.leftovers}")
    before, total = result.link_bytes_at_switch, result.link_bytes
    n_before, n_after = switch_at - 1, rounds - switch_at + 1

    def per_round(moved: dict[str, Any], n: int) -> dict[str, dict[str, int]]:
        return {k: {"sent": b.sent // n, "received": b.received // n} for k, b in moved.items()}

    after = {k: total[k] - before[k] for k in total}
    at_0 = {
        "rounds": n_before,
        "round_s": round(statistics.median(result.round_seconds[1:n_before]), 3),
        "first_round_s": round(result.round_seconds[0], 3),
        "bytes_per_round": per_round(before, n_before),
        "via": "the delay relays, at no delay",
    }
    at_50 = {
        "rounds": n_after,
        "round_s": round(statistics.median(result.round_seconds[switch_at:]), 3),
        "bytes_per_round": per_round(after, n_after),
        "record_fetch_s": round(result.record_fetch_seconds, 4),
        "audit_s": round(result.audit_seconds, 3),
        "audited_blobs": result.fetched,
    }
    return {"setup_s": round(result.setup_seconds, 1), "rtt_0ms": at_0, f"rtt_{RTT_MS}ms": at_50}


def _lossy() -> dict[str, Any]:
    """50 ms more per exchange and every host dropping 1% of the packets it sends: the
    rounds must complete, each counting every trainer, and check out."""
    log("-- 50 ms and 1% loss on every link")
    with tempfile.TemporaryDirectory(prefix="chainml-hosts-") as tmp:
        result = hostjob.run(
            Path(tmp), trainers=TRAINERS, rounds=4, rtt_ms=RTT_MS, loss_percent=1, say=log
        )
    if any(len(slots) != TRAINERS for slots in result.audited.values()):
        raise RuntimeError(f"a round lost a trainer to 1% loss: {result.audited}")
    return {
        "round_s": round(statistics.median(result.round_seconds[1:]), 3),
        "attempts": result.attempts,
        "audited": "every round, all trainers counted",
    }


def run(quick: bool) -> dict[str, Any]:
    reason = unavailable()
    if reason:
        log(f"skipped: {reason}")
        return {"skipped": reason}
    baseline = statistics.median(in_process_round(r) for r in (1, 2, 3))
    log(f"in process: {baseline:.3f} s a round")
    if quick:  # one network: rounds 1-2 at no delay, 4-5 with it (3 straddles the switch)
        both = _one_network(5, 3)
        at_0, at_50 = both["rtt_0ms"], both[f"rtt_{RTT_MS}ms"]
    else:
        at_0 = _measure(6, 0)
        log("-- again with 50 ms added to every exchange between hosts")
        at_50 = _measure(5, RTT_MS)
    faults: dict[str, Any] = {}
    if not quick:  # make bench: a trainer cut off in its masked stage, four trainers
        faults["trainer_cut_in_masked_stage"] = _dropout()
        faults[f"rtt_{RTT_MS}ms_loss_1pct"] = _lossy()
    return {
        **({"faults": faults} if faults else {}),
        "hosts": 5,
        "trainers": TRAINERS,
        "in_process_round_s": round(baseline, 4),
        "rtt_0ms": at_0,
        f"rtt_{RTT_MS}ms": at_50,
        "round_s_0ms": at_0["round_s"],
        f"round_s_{RTT_MS}ms": at_50["round_s"],
        "ratio_0ms_vs_in_process": round(at_0["round_s"] / baseline, 1),
        f"ratio_{RTT_MS}ms_vs_0ms": round(at_50["round_s"] / at_0["round_s"], 2),
        "baseline": "the same round of the same job in one process (run_in_memory)",
    }
