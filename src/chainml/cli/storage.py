"""``chainml cid``, ``chainml store put | get``, ``chainml model seal | open | grant | revoke``."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from chainml.errors import ChainmlError

if TYPE_CHECKING:
    from chainml.node.core import Node
    from chainml.storage.store import BlobStore

store_app = typer.Typer(help="Content-addressed blobs: the CIDs ipfs add gives.")
model_app = typer.Typer(help="Sealed models on the Models contract: seal, grant, open, revoke.")
console = Console()
DEFAULT_STORE = Path(".chainml/store")
err = Console(stderr=True)
CONFIG = typer.Option(Path("node.toml"), "--config", help="the node's node.toml")
STORE = typer.Option(None, "--store", help="a local store directory [default: .chainml/store]")
IPFS_API = typer.Option(
    "", "--ipfs-api", help="a kubo daemon's RPC API (http://127.0.0.1:5001) instead of --store"
)
STORE_CONFIG = typer.Option(
    None, "--config", help="use the store of this node.toml's [storage] table instead"
)


@contextlib.contextmanager
def _blob_store(store: Path | None, ipfs_api: str, config: Path | None) -> Iterator[BlobStore]:
    """The store one of --store, --ipfs-api or --config names (a local .chainml/store if
    none does), opened through the same factory a node uses, and closed afterwards."""
    from chainml.storage.factory import StoreConfig, close_store, open_store

    if (store is not None) + bool(ipfs_api) + (config is not None) > 1:
        raise typer.BadParameter("give one of --store, --ipfs-api and --config")
    if config is not None:
        from chainml.node.roles import load_config

        chosen = load_config(config).storage
    elif ipfs_api:
        chosen = StoreConfig.from_table({"backend": "kubo", "api": ipfs_api})
    else:
        chosen = StoreConfig.from_table({"dir": str(store or DEFAULT_STORE)})
    opened = open_store(chosen)
    try:
        yield opened
    finally:
        close_store(opened)


def _fail(what: str, exc: Exception) -> typer.Exit:
    err.print(f"[red]{what}:[/red] {type(exc).__name__}: {exc}")
    return typer.Exit(1)


def cid(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    v0: bool = typer.Option(False, "--v0", help="print the CIDv0 (Qm…) instead"),
) -> None:
    """Print the CID `ipfs add` gives FILE with kubo's defaults (CIDv1; --v0 for Qm…)."""
    from chainml.storage.cid import DAG_PB, Cid
    from chainml.storage.store import iter_source
    from chainml.storage.unixfs import DagBuilder

    builder = DagBuilder()
    for piece in iter_source(file):
        builder.write(piece)
    root = Cid(DAG_PB, builder.finish())
    typer.echo(root.v0 if v0 else root.v1)


@store_app.command("put")
def store_put(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    store: Path | None = STORE,
    ipfs_api: str = IPFS_API,
    config: Path | None = STORE_CONFIG,
) -> None:
    """Store FILE; print its CID."""
    try:
        with _blob_store(store, ipfs_api, config) as blobs:
            typer.echo(blobs.put(file))
    except ChainmlError as exc:
        raise _fail("put failed", exc) from exc


@store_app.command("get")
def store_get(
    cid: str,
    out: Path = typer.Option(..., "-o", "--output", help="file to write (atomically)"),
    store: Path | None = STORE,
    ipfs_api: str = IPFS_API,
    config: Path | None = STORE_CONFIG,
) -> None:
    """Fetch a blob by CID, every block verified; OUT appears only if all of it checks."""
    from chainml.storage.store import atomic_file

    try:
        with (
            _blob_store(store, ipfs_api, config) as blobs,
            atomic_file(out.resolve(), prefix=".get-") as fh,
        ):
            for piece in blobs.open(cid):
                fh.write(piece)
    except ChainmlError as exc:
        raise _fail("get failed", exc) from exc


def _node(config: Path) -> Node:
    from chainml.cli.node import _password
    from chainml.node.core import build
    from chainml.node.roles import load_config

    return build(load_config(config), _password(confirm=False))


@model_app.command("seal")
def model_seal(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True),
    name: str = typer.Option("model", help="name of a new model"),
    model_id: int = typer.Option(0, "--model", help="add a version to this model instead"),
    proofs: bool = typer.Option(
        False, "--proofs", help="also publish a proof bundle: providers prove plain answers"
    ),
    config: Path = CONFIG,
) -> None:
    """Seal FILE (safetensors weights or any artifact) and publish it as a model version."""
    from chainml.node import models

    try:
        node = _node(config)
        done = models.seal_and_publish(node, file, name=name, model_id=model_id, proofs=proofs)
    except ChainmlError as exc:
        raise _fail("seal failed", exc) from exc
    console.print(
        f"model {done.model_id} version {done.version_id}\n"
        f"  ciphertext {done.ciphertext_cid}\n  manifest   {done.manifest_cid}"
        + (f"\n  proofs     {done.zk_bundle}" if done.zk_bundle else "")
    )


@model_app.command("grant")
def model_grant(
    version: int,
    grantee: str,
    days: float = typer.Option(30.0, help="the grant expires after this many days"),
    guardians: str = typer.Option("", help="comma-separated guardian accounts: threshold release"),
    threshold: int = typer.Option(2, help="shares needed, with --guardians"),
    config: Path = CONFIG,
) -> None:
    """Grant GRANTEE access to VERSION (key wrapped to it, or split among guardians)."""
    from chainml.node import models
    from chainml.node.access import LedgerChainView

    try:
        node = _node(config)
        expiry = LedgerChainView(node.cm).now() + int(days * 86400)
        chosen = [g.strip() for g in guardians.split(",") if g.strip()]
        grant_id = models.grant(
            node, version, grantee, expiry=expiry, guardians=chosen, threshold=threshold
        )
    except ChainmlError as exc:
        raise _fail("grant failed", exc) from exc
    how = f"{threshold}-of-{len(chosen)} guardians" if chosen else "owner release"
    console.print(f"grant {grant_id}: version {version} to {grantee} ({how})")


@model_app.command("open")
def model_open(
    version: int,
    out: Path = typer.Option(..., "-o", "--output", help="file to write (atomically)"),
    grant: int = typer.Option(0, help="the grant to open it through (0: as its owner)"),
    config: Path = CONFIG,
) -> None:
    """Decrypt VERSION to OUT, checking key, length and plaintext commitment."""
    from chainml.node import models

    started = time.perf_counter()
    try:
        manifest = models.open_version(_node(config), version, out, grant_id=grant)
    except ChainmlError as exc:
        raise _fail("open failed", exc) from exc
    console.print(
        f"{out}: {manifest.plaintext_length} bytes, commitment checked "
        f"({time.perf_counter() - started:.2f} s)"
    )


@model_app.command("revoke")
def model_revoke(
    grant: int,
    rotate: bool = typer.Option(True, help="re-seal under a new key as a new version"),
    config: Path = CONFIG,
) -> None:
    """Revoke GRANT on chain (final); by default re-seal the version under a new key."""
    from chainml.node import models

    try:
        new = models.revoke(_node(config), grant, rotate=rotate)
    except ChainmlError as exc:
        raise _fail("revoke failed", exc) from exc
    console.print(f"grant {grant} revoked" + (f"; re-sealed as version {new}" if new else ""))
    if new:
        print("what the grantee already decrypted stays with it", file=sys.stderr)
