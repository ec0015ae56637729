"""The node's dashboard: one server-rendered HTML page of what is on chain and what the
node has noticed.  No scripts, no external assets (it must render on a machine with no
network); it refreshes itself every ``REFRESH`` seconds.

Sections: the node; parties and their stakes (with a bar chart); jobs and their rounds
(with a plot of accuracy per round, and the differential privacy spent (ε) by each round,
for the jobs this node aggregates); models, versions and grants; receipt batches; alerts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from html import escape
from typing import Any

from chainml.ledger.bindings import Chainml

REFRESH = 5
MAX_ROWS = 50
ETHER = 10**18


@dataclass
class Snapshot:
    node: dict[str, str]
    parties: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)
    grants: list[dict[str, Any]] = field(default_factory=list)
    batches: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    rounds: list[dict[str, Any]] = field(default_factory=list)
    challenges: list[dict[str, Any]] = field(default_factory=list)
    accuracy: dict[int, list[tuple[int, float]]] = field(default_factory=dict)


def collect(
    cm: Chainml,
    node: dict[str, str],
    accounts: list[str],
    alerts: list[Any],
    accuracy: dict[int, dict[int, float]] | None = None,
    epsilon: dict[int, dict[int, float]] | None = None,
    verdicts: dict[tuple[int, int], str] | None = None,
) -> Snapshot:
    """Read what the page shows from the chain (newest first, at most ``MAX_ROWS`` each);
    ``accuracy`` is what this node measured on its held-out data, by job and round;
    ``epsilon`` the ε a DP job had spent through each round this node aggregated;
    ``verdicts`` this node's audit of each round, as a validator ("ok" or why not)."""
    snap = Snapshot(node)
    accuracy = accuracy or {}
    epsilon = epsilon or {}
    verdicts = verdicts or {}
    for account in accounts[:MAX_ROWS]:
        info = cm.registry.party(account)
        snap.parties.append(
            {
                "account": account,
                "roles": str(info.roles.name or int(info.roles)),
                "endpoint": info.endpoint,
                "stake": cm.registry.stake_of(account),
            }
        )
    for job_id in range(cm.jobs.job_count(), 0, -1)[:MAX_ROWS]:
        job = cm.jobs.job(job_id)
        spent = epsilon.get(job_id, {})
        snap.jobs.append(
            {
                "id": job_id,
                "state": job.state.name,
                "rounds": f"{job.rounds_done}/{job.params.rounds}",
                "participants": job.participant_count,
                "escrow": job.escrow,
                "paid": job.paid,
                "ε (DP)": f"{spent[max(spent)]:.3f}" if spent else "-",
            }
        )
        for round_no in range(job.rounds_done, 0, -1):
            if len(snap.rounds) >= MAX_ROWS:
                break
            recorded = cm.jobs.round(job_id, round_no)
            measured = accuracy.get(job_id, {}).get(round_no)
            snap.rounds.append(
                {
                    "job": job_id,
                    "round": round_no,
                    "trainers counted": bin(recorded.bitmap).count("1"),
                    "status": recorded.status.name.lower(),
                    "validated here": verdicts.get((job_id, round_no), "-"),
                    "record": recorded.aggregate_cid,
                    "commitment root": recorded.commitment_root.hex()[:16] + "…",
                    "accuracy": "-" if measured is None else f"{measured:.3f}",
                    "ε (DP)": f"{spent[round_no]:.3f}" if round_no in spent else "-",
                }
            )
        if accuracy.get(job_id):
            snap.accuracy[job_id] = sorted(accuracy[job_id].items())
    models = cm.models.contract
    for version_id in range(int(models.call("version_count")), 0, -1)[:MAX_ROWS]:
        v = cm.models.version(version_id)
        snap.versions.append(
            {"id": version_id, "model": v.model_id, "ciphertext": v.ciphertext_cid, "job": v.job_id}
        )
    for grant_id in range(int(models.call("grant_count")), 0, -1)[:MAX_ROWS]:
        g = cm.models.grant_info(grant_id)
        snap.grants.append(
            {
                "id": grant_id,
                "version": g.version_id,
                "grantee": g.grantee,
                "expiry": g.expiry,
                "revoked": g.revoked,
            }
        )
    jobs = cm.jobs
    for challenge_id in range(jobs.functions.challenge_count(), 0, -1)[:MAX_ROWS]:
        c = jobs.challenge_info(challenge_id)
        snap.challenges.append(
            {
                "id": challenge_id,
                "job": c.job_id,
                "round": c.round,
                "challenger": c.challenger,
                "committee": len(c.committee),
                "uphold stake": c.uphold_stake,
                "reject stake": c.reject_stake,
                "status": c.status.name.lower(),
            }
        )
    receipts = cm.receipts.contract
    for batch_id in range(int(receipts.call("batch_count")), 0, -1)[:MAX_ROWS]:
        b = receipts.call("get_batch", batch_id)
        snap.batches.append(
            {"id": batch_id, "provider": b[0], "client": b[1], "receipts": b[3], "amount": b[4]}
        )
    snap.alerts = [
        {"kind": a.kind, "subject": a.subject, "detail": a.detail} for a in alerts[-MAX_ROWS:]
    ][::-1]
    return snap


def _eth(wei: int) -> str:
    return f"{wei / ETHER:,.4f}"


_WEI = ("stake", "escrow", "paid", "amount", "uphold stake", "reject stake")  # shown in ETH


