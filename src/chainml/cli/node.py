"""``chainml node init | run | status``: one node per party."""

from __future__ import annotations

import getpass
import json
import os
from pathlib import Path

import requests
import typer
from rich.console import Console
from rich.table import Table

from chainml.errors import ChainmlError

app = typer.Typer(help="Run a party's node: identity, HTTP API, envelopes, metrics.")
console = Console()
CONFIG = typer.Option(Path("node.toml"), "--config", help="the node's node.toml")
_ROLE_NAMES = (
    "data_owner",
    "trainer",
    "aggregator",
    "validator",
    "inference_provider",
    "requester",
)


def _password(confirm: bool) -> str:
    value = os.environ.get("CHAINML_PASSWORD")
    if value:
        return value
    value = getpass.getpass("keystore password: ")
    if confirm and getpass.getpass("again: ") != value:
        console.print("[red]the passwords differ[/red]")
        raise typer.Exit(1)
    return value


@app.command("init")
def node_init(
    directory: Path = typer.Argument(..., help="where the keystore and node.toml go"),
    name: str = typer.Option(..., help="the party's name"),
    rpc: str = typer.Option("http://127.0.0.1:8545", help="the chain's JSON-RPC URL"),
    deployment: str = typer.Option(..., help="deployment.json of chainml's contracts"),
    port: int = typer.Option(8701, help="the API's port on 127.0.0.1"),
) -> None:
    """Create an identity (account + X25519 keys) in an encrypted keystore, and node.toml."""
    from chainml.node.roles import init

    try:
        identity = init(
            directory, name, _password(confirm=True), rpc=rpc, deployment=deployment, port=port
        )
    except ChainmlError as exc:
        console.print(f"[red]init failed:[/red] {exc}")
        raise typer.Exit(1) from exc
    console.print(f"{name}: account {identity.address}, config {directory / 'node.toml'}")


@app.command("run")
def node_run(config: Path = CONFIG) -> None:
    """Serve the node's API until SIGTERM or Ctrl-C."""
    import logging

    from chainml.node.daemon import JsonLogFormatter, load_config, run

    handler = logging.StreamHandler()
    handler.setFormatter(JsonLogFormatter())
    logging.basicConfig(level=logging.INFO, handlers=[handler])
    try:
        run(load_config(config))
    except ChainmlError as exc:
        console.print(f"[red]node failed:[/red] {exc}")
        raise typer.Exit(1) from exc


@app.command("status")
def node_status(config: Path = CONFIG, as_json: bool = typer.Option(False, "--json")) -> None:
    """Ask a running node how it is."""
    from chainml.node.roles import load_config

    try:
        cfg = load_config(config)
        doc = requests.get(f"http://{cfg.host}:{cfg.port}/v1/status", timeout=5).json()
    except ChainmlError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    except requests.RequestException:
        console.print(f"[red]no node answers at {cfg.host}:{cfg.port}[/red]")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(doc))
        return
    print_fields(f"node {cfg.name}", doc)


def print_fields(title: str, doc: dict[str, object]) -> None:
    """A two-column table of a status document."""
    table = Table(title=title)
    table.add_column("field")
    table.add_column("value")
    for key, value in doc.items():
        table.add_row(key, str(value))
    console.print(table)


@app.command("register")
def node_register(
    config: Path = CONFIG,
    roles: str = typer.Option("trainer", help="comma-separated: " + ", ".join(_ROLE_NAMES)),
    stake: float = typer.Option(0.0, help="stake to lock, in the native currency"),
    endpoint: str = typer.Option(
        "",
        help="the URL other parties reach the node at (default: its listen address), "
        "e.g. https://node.example.org behind a TLS proxy",
    ),
) -> None:
    """Register the node's identity in the Registry (its account pays gas and stake)."""
    from decimal import Decimal

    from chainml.ledger.bindings import Role
    from chainml.node.core import build
    from chainml.node.roles import load_config

    try:
        wanted = Role(0)
        for name in filter(None, (r.strip().lower() for r in roles.split(","))):
            if name not in _ROLE_NAMES:
                console.print(f"[red]unknown role {name!r}[/red]; one of {', '.join(_ROLE_NAMES)}")
                raise typer.Exit(1)
            wanted |= Role[name.upper()]
        cfg = load_config(config)
        url = _endpoint(endpoint) if endpoint else f"http://{cfg.host}:{cfg.port}"
        node = build(cfg, _password(confirm=False))
        wei = int(Decimal(str(stake)) * 10**18)
        node.cm.registry.register_identity(node.identity, wanted, url, wei)
        node.state.close()
    except ChainmlError as exc:
        console.print(f"[red]registration failed:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from exc
    console.print(f"{node.identity.address} registered as {roles} with stake {stake:g} at {url}")


def _endpoint(url: str, hint: str = "--endpoint") -> str:
    """A URL other parties can post to: http or https, a host, no credentials, query or
    fragment, at most 256 bytes (the Registry's limit); typer.BadParameter otherwise."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise typer.BadParameter(f"{url!r}: {exc}", param_hint=hint) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise typer.BadParameter(f"{url!r}: give an http(s) URL with a host", param_hint=hint)
    if parts.username or parts.password or parts.query or parts.fragment:
        raise typer.BadParameter(f"{url!r}: no credentials, query or fragment", param_hint=hint)
    if len(url.encode()) > 256 or port == 0:
        raise typer.BadParameter(f"{url!r}: too long, or port 0", param_hint=hint)
    return url.rstrip("/")


@app.command("endpoint")
def node_endpoint(
    url: str = typer.Argument(..., help="e.g. https://node.example.org"),
    config: Path = CONFIG,
) -> None:
    """Change the URL the Registry gives other parties for this node (after a move, or a
    TLS proxy put in front of it)."""
    from chainml.node.core import build
    from chainml.node.roles import load_config

    url = _endpoint(url, "URL")
    try:
        node = build(load_config(config), _password(confirm=False))
        node.cm.registry.set_endpoint(node.identity.account, url)
        node.state.close()
    except ChainmlError as exc:
        console.print(f"[red]endpoint not changed:[/red] {type(exc).__name__}: {exc}")
        raise typer.Exit(1) from exc
    console.print(f"{node.identity.address} is now reached at {url}")
