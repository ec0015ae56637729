"""schemathesis against real node processes, one of each role: a trainer (no inference
routes) and an inference provider serving a granted model.  Every check schemathesis has,
against the schema each node serves: no 5xx, no response off its schema, no status the
schema does not list.  Bounded: a fixed seed, at most ``EXAMPLES`` cases per operation and
``MAX_TIME`` seconds per node."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chainml.crypto import Identity
from chainml.ledger.bindings import Role
from chainml.ledger.client import LedgerClient
from chainml.ledger.devchain import DevChainProcess
from chainml.node import daemon, localnet
from chainml.storage.local import LocalBlobStore
from chainml.training.models import to_safetensors

ETHER = 10**18
PASSWORD = "schema test password"
EXAMPLES = 20
MAX_TIME = 15
ST = Path(sys.executable).with_name("st")
# schemathesis sends requests as fast as it can: rates high enough not to be the answer
RATES = (
    ("rate_per_peer = 50", "rate_per_peer = 5000"),
    ("rate_overall = 500", "rate_overall = 50000"),
)


def _configure(config: Path) -> None:
    text = config.read_text()
    for old, new in RATES:
        text = text.replace(old, new)
    config.write_text(text)


@pytest.fixture(scope="module")
def nodes(tmp_path_factory, x2_mlp):
    tmp = tmp_path_factory.mktemp("schema")
    with DevChainProcess(tmp / "chain") as chain:
        client = LedgerClient(chain.url)
        cm, dev = localnet.deploy(client, tmp)
        trainer = localnet.init_node(tmp, "trainer", PASSWORD, rpc=chain.url, work=1 << 10)
        provider = localnet.init_node(tmp, "provider", PASSWORD, rpc=chain.url, work=1 << 10)
        owner = Identity.generate()
        for ident in (trainer.identity, provider.identity, owner):
            client.transact(dev, to=ident.address, value=3 * ETHER)
        cm.registry.register_identity(trainer.identity, Role.TRAINER, trainer.url, ETHER)
        cm.registry.register_identity(
            provider.identity, Role.INFERENCE_PROVIDER, provider.url, ETHER
        )
        cm.registry.register_identity(owner, Role.REQUESTER, "", ETHER)
        weights = to_safetensors(x2_mlp.params, {"model": "mlp", "activation": "square"})
        store = LocalBlobStore(provider.config.parent / "store")
        localnet.publish_and_grant(cm, store, owner, provider.identity.address, weights, name="m")
        procs = []
        try:
            for nd in (trainer, provider):
                _configure(nd.config)
                procs.append(daemon.spawn(nd.config, PASSWORD, quiet=True))
            for nd, proc in zip((trainer, provider), procs, strict=True):
                daemon.wait_ready(nd.url, proc)
            yield {"trainer": (trainer.url, procs[0]), "provider": (provider.url, procs[1])}
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait(timeout=20)


def _serving(url: str) -> None:
    import time

    import requests

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if requests.get(url + "/v1/infer/model", timeout=5).status_code == 200:
            return
        time.sleep(0.2)
    raise AssertionError("the provider never served its model")


# A schema-valid envelope may still be refused for what no schema can say: a stale
# timestamp or an undecryptable payload (400), a signature by someone else (401), another
# recipient (421).  These are the statuses the API documents for such refusals; any other
# answer to schema-valid data is still a failure.
CONFIG = """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "400", "401", "402", "403", "404", "409", "413", "421", "428", "429"]
"""
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")


@pytest.mark.parametrize("role", ["trainer", "provider"])
def test_schemathesis_finds_nothing(nodes, role, tmp_path):
    url, proc = nodes[role]
    if role == "provider":
        _serving(url)  # 503 no_model until then: a 5xx schemathesis would rightly count
    report = tmp_path / "report.json"
    (tmp_path / "schemathesis.toml").write_text(CONFIG)
    run = subprocess.run(
        [
            str(ST if ST.exists() else shutil.which("st")),
            "run",
            url + "/openapi.json",
            "--checks",
            "all",
            "--max-examples",
            str(EXAMPLES),
            "--seed",
            "20261203",
            "--max-time",
            str(MAX_TIME),
            "--workers",
            "1",
            "--request-timeout",
            "30",
            "--report",
            "ndjson",
            "--report-ndjson-path",
            str(report),
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=MAX_TIME * 4 + 60,
        cwd=tmp_path,
        env=dict(os.environ, SCHEMATHESIS_HOOKS="schemathesis_hooks", PYTHONPATH=str(HOOKS.parent)),
    )
    summary = run.stdout[-4000:]
    assert run.returncode == 0, summary
    assert proc.poll() is None, "the node died"
    # it did test: every operation the node serves, with answers from the node
    events = [json.loads(line) for line in report.read_text().splitlines() if line.strip()]
    assert events, summary
    assert "5xx" not in summary.lower() or "0 5xx" in summary.lower()


def test_an_encrypted_query_is_capped_by_its_mode_before_its_body_is_read(nodes):
    """/v1/infer/he takes 64 MiB of evaluation keys but 16 MiB for a query: a frame whose
    header names a query and that declares 20 MiB is refused on its first bytes."""
    import socket
    import struct
    import time

    from chainml.inference.service import REQUEST_MAGIC

    url, proc = nodes["provider"]
    _serving(url)
    port = int(url.rsplit(":", 1)[1])
    head = b'{"mode":"he"}'
    frame = REQUEST_MAGIC + struct.pack(">I", len(head)) + head + b"\0" * 65536
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(
            b"POST /v1/infer/he HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (20 << 20)
            + frame
        )
        answer = b""
        while chunk := s.recv(65536):  # the node answers and closes: nothing more is read
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413") and b'"error":"oversized"' in answer, answer[:300]
    assert time.monotonic() - t0 < 10 and proc.poll() is None
