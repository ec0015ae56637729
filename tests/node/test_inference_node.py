"""A real inference provider: a node process on loopback serves the model version granted
to it on chain, answers plain and encrypted requests from a paying client over HTTP, keeps
its receipts across a SIGKILL, posts them on the Receipts contract once, and a client
checks every batch billed to it — and disputes one it never received receipts for."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests

from chainml.crypto import Identity
from chainml.inference.client import ProviderRefused
from chainml.inference.receipts import ReceiptBook
from chainml.ledger.bindings import Role
from chainml.ledger.client import LedgerClient
from chainml.ledger.devchain import DevChainProcess
from chainml.node import daemon, localnet
from chainml.node.inference import check_batches, connect
from chainml.storage.local import LocalBlobStore
from chainml.training.data import load_fashion_mnist
from chainml.training.models import CNN, to_safetensors

ETHER = 10**18
PASSWORD = "provider test password"
PRICE = 10**12


@pytest.fixture(scope="module")
def model(x2_mlp):
    return x2_mlp


@pytest.fixture(scope="module")
def market(tmp_path_factory, model):
    """A chain, a provider node granted a sealed x² MLP by its owner, a funded client."""
    weights = to_safetensors(model.params, {"model": "mlp", "activation": "square"})
    with _market(tmp_path_factory.mktemp("market"), weights, "digits x2") as state:
        yield state


@contextlib.contextmanager
def _market(
    tmp: Path, weights: bytes, name: str, *, receipt_batch: int = 6, receipt_age: int = 3600
) -> Iterator[dict]:
    """A chain, a provider node process granted the sealed ``weights`` by their owner, a
    funded client; the node process is stopped on the way out."""
    with DevChainProcess(tmp / "chain") as chain:
        client = LedgerClient(chain.url)
        cm, dev = localnet.deploy(client, tmp)
        node = localnet.init_node(tmp, "provider", PASSWORD, rpc=chain.url, work=1 << 10)
        config = node.config.read_text()
        config = config.replace("receipt_batch = 100 ", f"receipt_batch = {receipt_batch} ")
        config = config.replace("receipt_age = 60 ", f"receipt_age = {receipt_age} ")
        config = config.replace("interval = 1 ", "interval = 0.2 ")
        node.config.write_text(config)
        owner, user = Identity.generate(), Identity.generate()
        for ident in (node.identity, owner, user):
            client.transact(dev, to=ident.address, value=5 * ETHER)
        cm.registry.register_identity(node.identity, Role.INFERENCE_PROVIDER, node.url, ETHER)
        cm.registry.register_identity(owner, Role.REQUESTER, "", ETHER)
        # the owner seals the model into the provider's store and grants it the version
        store = LocalBlobStore(node.config.parent / "store")
        version = localnet.publish_and_grant(
            cm, store, owner, node.identity.address, weights, name=name
        )
        cm.receipts.deposit(user.account, ETHER // 100)
        # the tests may replace the process (kill and restart): what is stopped at the end
        # is the one running then, read from this dict
        state = {
            "client": client,
            "cm": cm,
            "node": node,
            "proc": daemon.spawn(node.config, PASSWORD),
            "user": user,
            "owner": owner,
            "version": version,
        }
        try:
            daemon.wait_ready(node.url, state["proc"])
            yield state
        finally:
            localnet_stop(state["proc"])


def localnet_stop(proc) -> None:
    from chainml.ledger.anvil import stop_process

    stop_process(proc, timeout=20)


def _serving(url: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            answer = requests.get(url + "/v1/infer/model", timeout=2)
            if answer.status_code == 200:
                return answer.json()
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise AssertionError("the provider never served its granted model")


def _batches_for(cm, who: str) -> list[int]:
    return [
        int(e.args["batch_id"])
        for e in cm.receipts.contract.past_events("BatchPosted")
        if str(e.args["client"]).lower() == who.lower()
    ]


def test_paid_inference_survives_a_kill_and_every_receipt_is_billed_once(
    market, model, digits, tmp_path
):
    m, x = market, digits.x_test
    info = _serving(m["node"].url)
    assert info["model_version"] == m["version"] and info["he"]["depth"] == 3
    book = ReceiptBook(m["user"].address, m["client"].chain_id, m["cm"].receipts.address)
    inference = connect(m["cm"], m["user"], m["node"].identity.address, book=book)

    plain = inference.predict_plain(x[:20])
    assert np.array_equal(plain.argmax(1), model.predict(x[:20]))
    assert [inference.predict_encrypted(x[i]).argmax() for i in range(2)] == list(
        model.predict(x[:2])
    )
    batch = inference.predict_encrypted_batch(x)
    assert (batch.argmax(1) == model.predict(x)).mean() >= 0.995
    assert len(book.held) == 4 and not _batches_for(m["cm"], m["user"].address)

    # the provider dies with four receipts signed and not yet billed
    m["proc"].send_signal(signal.SIGKILL)
    m["proc"].wait(timeout=10)
    m["proc"] = daemon.spawn(m["node"].config, PASSWORD)
    daemon.wait_ready(m["node"].url, m["proc"])
    _serving(m["node"].url)
    inference = connect(m["cm"], m["user"], m["node"].identity.address, book=book)
    inference.predict_plain(x[20:21])
    inference.predict_plain(x[21:22])  # the sixth receipt: a batch is due
    counters = sorted(c for _, c in book.held)
    assert counters == [1, 2, 3, 4, 5, 6]  # no counter repeated after the restart

    deadline = time.monotonic() + 30
    while not _batches_for(m["cm"], m["user"].address) and time.monotonic() < deadline:
        time.sleep(0.3)
    (batch_id,) = _batches_for(m["cm"], m["user"].address)
    onchain = m["cm"].receipts.batch(batch_id)
    assert onchain.receipt_count == 6
    assert onchain.amount == sum(r.price for r in book.held.values()) == 24 * PRICE + 100 * PRICE
    assert check_batches(m["cm"], m["user"], book) == [(batch_id, "ok")]
    time.sleep(1.5)  # another pass of the poster: nothing is billed twice
    assert _batches_for(m["cm"], m["user"].address) == [batch_id]

    book.save(tmp_path / "book.json")
    again = ReceiptBook.load(
        tmp_path / "book.json", m["user"].address, m["client"].chain_id, m["cm"].receipts.address
    )
    assert again.held == book.held and again.checked == {batch_id}


def test_a_batch_the_client_holds_no_receipts_for_is_disputed(market):
    m = market
    cm, provider = m["cm"], m["node"].identity
    before = cm.receipts.available(m["user"].address)
    book = ReceiptBook.load(
        Path("/nonexistent"), m["user"].address, m["client"].chain_id, cm.receipts.address
    )
    book.checked.update(_batches_for(cm, m["user"].address))  # settled business
    billed = cm.receipts.post_batch(provider.account, m["user"].address, b"\x01" * 32, 3, PRICE)
    verdicts = dict(check_batches(cm, m["user"], book))
    assert set(verdicts) == {billed} and verdicts[billed] in ("AlteredReceipt", "BatchMismatch")
    assert cm.receipts.batch(billed).status == 3  # disputed on chain
    assert cm.receipts.available(m["user"].address) == before  # the amount came back


def test_bad_requests_get_typed_refusals_and_the_node_keeps_serving(market, digits):
    m = market
    url = m["node"].url
    _serving(url)
    for body, status in ((b"garbage", 400), (b"CMLQ" + b"\xff" * 4, 400)):
        answer = requests.post(url + "/v1/infer", data=body, timeout=10)
        assert answer.status_code == status and answer.json()["error"] == "malformed"
    huge = requests.post(url + "/v1/infer/he", data=b"\x00" * (70 << 20), timeout=60)
    assert huge.status_code == 413 and huge.json()["error"] == "oversized"
    stranger = Identity.generate()  # signs properly, but has no prepaid balance
    inference = connect(m["cm"], stranger, m["node"].identity.address)
    with pytest.raises(ProviderRefused) as caught:
        inference.predict_plain(digits.x_test[:1])
    assert caught.value.status == 402 and caught.value.cause == "insufficient_balance"
    requests.get(url + "/v1/receipts/batches/999", timeout=10)  # counted by its route
    metrics = requests.get(url + "/metrics", timeout=10).text
    assert (
        'chainml_inference_requests_total{mode="plain",outcome="insufficient_balance"} 1.0'
        in metrics
    )
    assert 'chainml_requests_total{path="/v1/receipts/batches/{batch_id}"}' in metrics
    assert "/v1/receipts/batches/999" not in metrics
    assert 'chainml_requests_total{path="/v1/infer"}' in metrics
    assert 'chainml_inference_requests_total{mode="he",outcome="oversized"} 1.0' in metrics
    paying = connect(m["cm"], m["user"], m["node"].identity.address)
    assert paying.predict_plain(digits.x_test[:1]).shape == (1, 10)


def test_a_provider_node_serves_the_fashion_cnn_encrypted_single_and_batched(tmp_path):
    """The Fashion-MNIST CNN (conv 4×7×7 stride 3 → ReLU's degree-2 fit → 2×2 average
    pool → dense) sealed and granted to a provider node process, which rebuilds it from
    its safetensors and serves it encrypted: single queries, and 400 test images in one
    batch — 784 ciphertexts, about 130 MB, over the 16 MiB body cap, so sent in parts —
    agree with the plaintext model on at least 99.5%; every answer's receipt checks, and
    the batch of receipts billed on chain checks against them."""
    data = load_fashion_mnist()
    cnn = CNN(activation="relu_poly", seed=0)
    cnn.fit(data.x_train[:6000], data.y_train[:6000], epochs=2, seed=0)
    weights = to_safetensors(cnn.params, cnn.architecture())
    with _market(tmp_path, weights, "fashion cnn", receipt_batch=100, receipt_age=2) as m:
        info = _serving(m["node"].url)
        assert info["he"]["n_features"] == 784 and info["he"]["layout"] == "conv"
        book = ReceiptBook(m["user"].address, m["client"].chain_id, m["cm"].receipts.address)
        inference = connect(m["cm"], m["user"], m["node"].identity.address, book=book)
        x = data.x_test[:400]
        plain = cnn.logits(x).argmax(1)
        singles = [inference.predict_encrypted(x[i]).argmax() for i in range(3)]
        assert singles == list(plain[:3])
        sent = inference.sent
        batch = inference.predict_encrypted_batch(x)
        assert inference.sent - sent > 16 << 20  # more than one request could carry
        assert (batch.argmax(1) == plain).mean() >= 0.995
        assert len(book.held) == 4  # three queries and one batch: the parts are free
        assert sorted(c for _, c in book.held) == [1, 2, 3, 4]

        def billed() -> int:
            return sum(
                m["cm"].receipts.batch(b).receipt_count
                for b in _batches_for(m["cm"], m["user"].address)
            )

        deadline = time.monotonic() + 20  # receipts a few seconds old are billed
        while billed() < 4 and time.monotonic() < deadline:
            time.sleep(0.3)
        assert billed() == 4
        verdicts = check_batches(m["cm"], m["user"], book)
        assert verdicts and all(v == "ok" for _, v in verdicts)
        metrics = requests.get(m["node"].url + "/metrics", timeout=10).text
        assert 'chainml_inference_requests_total{mode="he",outcome="ok"}' in metrics


def _cli(*args: str, config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chainml.cli.main", *args, "--config", str(config)],
        env=dict(os.environ, CHAINML_PASSWORD=PASSWORD, COLUMNS="200"),
        capture_output=True,
        text=True,
        timeout=180,
    )


def test_the_cli_client_prepays_asks_encrypted_and_checks_its_receipts(market, digits, tmp_path):
    m = market
    _serving(m["node"].url)
    root = m["node"].config.parent.parent  # beside the provider: the same deployment.json
    clinic = localnet.init_node(root, "clinic", PASSWORD, rpc=m["client"].url, work=1 << 10)
    from chainml.ledger.client import LocalSigner
    from chainml.ledger.devchain import DEV_KEY

    m["client"].transact(LocalSigner.from_key(DEV_KEY), to=clinic.identity.address, value=ETHER)
    data = tmp_path / "digits.npz"
    np.savez(data, x=digits.x_test, y=digits.y_test)
    provider = m["node"].identity.address

    done = _cli("infer", "deposit", "0.01", config=clinic.config)
    assert done.returncode == 0 and "prepaid balance: 0.01 ETH" in done.stdout, done.stderr
    done = _cli(
        "infer",
        "run",
        provider,
        "--input",
        str(data),
        "--rows",
        "6",
        "--encrypted",
        config=clinic.config,
    )
    assert done.returncode == 0, done.stderr
    assert "6 predictions (encrypted)" in done.stdout and "6 receipts held" in done.stdout
    accuracy = float(done.stdout.split("accuracy ")[1].split()[0])
    assert accuracy >= 0.8
    deadline = time.monotonic() + 30  # six receipts make a batch: the provider bills it
    while not _batches_for(m["cm"], clinic.identity.address) and time.monotonic() < deadline:
        time.sleep(0.3)
    (honest,) = _batches_for(m["cm"], clinic.identity.address)
    done = _cli("infer", "receipts", config=clinic.config)
    assert done.returncode == 0 and f"batch {honest}: 6 receipts" in done.stdout
    assert done.stdout.strip().endswith("ok")
    done = _cli("infer", "receipts", config=clinic.config)  # checked once, kept in the book
    assert done.returncode == 0 and "no new batches" in done.stdout
    # a provider that bills what it never served: the CLI catches it, disputes, exits 3
    billed = m["cm"].receipts.post_batch(
        m["node"].identity.account, clinic.identity.address, b"\x02" * 32, 1, PRICE
    )
    done = _cli("infer", "receipts", config=clinic.config)
    assert done.returncode == 3 and f"batch {billed}" in done.stdout and "disputed" in done.stdout
    assert m["cm"].receipts.batch(billed).status == 3
    wrong = _cli(
        "infer", "run", provider, "--input", str(tmp_path / "none.npz"), config=clinic.config
    )
    assert wrong.returncode != 0


def test_an_unreachable_provider_s_batch_waits_then_is_disputed(market):
    """Run last: it moves the chain's clock."""
    m = market
    cm, chain = m["cm"], m["client"]
    from chainml.ledger.client import LocalSigner
    from chainml.ledger.devchain import DEV_KEY

    gone = Identity.generate()  # a provider whose registered endpoint answers nothing
    chain.transact(LocalSigner.from_key(DEV_KEY), to=gone.address, value=2 * ETHER)
    cm.registry.register_identity(gone, Role.INFERENCE_PROVIDER, "http://127.0.0.1:9", ETHER)
    book = ReceiptBook(m["user"].address, chain.chain_id, cm.receipts.address)
    book.checked.update(_batches_for(cm, m["user"].address))
    billed = cm.receipts.post_batch(gone.account, m["user"].address, b"\x03" * 32, 1, PRICE)
    assert check_batches(cm, m["user"], book) == [(billed, "pending")]
    assert cm.receipts.batch(billed).status == 1  # not disputed on a provider's silence alone
    window = int(cm.receipts.functions.dispute_window())
    chain.increase_time(window // 2 + 1)
    verdicts = check_batches(cm, m["user"], book)
    assert [b for b, _ in verdicts] == [billed] and verdicts[0][1] != "pending"
    assert cm.receipts.batch(billed).status == 3


def test_a_revoked_grant_stops_the_serving(market, digits):
    """Run last: the model is gone afterwards."""
    m = market
    cm = m["cm"]
    grant_id = next(
        int(e.args["grant_id"])
        for e in cm.models.contract.past_events("GrantIssued")
        if str(e.args["grantee"]).lower() == m["node"].identity.address.lower()
    )
    _serving(m["node"].url)
    cm.models.revoke(m["owner"].account, grant_id)
    deadline = time.monotonic() + 20
    status = 200
    while status == 200 and time.monotonic() < deadline:
        status = requests.get(m["node"].url + "/v1/infer/model", timeout=5).status_code
        time.sleep(0.2)
    assert status == 503
    answer = requests.post(m["node"].url + "/v1/infer", data=b"anything", timeout=5)
    assert answer.status_code == 503 and answer.json()["error"] == "no_model"
