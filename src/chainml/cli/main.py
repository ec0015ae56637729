"""The ``chainml`` command."""

from __future__ import annotations

import typer

from chainml.cli.chain import app as chain_app

app = typer.Typer(
    name="chainml",
    help="Train and serve AI models across organisations that do not trust each other.",
    no_args_is_help=True,
    add_completion=False,
)

app.add_typer(chain_app, name="chain")


@app.callback()
def _root() -> None:
    """Train and serve AI models across organisations that do not trust each other."""


@app.command()
def version() -> None:
    """Print chainml's version."""
    from chainml import __version__

    typer.echo(__version__)


if __name__ == "__main__":
    app()
