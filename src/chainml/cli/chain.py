"""``chainml chain up | down | status``: the embedded development chain."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from chainml.errors import ChainmlError
from chainml.ledger.client import LedgerClient
from chainml.ledger.devchain import down, running, up

app = typer.Typer(help="Run chainml's embedded chain (py-evm, JSON-RPC on 127.0.0.1).")
console = Console()
DATADIR = typer.Option(Path(".chainml/chain"), help="where blocks and the journal live")


@app.command("up")
def chain_up(
    datadir: Path = DATADIR,
    port: int = typer.Option(8545),
    finality_depth: int = typer.Option(
        0, min=0, help="blocks the finalized block trails the head by (safe: half)"
    ),
) -> None:
    """Start the chain in the background (or show the one already running)."""
    try:
        url = up(datadir, port, finality_depth)
    except ChainmlError as exc:
        console.print(f"[red]could not start the chain:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"chain running at {url} (data in {datadir})")


@app.command("down")
def chain_down(datadir: Path = DATADIR) -> None:
    """Stop the background chain; its data stays for the next `up`."""
    console.print("chain stopped" if down(datadir) else "no chain was running")


@app.command("status")
def chain_status(datadir: Path = DATADIR) -> None:
    """Show URL, chain id, head block and process of the background chain."""
    found = running(datadir)
    if not found:
        console.print(f"chain not running (data in {datadir})")
        raise typer.Exit(1)
    pid, url = found
    client = LedgerClient(url, timeout=5)
    try:
        head = client.block("latest")
        console.print(
            f"url {url}\nchain id {client.chain_id}\nhead block {int(head['number'], 16)} "
            f"{head['hash']}\npid {pid}\ndata {datadir}"
        )
    except ChainmlError as exc:
        console.print(f"[red]chain process {pid} does not answer at {url}:[/red] {exc}")
        raise typer.Exit(1) from exc


@app.command("deploy")
def chain_deploy(
    rpc: str = typer.Option("http://127.0.0.1:8545", help="the chain's JSON-RPC URL"),
    out: Path = typer.Option(Path(".chainml/deployment.json"), help="where to record it"),
    key_env: str = typer.Option(
        "",
        help="name of the environment variable holding the deployer's key; "
        "empty: the development chains' well-known first account",
    ),
) -> None:
    """Deploy chainml's five contracts and record their addresses for the nodes."""
    import os

    from chainml.ledger.client import LocalSigner
    from chainml.ledger.deploy import deploy_system
    from chainml.ledger.devchain import DEV_KEY

    key = os.environ.get(key_env, "") if key_env else DEV_KEY
    if not key:
        console.print(f"[red]${key_env} is empty[/red]")
        raise typer.Exit(1)
    try:
        deployment = deploy_system(LedgerClient(rpc), LocalSigner.from_key(key))
    except ChainmlError as exc:
        console.print(f"[red]deployment failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    deployment.save(out)
    console.print(f"deployed on chain {deployment.chain_id}: Registry {deployment.registry}")
    console.print(f"recorded in {out}")
