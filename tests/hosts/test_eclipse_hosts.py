"""An eclipse between hosts: a node's RPC endpoint is replaced by a proxy on its own host
that serves a stale head; its chain monitor, which also reads the honest chain node on
another host, raises ``endpoint_behind`` against the lying endpoint (and only it), and
holds the node's view: ``acting_stopped``, its workers stop and the log says why."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import requests

from chainml.crypto import Identity
from chainml.devtools import hostjob
from chainml.devtools.hosts import Network
from chainml.ledger.anvil import stop_process
from chainml.ledger.bindings import Role
from chainml.ledger.client import LedgerClient
from chainml.node import daemon, localnet

PROXY = "http://127.0.0.1:8545"  # on the node's own host: its loopback, not the machine's


def _alerts(url: str) -> list[dict]:
    return list(requests.get(url + "/v1/alerts", timeout=5).json())


def test_a_node_fed_a_stale_head_is_alarmed_by_an_endpoint_on_another_host(tmp_path: Path):
    with Network(["chain", "node"]) as net, ExitStack() as stack:
        chain, url = hostjob.start_chain(net, tmp_path, probe_from="node")
        stack.callback(stop_process, chain, 20)
        host = net["node"]

        def setup():
            client = LedgerClient(url)
            cm, dev = localnet.deploy(client, tmp_path)
            node = localnet.init_node(tmp_path, "node", hostjob.PASSWORD, rpc=PROXY, work=1 << 10)
            client.transact(dev, to=node.identity.address, value=2 * hostjob.ETHER)
            node = hostjob.configure(node, host, '[storage]\ndir = "store"\n', 6)
            cm.registry.register_identity(node.identity, Role.VALIDATOR, node.url, hostjob.ETHER)
            text = node.config.read_text().replace("endpoints = []", f'endpoints = ["{url}"]')
            node.config.write_text(text)
            return client, dev, node

        client, dev, node = host.call(setup)
        proxy = host.popen(
            [
                *(sys.executable, "-m", "chainml.devtools.staleproxy"),
                "--listen",
                "127.0.0.1:8545",
                "--upstream",
                url,
            ],
            stdout=subprocess.PIPE,
        )
        stack.callback(stop_process, proxy, 10)
        assert proxy.stdout is not None
        frozen = json.loads(proxy.stdout.readline())["frozen"]
        assert frozen == host.call(client.block_number)
        proc = hostjob.start_node(host, node, tmp_path / "node.log")
        stack.callback(stop_process, proc, 20)
        host.call(daemon.wait_ready, node.url, proc, 120, address=node.identity.address)
        time.sleep(1.5)  # three monitor ticks with both endpoints at the same head
        assert not [a for a in host.call(_alerts, node.url) if a["kind"].startswith("endpoint")]

        def advance() -> int:  # the real chain moves on: seven blocks
            for _ in range(7):
                client.transact(dev, to=Identity.generate().address, value=1)
            return client.block_number()

        assert host.call(advance) >= frozen + 7
        deadline = time.monotonic() + 30
        behind: list[dict] = []
        while not behind and time.monotonic() < deadline:
            time.sleep(0.5)
            behind = [a for a in host.call(_alerts, node.url) if a["kind"] == "endpoint_behind"]
        assert behind, host.call(_alerts, node.url)
        assert {a["subject"] for a in behind} == {PROXY}  # the lying endpoint, not the honest
        assert "blocks behind" in behind[0]["detail"]
        # and the node stops acting on the lying view, saying so
        stopped = [a for a in host.call(_alerts, node.url) if a["kind"] == "acting_stopped"]
        assert stopped and stopped[0]["subject"].startswith(PROXY), stopped
        logged = (tmp_path / "node.log").read_text()
        assert "the node stops acting" in logged and "blocks behind" in logged
