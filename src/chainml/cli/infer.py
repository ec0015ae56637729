"""``chainml infer deposit | run | receipts``: a client of paid inference.

The client's identity is a party's keystore and node.toml (``chainml node init``); it need
not run a node.  Its receipts are kept in a book file beside the config, checked against
every batch a provider posts on chain, and a batch that does not match is disputed.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from chainml.cli.storage import CONFIG, _fail, _node
from chainml.errors import ChainmlError

app = typer.Typer(
    help="Paid inference: prepay, ask a provider (encrypted or sealed), check receipts."
)
console = Console()
ETHER = 10**18
BOOK = typer.Option(None, "--book", help="receipt book (default: receipts.json beside the config)")


def _book_path(config: Path, book: Path | None) -> Path:
    return book or config.parent / "receipts.json"


@app.command("deposit")
def deposit(
    amount: float = typer.Argument(..., help="ether to add to the prepaid balance"),
    config: Path = CONFIG,
) -> None:
    """Prepay AMOUNT ether on the Receipts contract."""
    try:
        node = _node(config)
        node.cm.receipts.deposit(node.identity.account, int(amount * ETHER))
        left = node.cm.receipts.available(node.identity.address)
    except ChainmlError as exc:
        raise _fail("deposit failed", exc) from exc
    console.print(f"prepaid balance: {left / ETHER:g} ETH")


@app.command("run")
def run(
    provider: str = typer.Argument(..., help="the provider's registered account"),
    data: Path = typer.Option(
        ...,
        "--input",
        exists=True,
        dir_okay=False,
        help=".npz with x (rows × features), y optional",
    ),
    encrypted: bool = typer.Option(
        False, "--encrypted", help="CKKS: the provider sees ciphertexts only"
    ),
    batch: bool = typer.Option(False, "--batch", help="with --encrypted: all rows in one batch"),
    proven: bool = typer.Option(
        False, "--proven", help="plain, with a proof per row that the committed model answered"
    ),
    rows: int = typer.Option(10, min=1, help="how many rows of the input to ask about"),
    config: Path = CONFIG,
    book: Path | None = BOOK,
) -> None:
    """Ask PROVIDER for predictions on the first ROWS rows of the input."""
    import numpy as np

    from chainml.inference.receipts import ReceiptBook
    from chainml.node.inference import connect

    try:
        with np.load(data, allow_pickle=False) as npz:
            x = np.asarray(npz["x"], dtype=np.float64)[:rows]
            y = np.asarray(npz["y"])[:rows] if "y" in npz.files else None
    except (OSError, ValueError, KeyError) as exc:
        raise _fail("bad input", exc) from exc
    path = _book_path(config, book)
    ledger: ReceiptBook | None = None
    try:
        node = _node(config)
        ledger = ReceiptBook.load(
            path, node.identity.address, node.client.chain_id, node.cm.receipts.address
        )
        fetch = node.store.get if proven else None  # the bundle, from this node's store
        client = connect(node.cm, node.identity, provider, book=ledger, proofs=fetch)
        if proven:
            logits = client.predict_proven(x)
        elif not encrypted:
            logits = client.predict_plain(x)
        elif batch:
            logits = client.predict_encrypted_batch(x)
        else:
            logits = np.stack([client.predict_encrypted(row) for row in x])
    except ChainmlError as exc:
        raise _fail("inference failed", exc) from exc
    finally:
        if ledger is not None:  # every receipt received, even if a later request failed
            ledger.save(path)
    mode = ("encrypted batch" if batch else "encrypted") if encrypted else "sealed plain"
    mode = "proven plain" if proven else mode
    predicted = logits.argmax(axis=1)
    console.print(f"{len(x)} predictions ({mode}) from {provider}")
    table = Table()
    table.add_column("row")
    table.add_column("class")
    if y is not None:
        table.add_column("label")
    for i, p in enumerate(predicted[:20]):
        table.add_row(str(i), str(int(p)), *([str(int(y[i]))] if y is not None else []))
    console.print(table)
    if y is not None:
        console.print(f"accuracy {float((predicted == y).mean()):.3f}")
    console.print(
        f"sent {client.sent:,} bytes, received {client.received:,}; "
        f"{len(ledger.held)} receipts held in {path}"
    )


@app.command("receipts")
def receipts(
    config: Path = CONFIG,
    book: Path | None = BOOK,
    dispute: bool = typer.Option(True, help="dispute on chain a batch that does not match"),
) -> None:
    """Check every batch billed to this client on chain against the receipts it holds."""
    from chainml.inference.receipts import ReceiptBook
    from chainml.node.inference import check_batches

    path = _book_path(config, book)
    try:
        node = _node(config)
        ledger = ReceiptBook.load(
            path, node.identity.address, node.client.chain_id, node.cm.receipts.address
        )
        verdicts = check_batches(node.cm, node.identity, ledger, dispute=dispute)
        ledger.save(path)
    except ChainmlError as exc:
        raise _fail("receipt check failed", exc) from exc
    if not verdicts:
        console.print("no new batches billed to this client")
    for batch_id, verdict in verdicts:
        info = node.cm.receipts.batch(batch_id)
        if verdict == "pending":
            console.print(f"batch {batch_id}: the provider does not answer; check again later")
            continue
        colour = "green" if verdict == "ok" else "red"
        action = "" if verdict == "ok" else (" — disputed" if dispute else " — not disputed")
        console.print(
            f"batch {batch_id}: {info.receipt_count} receipts, {info.amount / ETHER:g} ETH: "
            f"[{colour}]{verdict}[/{colour}]{action}"
        )
    if any(v not in ("ok", "pending") for _, v in verdicts):
        raise typer.Exit(3)
