"""``chainml job create | status | audit``: training jobs on the Jobs contract.

``create`` writes the job's configuration (canonical JSON, named by its hash) into the
node's ``[training] jobs_dir`` and posts the job with its reward in escrow; trainers' nodes
that qualify join it by themselves.  ``status`` and ``audit`` only read the chain and the
store, so they need no keystore: anyone holding a node.toml (an RPC URL and the
deployment) can check every recorded round against the trainers' signed commitments.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from eth_utils.address import is_address
from rich.console import Console
from rich.table import Table

from chainml.cli.node import print_fields
from chainml.cli.storage import CONFIG, _fail
from chainml.errors import ChainmlError

if TYPE_CHECKING:
    from chainml.ledger.bindings import Chainml
    from chainml.node.core import NodeConfig

app = typer.Typer(help="Training jobs on chain: post one, follow it, audit its rounds.")
console = Console()
ETHER = 10**18
MISMATCH = 3  # the exit code of an audit that finds a round that does not check out


def _chain(config: Path) -> tuple[NodeConfig, Chainml]:
    """The node's chain, read-only: no keystore, no password."""
    from chainml.ledger.bindings import Chainml
    from chainml.ledger.client import LedgerClient
    from chainml.ledger.deploy import Deployment
    from chainml.node.roles import load_config

    cfg = load_config(config)
    return cfg, Chainml.connect(LedgerClient(cfg.rpc_url), Deployment.load(cfg.deployment))


def _wei(ether: float) -> int:
    return int(Decimal(str(ether)) * ETHER)


