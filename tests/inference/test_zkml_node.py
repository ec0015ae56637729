"""Proven inference across processes, on a chain: the owner publishes the digits x² MLP with
its proof bundle named in the sealed manifest; an honest provider node serves it with
proofs the client verifies against what the chain commits to; a provider node that answers
with another model (and valid proofs of that model) fails the client's verification, and
the batch that bills the answer is disputed on chain."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from chainml.crypto import Identity
from chainml.crypto.stream import generate_key
from chainml.inference.receipts import ReceiptBook
from chainml.inference.zkml import InvalidProof, MalformedBundle, committed_bundle
from chainml.ledger.anvil import stop_process
from chainml.ledger.bindings import Role
from chainml.ledger.client import LedgerClient
from chainml.ledger.devchain import DevChainProcess
from chainml.node import daemon, localnet
from chainml.node.inference import check_batches, connect
from chainml.storage.local import LocalBlobStore
from chainml.storage.sealed import seal_artifact
from chainml.training.models import to_safetensors

pytestmark = pytest.mark.slow

ETHER = 10**18
PASSWORD = "zk provider test password"
ROOT = Path(__file__).resolve().parents[2]


def _node(tmp: Path, name: str, url: str):
    node = localnet.init_node(tmp, name, PASSWORD, rpc=url, work=1 << 10)
    config = node.config.read_text()
    config = config.replace("receipt_batch = 100 ", "receipt_batch = 1 ")  # bill each answer
    config = config.replace("interval = 1 ", "interval = 0.2 ")
    config = config.replace('dir = "store"', f'dir = "{tmp / "store"}"')
    node.config.write_text(config)
    return node


def _cli(*args: str | Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``chainml ARGS`` as its own process (as ``tests.cli.chainml``), with room for a
    bundle built or a proof made on a loaded machine."""
    env = dict(os.environ, CHAINML_PASSWORD=PASSWORD, COLUMNS="200")
    return subprocess.run(
        [sys.executable, "-m", "chainml.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def _spawn(node, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    if env is None:
        return daemon.spawn(node.config, PASSWORD, log=node.config.parent / "node.log")
    argv = ["-m", "tests.inference.zk_swapper", "node", "run", "--config", str(node.config)]
    full = dict(os.environ, CHAINML_PASSWORD=PASSWORD, PYTHONPATH=str(ROOT), **env)
    with (node.config.parent / "node.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, *argv], env=full, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
        )


def _ready(node, proc, timeout: float = 120.0) -> None:
    """``daemon.wait_ready``, asked again when the node, up but slow on a loaded machine,
    lets a status request time out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            daemon.wait_ready(node.url, proc, timeout=10, address=node.identity.address)
            return
        except (requests.Timeout, daemon.NodeStartError):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise


def _wait(what, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.3)
    raise AssertionError("timed out")


@pytest.fixture(scope="module")
def market(tmp_path_factory, x2_mlp, other_model, zk_other):
    """A chain; the owner publishes the digits x² MLP with its proof bundle through the CLI
    (``model seal --proofs``) and grants it to an honest provider node and to a swapping
    one; a funded client identity and a client node for the CLI.  Every node uses one
    store, as IPFS would make them."""
    tmp = tmp_path_factory.mktemp("zkmarket")
    other_bundle, _ = zk_other
    weights = tmp / "digits.safetensors"
    weights.write_bytes(to_safetensors(x2_mlp.params, {"model": "mlp", "activation": "square"}))
    store = LocalBlobStore(tmp / "store")
    with DevChainProcess(tmp / "chain") as chain:
        client = LedgerClient(chain.url)
        cm, dev = localnet.deploy(client, tmp)
        nodes = {n: _node(tmp, n, chain.url) for n in ("owner", "honest", "swapper", "clinic")}
        user = Identity.generate()
        for ident in [n.identity for n in nodes.values()] + [user]:
            client.transact(dev, to=ident.address, value=5 * ETHER)
        for name in ("honest", "swapper"):
            node = nodes[name]
            cm.registry.register_identity(node.identity, Role.INFERENCE_PROVIDER, node.url, ETHER)
        cm.registry.register_identity(nodes["owner"].identity, Role.REQUESTER, "", ETHER)
        owner = nodes["owner"].config
        sealed = _cli(
            "model", "seal", weights, "--name", "digits x2", "--proofs", "--config", owner
        )
        assert sealed.returncode == 0, sealed.stdout + sealed.stderr
        version = int(sealed.stdout.split("version")[1].split()[0])
        bundle_cid = sealed.stdout.split("proofs")[1].split()[0]
        for name in ("honest", "swapper"):
            address = nodes[name].identity.address
            granted = _cli(
                "model", "grant", str(version), address, "--days", "1", "--config", owner
            )
            assert granted.returncode == 0, granted.stderr
        cm.receipts.deposit(user.account, ETHER // 100)
        cm.receipts.deposit(nodes["clinic"].identity.account, ETHER // 100)
        swap = tmp / "swap"
        swap.mkdir()
        (swap / "weights").write_bytes(
            to_safetensors(other_model.params, {"model": "mlp", "activation": "square"})
        )
        (swap / "bundle").write_bytes(other_bundle.encode())
        procs = [
            _spawn(nodes["honest"]),
            _spawn(
                nodes["swapper"],
                {"ZK_SWAP_WEIGHTS": str(swap / "weights"), "ZK_SWAP_BUNDLE": str(swap / "bundle")},
            ),
        ]
        try:
            for node, proc in zip((nodes["honest"], nodes["swapper"]), procs, strict=True):
                _ready(node, proc)
            yield {
                "cm": cm,
                "chain": client,
                "user": user,
                "honest": nodes["honest"],
                "swapper": nodes["swapper"],
                "clinic": nodes["clinic"],
                "version": version,
                "bundle_cid": bundle_cid,
                "fetch": store.get,
                "plain_manifest": seal_artifact(
                    store, generate_key(), weights, artifact_id="m", version=1
                ),
                # the client's one book: every batch billed to it is checked against it
                "book": ReceiptBook(user.address, client.chain_id, cm.receipts.address),
                "tmp": tmp,
            }
        finally:
            for proc in procs:
                with contextlib.suppress(Exception):
                    stop_process(proc, timeout=20)


def _connect(m, node, book):
    """The client, once the node serves its model with proofs."""

    def ready():
        try:
            c = connect(m["cm"], m["user"], node.identity.address, book=book, proofs=m["fetch"])
        except Exception:  # noqa: BLE001 - not serving yet
            return None
        return c if c.info.zk_bundle else None

    return _wait(ready)


def _batches(cm, client: str, provider: str) -> list[int]:
    return [
        int(e.args["batch_id"])
        for e in cm.receipts.contract.past_events("BatchPosted")
        if str(e.args["client"]).lower() == client.lower()
        and str(e.args["provider"]).lower() == provider.lower()
    ]


def test_an_honest_provider_node_s_proven_answers_verify_and_its_batch_checks(
    market, x2_mlp, digits
):
    m = market
    book = m["book"]
    inference = _connect(m, m["honest"], book)
    assert inference.info.zk_bundle == m["bundle_cid"]
    x = digits.x_test[20:21]
    logits = inference.predict_proven(x)
    assert np.array_equal(logits.argmax(1), x2_mlp.predict(x))
    assert not book.rejected
    provider = m["honest"].identity.address
    (batch_id,) = _wait(lambda: _batches(m["cm"], m["user"].address, provider))
    verdicts = dict(check_batches(m["cm"], m["user"], book))
    assert verdicts[batch_id] == "ok"
    assert m["cm"].receipts.batch(batch_id).status == 1  # left to settle


def test_a_provider_node_serving_another_model_is_disputed_on_chain(market, digits):
    m = market
    cm, user, book = m["cm"], m["user"], m["book"]
    inference = _connect(m, m["swapper"], book)
    assert inference.info.zk_bundle == m["bundle_cid"]  # it claims the committed model
    with pytest.raises(InvalidProof):
        inference.predict_proven(digits.x_test[:1])
    assert len(book.rejected) == 1
    provider = m["swapper"].identity.address
    (batch_id,) = _wait(lambda: _batches(cm, user.address, provider))
    before = cm.receipts.available(user.address)
    amount = cm.receipts.batch(batch_id).amount
    verdicts = dict(check_batches(cm, user, book))
    assert verdicts[batch_id] == "RejectedAnswer"
    assert cm.receipts.batch(batch_id).status == 3  # disputed on chain
    assert cm.receipts.available(user.address) == before + amount


def test_the_client_takes_the_bundle_only_from_the_manifest_on_chain(market, zk_other):
    m = market
    manifest_cid = m["cm"].models.version(m["version"]).manifest_cid
    bundle, cid = committed_bundle(manifest_cid, m["fetch"])
    assert cid == m["bundle_cid"]
    other_bundle, _ = zk_other

    def lying(c: str) -> bytes:  # a store that hands over another bundle under the CID
        return other_bundle.encode() if c == cid else m["fetch"](c)

    with pytest.raises(MalformedBundle, match="not the one the manifest names"):
        committed_bundle(manifest_cid, lying)
    plain = m["plain_manifest"]  # a version sealed without a bundle
    with pytest.raises(MalformedBundle, match="without a proof bundle"):
        committed_bundle(plain.manifest_cid, m["fetch"])


def test_the_cli_client_asks_for_proofs_and_disputes_a_swapped_model(market, digits):
    m = market
    cm, clinic = m["cm"], m["clinic"]
    data = m["tmp"] / "digits.npz"
    np.savez(data, x=digits.x_test, y=digits.y_test)
    honest = m["honest"].identity.address
    done = _cli(
        "infer",
        "run",
        honest,
        "--input",
        data,
        "--rows",
        "1",
        "--proven",
        "--config",
        clinic.config,
    )
    assert done.returncode == 0, done.stderr
    assert "1 predictions (proven plain)" in done.stdout
    swapped = _cli(
        "infer",
        "run",
        m["swapper"].identity.address,
        "--input",
        data,
        "--rows",
        "1",
        "--proven",
        "--config",
        clinic.config,
    )
    assert swapped.returncode != 0 and "InvalidProof" in swapped.stderr
    for provider in (honest, m["swapper"].identity.address):
        _wait(lambda p=provider: _batches(cm, clinic.identity.address, p))
    checked = _cli("infer", "receipts", "--config", clinic.config)
    assert checked.returncode == 3, checked.stdout + checked.stderr
    (bad,) = _batches(cm, clinic.identity.address, m["swapper"].identity.address)
    (good,) = _batches(cm, clinic.identity.address, honest)
    assert f"batch {bad}" in checked.stdout and "disputed" in checked.stdout
    assert cm.receipts.batch(bad).status == 3 and cm.receipts.batch(good).status == 1
