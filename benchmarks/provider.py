"""Paid inference through a provider node, over HTTP on loopback, against the same CKKS
work in one process.

A provider node process (embedded chain, the digits MLP 64→32→10 with x², granted to it
by its owner and opened through the grant) serves a client that prepaid on the Receipts
contract.  Measured in one run:

- the one-time upload of the evaluation keys;
- encrypted single queries, encrypt → HTTP → evaluate → receipt → decrypt (p50, p95),
  against the same queries evaluated in this process with no node in between;
- plain queries sealed both ways (one row each, p50), against numpy on one row;
- one encrypted batch of the 540 test digits;
- how long until the provider has billed the receipts on chain.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run(quick: bool = False) -> dict[str, Any]:
    from chainml.crypto import Identity
    from chainml.inference.he import HEClient, HEProvider, compile_model
    from chainml.inference.receipts import ReceiptBook
    from chainml.ledger.anvil import stop_process
    from chainml.ledger.bindings import Role
    from chainml.ledger.client import LedgerClient
    from chainml.ledger.devchain import DevChainProcess
    from chainml.node import daemon, localnet
    from chainml.node.inference import check_batches, connect
    from chainml.storage.local import LocalBlobStore
    from chainml.training.data import load
    from chainml.training.models import MLP, to_safetensors

    queries = 20 if quick else 200
    ether = 10**18
    data = load("digits", seed=0)
    model = MLP(64, 10, (32,), activation="square", seed=0)
    for epoch in range(30):
        model.fit(data.x_train, data.y_train, epochs=1, lr=0.02, seed=epoch)
    x = data.x_test

    log("in process")
    plan = compile_model(model)
    he = HEClient(plan)
    local = HEProvider(plan, he.evaluation_keys())
    local.evaluate_query(he.encrypt_query(x[0]))
    inproc = []
    for i in range(queries):
        started = time.perf_counter()
        he.decrypt_query(local.evaluate_query(he.encrypt_query(x[i % len(x)])), plan)
        inproc.append(time.perf_counter() - started)
    numpy_row = []
    for i in range(200):
        started = time.perf_counter()
        model.logits(x[i % len(x) : i % len(x) + 1])
        numpy_row.append(time.perf_counter() - started)

    with tempfile.TemporaryDirectory() as tmp, DevChainProcess(Path(tmp) / "chain") as chain:
        log("provider node")
        client = LedgerClient(chain.url)
        cm, dev = localnet.deploy(client, Path(tmp))
        node = localnet.init_node(Path(tmp), "provider", "bench", rpc=chain.url, work=1 << 10)
        text = node.config.read_text().replace("interval = 1 ", "interval = 0.2 ")
        text = text.replace("receipt_age = 60 ", "receipt_age = 1 ")
        node.config.write_text(text.replace("rate_per_peer = 50 ", "rate_per_peer = 1000 "))
        owner, user = Identity.generate(), Identity.generate()
        for ident in (node.identity, owner, user):
            client.transact(dev, to=ident.address, value=5 * ether)
        cm.registry.register_identity(node.identity, Role.INFERENCE_PROVIDER, node.url, ether)
        cm.registry.register_identity(owner, Role.REQUESTER, "", ether)
        store = LocalBlobStore(node.config.parent / "store")
        weights = to_safetensors(model.params, {"model": "mlp", "activation": "square"})
        localnet.publish_and_grant(
            cm, store, owner, node.identity.address, weights, name="digits x2"
        )
        cm.receipts.deposit(user.account, ether // 10)
        proc = daemon.spawn(node.config, "bench", quiet=True)
        try:
            daemon.wait_ready(node.url, proc)
            book = ReceiptBook(user.address, client.chain_id, cm.receipts.address)
            inference = connect(cm, user, node.identity.address, book=book, wait=60)
            started = time.perf_counter()
            inference.predict_encrypted(x[0])  # uploads the keys first
            keys_s = time.perf_counter() - started
            log("encrypted queries over HTTP")
            remote, agree = [], 0
            for i in range(queries):
                started = time.perf_counter()
                logits = inference.predict_encrypted(x[i % len(x)])
                remote.append(time.perf_counter() - started)
                agree += int(logits.argmax() == model.predict(x[i % len(x) : i % len(x) + 1])[0])
            plain = []
            for i in range(queries):
                started = time.perf_counter()
                inference.predict_plain(x[i % len(x) : i % len(x) + 1])
                plain.append(time.perf_counter() - started)
            log("encrypted batch")
            started = time.perf_counter()
            batch = inference.predict_encrypted_batch(x)
            batch_s = time.perf_counter() - started
            batch_agreement = float((batch.argmax(1) == model.predict(x)).mean())
            started = time.perf_counter()
            while len(book.paid) < len(book.held) and time.perf_counter() - started < 60:
                check_batches(cm, user, book)
                time.sleep(0.2)
            billed_s = time.perf_counter() - started
        finally:
            stop_process(proc, timeout=20)

    p50_remote, p50_local = statistics.median(remote), statistics.median(inproc)
    return {
        "baseline": "the same CKKS queries in this process, no node; numpy on one row; same run",
        "queries": queries,
        "keys_upload_s": round(keys_s, 3),
        "encrypted_query_ms": {
            "p50": round(p50_remote * 1e3, 2),
            "p95": round(_pct(remote, 0.95) * 1e3, 2),
        },
        "in_process_query_ms": {
            "p50": round(p50_local * 1e3, 2),
            "p95": round(_pct(inproc, 0.95) * 1e3, 2),
        },
        "node_vs_in_process": round(p50_remote / p50_local, 2),
        "encrypted_agreement": f"{agree}/{queries}",
        "plain_query_ms_p50": round(statistics.median(plain) * 1e3, 2),
        "plain_vs_numpy": round(statistics.median(plain) / statistics.median(numpy_row), 1),
        "batch_540_s": round(batch_s, 3),
        "batch_agreement": batch_agreement,
        "receipts": len(book.held),
        "receipts_billed_and_checked_s": round(billed_s, 2),
        "bytes_sent": inference.sent,
        "bytes_received": inference.received,
    }