def _table(title: str, rows: list[dict[str, Any]], empty: str, table_id: str) -> str:
    head = f'<h2>{escape(title)} <span class="n">{len(rows)}</span></h2>'
    if not rows:
        return f'{head}<p class="empty" id="{table_id}">{escape(empty)}</p>'
    cols = list(rows[0])
    th = "".join(f"<th>{escape(c)}</th>" for c in cols)
    body = "".join(
        "<tr>"
        + "".join(f"<td>{escape(_eth(v) if c in _WEI else str(v))}</td>" for c, v in row.items())
        + "</tr>"
        for row in rows
    )
    return f'{head}<table id="{table_id}"><tr>{th}</tr>{body}</table>'


def _stake_chart(parties: list[dict[str, Any]]) -> str:
    """A horizontal bar per party, as inline SVG."""
    if not parties:
        return ""
    top = max(p["stake"] for p in parties) or 1
    bar_h, width, label_w = 22, 640, 150
    bars = []
    for i, p in enumerate(parties):
        w = int((width - label_w - 90) * p["stake"] / top)
        y = i * (bar_h + 6)
        bars.append(
            f'<text x="0" y="{y + 16}" class="lbl">{escape(p["account"][:12])}…</text>'
            f'<rect x="{label_w}" y="{y}" width="{max(w, 1)}" height="{bar_h}" class="bar"/>'
            f'<text x="{label_w + w + 6}" y="{y + 16}" class="lbl">{_eth(p["stake"])}</text>'
        )
    height = len(parties) * (bar_h + 6)
    return (
        f'<svg id="stake-chart" width="{width}" height="{height}" role="img" '
        f'aria-label="stake per party">{"".join(bars)}</svg>'
    )


def _accuracy_chart(job_id: int, points: list[tuple[int, float]]) -> str:
    """Accuracy per round as an inline SVG line with its points, axes 0..1 and 1..last."""
    width, height, pad = 640, 220, 36
    last = max(r for r, _ in points)

    def xy(r: int, a: float) -> tuple[float, float]:
        x = pad + (width - 2 * pad) * ((r - 1) / max(last - 1, 1))
        return x, height - pad - (height - 2 * pad) * a

    coords = [xy(r, a) for r, a in points]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" class="dot"><title>round {r}: {a:.3f}</title>'
        "</circle>"
        for (x, y), (r, a) in zip(coords, points, strict=True)
    )
    grid = "".join(
        f'<line x1="{pad}" x2="{width - pad}" y1="{xy(1, g)[1]:.1f}" y2="{xy(1, g)[1]:.1f}" '
        f'class="grid"/><text x="2" y="{xy(1, g)[1] + 4:.1f}" class="lbl">{g:.1f}</text>'
        for g in (0.0, 0.5, 0.9, 1.0)
    )
    return (
        f"<h2>Accuracy per round, job {job_id}</h2>"
        f'<svg id="accuracy-chart-{job_id}" width="{width}" height="{height}" role="img" '
        f'aria-label="held-out accuracy per round of job {job_id}">{grid}'
        f'<polyline points="{line}" class="line"/>{dots}'
        f'<text x="{pad}" y="{height - 8}" class="lbl">round 1</text>'
        f'<text x="{width - pad - 50}" y="{height - 8}" class="lbl">round {last}</text></svg>'
    )


STYLE = """
body{font-family:sans-serif;margin:24px;background:#fafafa;color:#222}
h1{margin:0 0 4px}h2{margin:24px 0 8px;font-size:18px}.n{color:#888;font-weight:normal}
table{border-collapse:collapse;background:#fff}td,th{border:1px solid #ddd;padding:4px 8px;
font-size:13px;text-align:left}th{background:#eef}.empty{color:#888}
.bar{fill:#3b6fd8}.lbl{font-size:12px;fill:#333}.alerts td{background:#fff1f0}
.meta{color:#555;font-size:13px}
.line{fill:none;stroke:#d8613b;stroke-width:2}.dot{fill:#d8613b}.grid{stroke:#ddd}
"""


def render(snap: Snapshot) -> str:
    meta = " · ".join(f"{escape(k)}: {escape(v)}" for k, v in snap.node.items())
    alerts = _table("Alerts", snap.alerts, "no alerts", "alerts").replace(
        "<table ", '<table class="alerts" '
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f'<meta http-equiv="refresh" content="{REFRESH}">'
        f"<title>chainml node {escape(snap.node.get('name', ''))}</title>"
        f"<style>{STYLE}</style></head><body>"
        f"<h1>chainml node {escape(snap.node.get('name', ''))}</h1>"
        f'<p class="meta">{meta}</p>'
        + alerts
        + _table("Parties", snap.parties, "no party registered", "parties")
        + _stake_chart(snap.parties)
        + _table("Jobs", snap.jobs, "no job yet", "jobs")
        + "".join(_accuracy_chart(j, pts) for j, pts in snap.accuracy.items())
        + _table("Rounds", snap.rounds, "no round recorded", "rounds")
        + _table("Challenges and votes", snap.challenges, "no challenge", "challenges")
        + _table("Model versions", snap.versions, "no model published", "versions")
        + _table("Grants", snap.grants, "no grant", "grants")
        + _table("Receipt batches", snap.batches, "no receipts posted", "batches")
        + "</body></html>"
    )
