"""The ``chainml`` command."""

from __future__ import annotations

from pathlib import Path

import typer

from chainml.cli.chain import app as chain_app
from chainml.cli.infer import app as infer_app
from chainml.cli.job import app as job_app
from chainml.cli.node import app as node_app
from chainml.cli.storage import cid, model_app, store_app

app = typer.Typer(
    name="chainml",
    help="Train and serve AI models across organisations that do not trust each other.",
    no_args_is_help=True,
    add_completion=False,
)

app.add_typer(chain_app, name="chain")
app.add_typer(node_app, name="node")
app.add_typer(store_app, name="store")
app.add_typer(model_app, name="model")
app.add_typer(job_app, name="job")
app.add_typer(infer_app, name="infer")
app.command("cid")(cid)


@app.callback()
def _root() -> None:
    """Train and serve AI models across organisations that do not trust each other."""


@app.command()
def demo(
    workdir: Path = typer.Option(Path(".chainml/demo"), help="where the chain and blobs go"),
    rounds: int = typer.Option(10, min=1, max=64),
) -> None:
    """Run the main job on the embedded defaults: a federated job recorded on chain."""
    from rich.console import Console

    from chainml.errors import ChainmlError
    from chainml.node.demo import run

    console = Console()
    try:
        run(workdir, rounds=rounds, console=console)
    except ChainmlError as exc:
        console.print(f"[red]demo failed:[/red] {exc}")
        raise typer.Exit(1) from exc


@app.command()
def version() -> None:
    """Print chainml's version."""
    from chainml import __version__

    typer.echo(__version__)


if __name__ == "__main__":
    app()