@app.command("create")
def job_create(
    config: Path = CONFIG,
    participants: int = typer.Option(..., min=2, help="trainers the job takes"),
    min_participants: int = typer.Option(0, min=0, help="trainers a round needs (default 70%)"),
    rounds: int = typer.Option(10, min=1, max=10_000),
    reward: float = typer.Option(..., help="escrow paid out to the trainers, in ether"),
    min_stake: float = typer.Option(1.0, min=0, help="stake a trainer must hold, in ether"),
    clip: float = typer.Option(10.0, min=0.001, help="L2 bound on each trainer's update"),
    challenge_window: int = typer.Option(3600, min=1, help="seconds to challenge a round"),
    aggregator: str = typer.Option("", help="the aggregator's account (default: this node)"),
    features: int = typer.Option(..., min=1, help="inputs per record"),
    classes: int = typer.Option(..., min=2, help="labels"),
    hidden: str = typer.Option("64", help="hidden layer widths, comma-separated"),
    activation: str = typer.Option("relu", help="relu, or square for encrypted inference"),
    epochs: int = typer.Option(5, min=1, help="local epochs per round"),
    lr: float = typer.Option(0.1, help="local learning rate"),
    aggregation: str = typer.Option("secagg", help="secagg, or krum, median, trimmed_mean"),
    verifiable: bool = typer.Option(True, help="lattice commitments: anyone checks each sum"),
    dp: str = typer.Option("", help="differential privacy: central or distributed"),
    noise_multiplier: float = typer.Option(1.0, help="with --dp: z, noise of z·clip on the sum"),
    dp_delta: float = typer.Option(1e-5, help="with --dp: the δ the job's ε is reported at"),
) -> None:
    """Post a training job from this node's account; its configuration goes in jobs_dir."""
    from chainml.cli.storage import _node
    from chainml.ledger.bindings import JobParams
    from chainml.node.roles import aggregator as aggregator_role
    from chainml.training.job import JobConfig

    try:
        widths = tuple(int(w) for w in hidden.split(",") if w.strip())
        extra: dict[str, Any] = (
            {"dp": dp, "noise_multiplier": noise_multiplier, "dp_delta": dp_delta} if dp else {}
        )
        job = JobConfig(
            n_features=features,
            n_classes=classes,
            hidden=widths,
            activation=activation,
            epochs=epochs,
            lr=lr,
            verifiable=verifiable,
            aggregation=aggregation,
            **extra,
        )
        JobConfig.decode(job.encode())  # the checks a trainer makes of what it is sent
        job.initial_model()  # and the model it builds
    except (ValueError, ChainmlError) as exc:
        raise _fail("not a job configuration", exc) from exc
    if aggregator and not is_address(aggregator):
        console.print(f"[red]--aggregator {aggregator!r} is not an account address[/red]")
        raise typer.Exit(1)
    needed = min_participants or max(1, participants * 7 // 10)
    if needed > participants:
        console.print("[red]--min-participants is more than --participants[/red]")
        raise typer.Exit(1)
    try:
        node = _node(config)
        z, exponent = job.chain_dp()
        params = JobParams(
            aggregator=aggregator or node.identity.address,
            rounds=rounds,
            min_participants=needed,
            max_participants=participants,
            min_stake=_wei(min_stake),
            challenge_window=challenge_window,
            clip_bound=round(clip * 1000),
            dp_noise_multiplier=z,
            dp_delta_exponent=exponent,
            config_hash=job.config_hash,
            # published: any trainer, validator or auditor fetches it and checks the hash
            config_cid=node.store.put(job.encode()),
        )
        jobs_dir = node.config.settings(aggregator_role.SETTINGS).jobs_dir
        path = jobs_dir / f"{job.config_hash.hex()}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(job.encode())
        job_id = node.cm.jobs.create_job(node.identity.account, params, _wei(reward))
        node.close()
    except ChainmlError as exc:
        raise _fail("the job was not posted", exc) from exc
    console.print(
        f"job {job_id}: {rounds} rounds, {participants} trainers, config {path} "
        f"(published as {params.config_cid})"
    )
    if params.aggregator.lower() != node.identity.address.lower():
        console.print(f"give {path.name} to the aggregator for its [training] jobs_dir")


@app.command("status")
def job_status(
    job_id: int = typer.Argument(..., min=1),
    config: Path = CONFIG,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """What the chain holds of a job and its rounds (and each round's ε, for DP jobs)."""
    from chainml.storage.factory import close_store, open_store

    try:
        cfg, cm = _chain(config)
        if not 1 <= job_id <= cm.jobs.job_count():
            console.print(f"[red]no job {job_id}[/red]")
            raise typer.Exit(1)
        job = cm.jobs.job(job_id)
        store = open_store(cfg.storage)
        rounds: list[dict[str, Any]] = []
        try:
            for r in range(1, job.rounds_done + 1):
                info = cm.jobs.round(job_id, r)
                try:
                    record = json.loads(store.get(info.aggregate_cid))
                except ChainmlError:  # a record this node's store lacks: the chain still tells
                    record = {}
                rounds.append(
                    {
                        "round": r,
                        "trainers": info.participants,
                        "status": info.status.name.lower(),
                        "record": info.aggregate_cid,
                        "epsilon": record.get("dp", {}).get("epsilon"),
                    }
                )
        finally:
            close_store(store)
    except ChainmlError as exc:
        raise _fail("status failed", exc) from exc
    p = job.params
    doc = {
        "job": job_id,
        "state": job.state.name.lower(),
        "requester": job.requester,
        "aggregator": p.aggregator,
        "trainers": f"{job.participant_count} of {p.max_participants} (a round needs "
        f"{p.min_participants})",
        "rounds": f"{job.rounds_done} of {p.rounds}",
        "escrow_eth": job.escrow / ETHER,
        "paid_eth": job.paid / ETHER,
        "clip_bound": p.clip_bound / 1000,
        "dp": f"z = {p.dp_noise_multiplier / 1000:g}, δ = 1e-{p.dp_delta_exponent}"
        if p.dp_noise_multiplier
        else "none",
        "config_hash": p.config_hash.hex(),
        "config_cid": p.config_cid or "not published",
    }
    if as_json:
        typer.echo(json.dumps({**doc, "round_list": rounds}))
        return
    print_fields(f"job {job_id}", doc)
    if rounds:
        per_round = Table(title="rounds")
        for column in ("round", "trainers", "status", "ε (DP)", "record"):
            per_round.add_column(column)
        for row in rounds:
            eps = "" if row["epsilon"] is None else f"{row['epsilon']:.3f}"
            per_round.add_row(
                str(row["round"]), str(row["trainers"]), row["status"], eps, row["record"]
            )
        console.print(per_round)


@app.command("audit")
def job_audit(
    job_id: int = typer.Argument(..., min=1),
    round_no: int = typer.Option(0, "--round", min=0, help="one round (default: every one)"),
    config: Path = CONFIG,
) -> None:
    """Check recorded rounds as any auditor can (exit 3 if one does not check out).

    Each sum against the trainers' signed commitments (their lattice commitments, or the
    masked inputs), and the commitment root and participant bitmap on chain against the
    round's record."""
    from chainml.node.rounds import audit_round
    from chainml.storage.factory import close_store, open_store
    from chainml.training.secagg import AggregateMismatch

    try:
        cfg, cm = _chain(config)
        if not 1 <= job_id <= cm.jobs.job_count():
            console.print(f"[red]no job {job_id}[/red]")
            raise typer.Exit(1)
        done = cm.jobs.job(job_id).rounds_done
        wanted = [round_no] if round_no else list(range(1, done + 1))
        if not wanted or max(wanted) > done:
            console.print(f"[red]job {job_id} has {done} recorded rounds[/red]")
            raise typer.Exit(1)
        store = open_store(cfg.storage)
        try:
            for r in wanted:
                try:
                    counted = audit_round(cm, store, job_id, r)
                except AggregateMismatch as exc:
                    console.print(f"[red]round {r} does not check out:[/red] {exc}")
                    raise typer.Exit(MISMATCH) from exc
                console.print(f"round {r}: checks out ({len(counted)} trainers' commitments)")
        finally:
            close_store(store)
    except ChainmlError as exc:
        raise _fail("audit failed", exc) from exc
