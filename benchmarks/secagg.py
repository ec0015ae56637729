"""Secure aggregation: chainml's SecAgg+ against plaintext FedAvg and Flower's SecAgg+.

For each cell of the grid (n clients, m parameters; 10% of the clients drop after sharing
their keys, so every round also pays for recovering their masks), measured in one run:

- chainml: each client's compute over the five stages (mean over the clients that stay),
  the server's compute (checking every signature, routing, summing, rebuilding seeds and
  keys, removing masks), bytes each client sends (the ratio against float32 and Flower's
  figure) and, reported beside them, bytes it receives;
- plaintext FedAvg on the same inputs: the server sums the float32 vectors; each client
  sends 4m bytes;
- Flower's SecAgg+ (``flwr``, installed by ``scripts/setup-flower.sh`` in ``.venv-flower``)
  with the same neighbourhood size, threshold and dropouts, through Flower's own client
  stage functions and server-side arithmetic (``benchmarks/_flower_secaggplus.py``).

Verifiable aggregation: each client signs a commitment to its masked input (its hash and
the neighbours it masked with, as an EIP-712 RoundCommitment); the aggregator publishes a
transcript from which anyone recomputes the sum (``verify_round``).  Reported: the cost
of one commitment (``commit_s``, inside ``client_s``) and of checking a round
(``verify_sum_s``).
Homomorphic commitments (``verifiable=True`` rounds): each client also commits to its
unmasked quantised update with a Module-SIS lattice commitment (``chainml.crypto.hazmat.lattice``)
and its randomness is summed securely, so anyone checks the sum from the commitments alone
(``verify_sum``).  Reported at n = 100, m = 10^6: one commitment, and the check.
Issue 13 (SecAgg+ against an active server): the parameters the rule derives for each n
(degree, threshold t, min_partners m, quorum, the smallest sum a deviating server can learn,
the dropouts tolerated), and each cell's round cost before and after the fix, both measured
in this run: "before" is ``chainml/training/secagg.py`` as of commit 193147f, read from git
and imported under another name (skipped, with the reason, where git history is missing).
A last line trains MLPs on digits with 10 non-IID parties, plaintext and secure, and
reports the time of a round end to end (local training included) as the model grows:
from 4,810 parameters (the demo's size) to about 10^5 (and 10^6 in the full run), and times
the public-key operations a round of 10 parties needs whatever the size: the floor that
keeps small models above the 1.5× target.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from chainml.crypto import Identity
from chainml.training import secagg
from chainml.training.secagg import quorum_for, secure_parameters

ROOT = Path(__file__).resolve().parents[1]
FLOWER = ROOT / ".venv-flower" / "bin" / "python"
DROPOUT = 0.1
TARGET_RATIO = 1.5  # a secure round end to end against a plaintext one (the target)
JOB_ROUNDS = 4  # the job a round end to end is timed in: pair keys count once per job
CHART = ROOT / "reports" / "secagg-end-to-end.svg"
PRE_FIX = "193147f"  # the last commit before the fix of issue 13
_IDS: list[Identity] = []


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _sent(message: Any) -> int:
    """Bytes a client sends for ``message`` (ids as 2 bytes), MACs and hashes included;
    by class name, so that the module before the fix is counted the same way."""
    kind = type(message).__name__

    def keyed(table: Any) -> int:
        return sum(len(v) + 2 for v in (table or {}).values())

    if kind == "SealedShares":
        return keyed(message.ciphertexts)
    if kind == "MaskedInput":
        partners = getattr(message, "partners", ())
        return (
            int(message.vector.nbytes)
            + 65
            + 2 * len(partners)
            + keyed(getattr(message, "partner_tags", {}))
            + len(getattr(message, "value_commitment", b""))
        )
    if kind == "SurvivorSignature":
        return 65 + keyed(getattr(message, "tags", {}))
    if kind == "UnmaskShares":
        return keyed(message.self_mask) + keyed(message.mask_key)
    # KeyAdvert: key, seed commitment, signature, share root, a MAC and hashes per neighbour
    root = len(getattr(message, "shares_root", b""))
    return 32 + 32 + 65 + root + keyed(message.tags) + keyed(getattr(message, "share_hashes", {}))


def _received(message: Any) -> int:
    """Bytes a client receives in ``message`` from the server, counted as ``_sent`` counts
    (ids as 2 bytes; an advert as its sender sent it, cut to this client's MAC and hashes)."""
    kind = type(message).__name__

    def keyed(table: Any) -> int:
        return sum(len(v) + 2 for v in (table or {}).values())

    if kind == "NeighbourKeys":
        return sum(2 + _sent(a) for a in message.adverts)
    if kind == "ShareBatch":
        return keyed(message.ciphertexts)
    if kind == "SurvivorList":
        return 2 * len(message.survivors)
    # UnmaskRequest: the list, each approval, each partner entry (list and MAC)
    entries = getattr(message, "partners", {}) or {}
    return (
        2 * len(message.survivors)
        + keyed(message.approvals)
        + sum(2 + 2 * len(ids) + len(tag) for ids, tag in entries.values())
    )


def _identities(n: int) -> list[Identity]:
    while len(_IDS) < n:
        _IDS.append(Identity.generate())
    return _IDS[:n]


def _params(n: int, m: int, module: ModuleType = secagg) -> Any:
    """A round of the first ``n`` identities with the default graph and threshold (of
    ``module``: the current one, or the one before the fix)."""
    ids = dict(enumerate(_identities(n), start=1))
    params: Any = module.RoundParams.create(
        {i: a.address for i, a in ids.items()},
        {i: a.x25519.public_bytes for i, a in ids.items()},
        m,
        chain_id=1,
        jobs="0x" + "11" * 20,
        job_id=1,
        round=1,
        clip=100.0,
        graph_seed=bytes(32),
    )
    return params


def pre_fix_module() -> tuple[ModuleType | None, str]:
    """``chainml.training.secagg`` as of ``PRE_FIX``, from git, imported under another
    name (it imports only chainml.crypto and chainml.training modules that still exist);
    (None, why) where the history is not available."""
    try:
        source = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{PRE_FIX}:src/chainml/training/secagg.py"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"git history unavailable ({type(exc).__name__}): no 'before' figures"
    name = "chainml_secagg_pre_fix"
    path = Path(tempfile.mkdtemp(prefix="chainml-bench-")) / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        return None, "could not load the module before the fix"
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while building
    try:
        spec.loader.exec_module(module)
    except (ImportError, AttributeError, SyntaxError) as exc:  # a module since removed
        del sys.modules[name]
        return None, f"the module before the fix does not import ({exc!r})"
    return module, f"chainml/training/secagg.py at {PRE_FIX}"


def parameters(n: int) -> dict[str, Any]:
    """The rule's parameters for a roster of ``n`` (``secure_parameters``)."""
    degree, t, m = secure_parameters(n)
    quorum = quorum_for(n, t)
    complete = degree >= n - 1
    return {
        "n": n,
        "graph": "complete" if complete else "harary",
        "degree": degree,
        "threshold": t,
        "min_partners": m,
        "quorum": quorum,
        "smallest_sum": m - t + 2,
        "colluders_tolerated": t - 1,
        # complete graphs: any n - quorum (>= floor(0.3 n)) in any stages; sparse graphs:
        # n - quorum overall, and degree - m among any client's neighbours
        "dropouts_tolerated": n - quorum,
        "neighbour_dropouts_tolerated": None if complete else degree - m,
    }


def chainml_round(n: int, m: int, module: ModuleType = secagg) -> dict[str, Any]:
    ids = _identities(n)
    params = _params(n, m, module)
    roster = params.roster
    rng = np.random.default_rng(0)
    vectors = {i: rng.normal(scale=0.1, size=m).astype(np.float32) for i in roster}
    clients = {
        i: module.SecAggClient(params, i, ids[i - 1], vectors[i], rng=np.random.default_rng(i))
        for i in roster
    }
    spent = dict.fromkeys(roster, 0.0)
    sent = dict.fromkeys(roster, 0)
    received = dict.fromkeys(roster, 0)
    server = module.SecAggServer(params)
    server_time = 0.0

    def to_server(message: object) -> None:
        nonlocal server_time
        started = time.perf_counter()
        server.receive(message)
        server_time += time.perf_counter() - started

    published: dict[int, np.ndarray] = {}

    def client_does(i: int, fn: Any, *args: Any) -> Any:
        started = time.perf_counter()
        out = fn(*args)
        spent[i] += time.perf_counter() - started
        sent[i] += _sent(out)
        if type(out).__name__ == "MaskedInput":
            published[i] = out.vector
        return out

    for i in roster:
        to_server(client_does(i, clients[i].advertise))
    dropped = set(sorted(roster)[: round(DROPOUT * n)])
    for stage in ("shares", "masked", "consistency", "unmask"):
        started = time.perf_counter()
        outgoing = server.advance()
        server_time += time.perf_counter() - started
        for message in outgoing:
            if stage != "shares" and message.recipient in dropped:
                continue
            received[message.recipient] += _received(message)
            to_server(client_does(message.recipient, clients[message.recipient].handle, message))
    started = time.perf_counter()
    result = server.finish()
    server_time += time.perf_counter() - started
    stay = [i for i in roster if i not in dropped]
    expected = sum(vectors[i].astype(np.float64) for i in stay)
    started = time.perf_counter()
    checked = module.verify_round(params, result.transcript, published.__getitem__)
    verify_s = time.perf_counter() - started
    assert np.array_equal(checked, result.total)
    started = time.perf_counter()
    commitment = module.input_commitment(
        module.input_hash(published[stay[0]]), tuple(range(params.degree))
    )
    _IDS[0].account.sign_digest(params.input_digest(commitment))
    commit_s = time.perf_counter() - started
    return {
        "client_s": sum(spent[i] for i in stay) / len(stay),
        "server_s": server_time,
        "bytes_per_client": sum(sent[i] for i in stay) / len(stay),
        # not in the ratio (the float32 baseline and Flower count what a client sends)
        "bytes_received_per_client": sum(received[i] for i in stay) / len(stay),
        "max_abs_error": float(np.abs(result.total - expected).max()),
        "degree": params.degree,
        "threshold": params.threshold,
        "commit_s": commit_s,
        "verify_sum_s": verify_s,
    }


def plaintext_round(n: int, m: int) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    vectors = [rng.normal(scale=0.1, size=m).astype(np.float32) for _ in range(n)]
    started = time.perf_counter()
    blobs = [v.tobytes() for v in vectors]
    client = (time.perf_counter() - started) / n
    started = time.perf_counter()
    total = np.zeros(m, dtype=np.float32)
    for b in blobs:
        total += np.frombuffer(b, dtype=np.float32)
    return {
        "client_s": client,
        "server_s": time.perf_counter() - started,
        "bytes_per_client": 4 * m,
    }


def flower_round(n: int, m: int, degree: int, threshold: int) -> dict[str, Any] | None:
    if not FLOWER.exists():
        return None
    shares = degree + 1  # Flower counts the client itself among the share holders
    out = subprocess.run(
        [
            str(FLOWER),
            str(ROOT / "benchmarks" / "_flower_secaggplus.py"),
            str(n),
            str(m),
            str(DROPOUT),
            str(shares),
            str(threshold),
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def public_key_floor(n: int = 10, rounds: int = JOB_ROUNDS) -> dict[str, Any]:
    """The public-key operations a SecAgg+ job of ``n`` parties needs per round whatever the
    model's size (complete graph below 12 parties; default threshold), timed here one after
    another: an X25519 agreement per ordered pair of neighbours for the masks and a fresh
    mask key pair per client each round; the pair keys (an agreement per ordered pair of
    neighbours, which exchange MACs) once per job, spread over ``rounds``; the server's
    signature check of each advert, masked input and survivor approval, each client's
    check of ``quorum - 1`` other approvals (signatures since wire format /4), and the
    clients' three signatures each.  The clients' other checks are MACs under the pair
    keys, one per advert and per partner list (counted, not timed here: a microsecond
    each)."""
    from chainml.crypto import X25519KeyPair, keccak256, recover_address

    ids, params = _identities(n), _params(n, 1)
    edges = sum(len(v) for v in params.neighbours.values())
    counts = {
        "x25519_agreements": edges,
        "x25519_key_pairs": n,
        "signature_checks": 3 * n + n * (params.quorum - 1),
        "signatures": 3 * n,
    }
    pair_agreements = edges  # each ordered pair of neighbours agrees its pair key
    pair, peer = X25519KeyPair.generate(), X25519KeyPair.generate().public_bytes
    digest = keccak256(b"round")
    signature = ids[0].account.sign_digest(digest)
    work: dict[str, Callable[[], object]] = {
        "x25519_agreements": lambda: pair.exchange(peer),
        "x25519_key_pairs": X25519KeyPair.generate,
        "signature_checks": lambda: recover_address(digest, signature),
        "signatures": lambda: ids[0].account.sign_digest(digest),
    }
    started = time.perf_counter()
    for name, count in counts.items():
        for _ in range(count):
            work[name]()
    for _ in range(pair_agreements // rounds):
        pair.exchange(peer)
    return {
        "n": n,
        **counts,
        "pair_key_agreements_per_job": pair_agreements,
        "mac_checks": 2 * edges,
        "seconds": round(time.perf_counter() - started, 4),
    }


def end_to_end(
    hidden_layers: list[tuple[int, ...]], rounds: int = JOB_ROUNDS, repeats: int = 3
) -> dict[str, Any]:
    """Digits, 10 Dirichlet(0.5) parties, 5 local epochs: the time of a round — a job of
    ``rounds`` rounds, divided by them, so the pair keys agreed in its first round count
    once — plaintext FedAvg against SecAgg+ (all its deviating-server protections, no
    lattice commitments: those are their own line), for MLPs of growing width.  All the
    parties run one after another in this process: every client's and the server's work
    counts.  Each mode runs ``repeats`` times (three; two in a quick run), interleaved; the
    fastest run counts."""
    from chainml.training.data import dirichlet_partition, load
    from chainml.training.federated import train_federated
    from chainml.training.models import MLP, flatten

    data = load("digits", seed=0)
    shards = dirichlet_partition(data.y_train, 10, 0.5, seed=0)
    sizes: list[dict[str, Any]] = []
    for hidden in hidden_layers:

        def make(hidden: tuple[int, ...] = hidden) -> MLP:
            return MLP(data.n_features, data.n_classes, hidden, seed=0)

        m = flatten(make().params).size
        log(f"end to end: MLP 64-{'-'.join(map(str, hidden))}-10, m={m}")
        timing: dict[str, float] = {}
        for mode in ("fedavg", "secagg") * repeats:
            started = time.perf_counter()
            train_federated(data, shards, rounds=rounds, mode=mode, seed=0, make_model=make)
            took = (time.perf_counter() - started) / rounds
            timing[mode] = min(took, timing.get(mode, took))
        sizes.append(
            {
                "hidden": list(hidden),
                "m": m,
                "plaintext_round_s": round(timing["fedavg"], 4),
                "secure_round_s": round(timing["secagg"], 4),
                "ratio": round(timing["secagg"] / timing["fedavg"], 2),
            }
        )
    floor = public_key_floor(len(shards), rounds)
    floor["over_half_a_plaintext_round"] = round(
        float(floor["seconds"]) / (sizes[0]["plaintext_round_s"] / 2), 2
    )
    CHART.parent.mkdir(exist_ok=True)
    CHART.write_text(ratio_chart(sizes, TARGET_RATIO))
    return {
        "task": "digits, 10 parties (Dirichlet 0.5), 5 local epochs, a round with training",
        "rounds_per_job": rounds,
        "target_ratio": TARGET_RATIO,
        "sizes": sizes,
        "public_key_floor": floor,  # the first size's round can be no faster than this
        "chart": str(CHART.relative_to(ROOT)),
    }


def ratio_chart(sizes: list[dict[str, Any]], target: float) -> str:
    """The secure/plaintext ratio of a round against the model's size (log scale), with
    the target as a dashed line: an SVG document."""
    width, height, pad = 560, 260, 48
    lo, hi = 3.0, 6.5  # log10 of the parameter counts on the x axis
    top = max(3.0, *(s["ratio"] for s in sizes)) + 0.5

    def xy(m: int, ratio: float) -> tuple[float, float]:
        x = pad + (width - 2 * pad) * (np.log10(m) - lo) / (hi - lo)
        return x, height - pad - (height - 2 * pad) * ratio / top

    points = [xy(s["m"], s["ratio"]) for s in sizes]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="#d8613b"/>'
        f'<text x="{x + 6:.1f}" y="{y - 6:.1f}" font-size="12">{s["ratio"]}×</text>'
        for (x, y), s in zip(points, sizes, strict=True)
    )
    ticks = "".join(
        f'<text x="{xy(10**e, 0)[0] - 12:.1f}" y="{height - pad + 16}" font-size="12">10^{e}</text>'
        for e in range(3, 7)
    )
    goal = xy(10**3, target)[1]
    grid = "".join(
        f'<line x1="{pad}" x2="{width - pad}" y1="{xy(10**3, g)[1]:.1f}" '
        f'y2="{xy(10**3, g)[1]:.1f}" stroke="#ddd"/><text x="{pad - 30}" '
        f'y="{xy(10**3, g)[1] + 4:.1f}" font-size="12">{g}×</text>'
        for g in range(0, int(top) + 1)
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif"><rect width="100%" height="100%" fill="#fff"/>'
        f'<text x="{pad}" y="20" font-size="14">Secure round / plaintext round, '
        "10 parties, digits</text>"
        f'<line x1="{pad}" x2="{width - pad}" y1="{goal:.1f}" y2="{goal:.1f}" stroke="#3b6fd8" '
        f'stroke-dasharray="6 4"/><text x="{width - pad - 70}" y="{goal - 6:.1f}" '
        f'font-size="12" fill="#3b6fd8">target {target}×</text>'
        f"{grid}"
        f'<polyline points="{line}" fill="none" stroke="#d8613b" stroke-width="2"/>{dots}'
        f'{ticks}<text x="{width / 2 - 60:.0f}" y="{height - 8}" font-size="12">'
        "parameters (log scale)</text></svg>"
    )


def lattice_commitments(n: int = 100, m: int = 10**6) -> dict[str, Any]:
    """One client's commitment at m, and the check of a sum over n commitments (three
    distinct ones, repeated to n: the same additions, and a sum that really opens)."""
    from chainml.crypto.hazmat import lattice

    rng = np.random.default_rng(0)
    started = time.perf_counter()
    key = lattice.CommitmentKey(b"bench", m)
    expand_s = time.perf_counter() - started
    bound = (1 << 31) // n
    values = [rng.integers(-bound, bound, m) for _ in range(3)]
    openings = [lattice.CommitmentKey.randomness(rng) for _ in range(3)]
    times, commitments = [], []
    for u, r in zip(values, openings, strict=True):
        started = time.perf_counter()
        commitments.append(key.commit(u, r))
        times.append(time.perf_counter() - started)
    counts = [n - 2 * (n // 3), n // 3, n // 3]
    listed = [c for c, k in zip(commitments, counts, strict=True) for _ in range(k)]
    total = np.sum([k * u for k, u in zip(counts, values, strict=True)], axis=0)
    opening = np.sum([k * r for k, r in zip(counts, openings, strict=True)], axis=0)
    started = time.perf_counter()
    ok = key.check_sum(listed, total, opening)
    check_s = time.perf_counter() - started
    return {
        "n": n,
        "m": m,
        "commit_s": round(min(times), 4),
        "check_sum_s": round(check_s, 4),
        "key_expansion_s": round(expand_s, 4),
        "commitment_bytes": lattice.COMMITMENT_BYTES,
        "randomness_summed_values": lattice.RANDOMNESS_LEN,
        "check_passes": ok,
        "targets": {"commit_s": 0.5, "check_sum_s": 1.0},
    }


def _cost(figures: dict[str, Any]) -> float:
    return float(figures["client_s"] + figures["server_s"])


def _rounded(figures: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}


def run(quick: bool = False) -> dict[str, Any]:
    full = bool(os.environ.get("CHAINML_BENCH_FULL")) and not quick
    if full:
        grid = [(n, m) for n in (10, 50, 100) for m in (10**4, 10**5, 10**6)]
    elif quick:  # under a minute on a loaded two-core machine, Flower included
        grid = [(10, 10**4), (50, 10**5)]
    else:
        grid = [(10, 10**4), (100, 10**5), (100, 10**6)]
    before, before_source = pre_fix_module()
    log(f"before the fix: {before_source}")
    cells = []
    for n, m in grid:
        log(f"n={n} m={m}")
        ours = chainml_round(n, m)
        old = chainml_round(n, m, before) if before is not None else None
        for _ in range(0 if quick else 1):  # interleaved again: the faster of two counts
            ours = min(ours, chainml_round(n, m), key=_cost)
            if before is not None and old is not None:
                old = min(old, chainml_round(n, m, before), key=_cost)
        plain = plaintext_round(n, m)
        flower = flower_round(n, m, ours["degree"], ours["threshold"])
        cell: dict[str, Any] = {
            "n": n,
            "m": m,
            "dropout": DROPOUT,
            "chainml": _rounded(ours),
            "plaintext": {k: round(v, 5) if isinstance(v, float) else v for k, v in plain.items()},
            "bytes_vs_float32": round(ours["bytes_per_client"] / (4 * m), 3),
            "server_vs_plaintext": round(ours["server_s"] / plain["server_s"], 1),
        }
        if old is not None:
            cell["chainml_before_fix"] = _rounded(old)
            cell["client_after_vs_before"] = round(ours["client_s"] / old["client_s"], 3)
            cell["server_after_vs_before"] = round(ours["server_s"] / old["server_s"], 3)
            cell["bytes_after_vs_before"] = round(
                ours["bytes_per_client"] / old["bytes_per_client"], 3
            )
        if flower is not None:
            cell["flower"] = {k: round(v, 4) for k, v in flower.items()}
            cell["client_vs_flower"] = round(ours["client_s"] / flower["client_s"], 3)
            cell["server_vs_flower"] = round(ours["server_s"] / flower["server_s"], 3)
            cell["bytes_vs_flower"] = round(
                ours["bytes_per_client"] / flower["bytes_per_client"], 3
            )
        cells.append(cell)
    sizes = [(64,)] if quick else [(64,), (128,), (320,), (320, 256)]
    result: dict[str, Any] = {
        "baseline": "plaintext FedAvg, Flower's SecAgg+ (flwr) and chainml's SecAgg+ before "
        f"the fix of issue 13 ({PRE_FIX}), on the same inputs, same run",
        "flower": "installed" if FLOWER.exists() else "not installed: run scripts/setup-flower.sh",
        "before_fix": before_source,
        "parameters": [parameters(n) for n in sorted({4, 5, 10, 12, 20, 30, 31, 50, 100})],
        "cells": cells,
        "bytes_within_1_1x_float32": all(c["bytes_vs_float32"] <= 1.1 for c in cells),
        "end_to_end": end_to_end(
            sizes + ([(1024, 1024)] if full else []), repeats=2 if quick else 3
        ),
        "lattice_commitments": lattice_commitments(),
    }
    if FLOWER.exists():
        result["faster_than_flower_everywhere"] = all(
            c["client_vs_flower"] < 1 and c["server_vs_flower"] < 1 for c in cells
        )
    return result
