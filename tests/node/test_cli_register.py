"""`chainml node register`: the node's own account registers it, with roles and stake."""

from __future__ import annotations

import re
import subprocess
from types import SimpleNamespace

import pytest
import typer

from chainml.cli.node import _endpoint
from chainml.ledger.bindings import Role
from chainml.ledger.client import LedgerClient
from chainml.ledger.devchain import DevChainProcess
from chainml.node import localnet
from tests.cli import chainml

PASSWORD = "register test"
ETHER = 10**18


def _register(config, *args: str) -> subprocess.CompletedProcess[str]:
    return chainml("node", "register", "--config", config, *args, password=PASSWORD)


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("register")
    with DevChainProcess(root / "chain") as chain:
        client = LedgerClient(chain.url)
        cm, dev = localnet.deploy(client, root)
        yield SimpleNamespace(root=root, url=chain.url, client=client, cm=cm, dev=dev)


def _funded_node(chain: SimpleNamespace, name: str) -> localnet.NodeDir:
    """A new node's directory beside the deployment, its account funded, not registered."""
    node = localnet.init_node(chain.root, name, PASSWORD, rpc=chain.url, work=1 << 10)
    chain.client.transact(chain.dev, to=node.identity.address, value=3 * ETHER)
    return node


def test_register_from_the_command_line(chain):
    cm, node = chain.cm, _funded_node(chain, "carol")
    bad = _register(node.config, "--roles", "trainer,wizard")
    assert bad.returncode == 1 and "unknown role 'wizard'" in bad.stdout
    done = _register(node.config, "--roles", "trainer, validator", "--stake", "1.5")
    assert done.returncode == 0, done.stdout + done.stderr
    party = cm.registry.party(node.identity.address)
    assert party.roles == Role.TRAINER | Role.VALIDATOR
    assert party.x25519_key == node.identity.x25519.public_bytes
    assert party.endpoint == node.url
    assert cm.registry.stake_of(node.identity.address) == 3 * ETHER // 2
    again = _register(node.config)
    assert again.returncode == 1 and "AlreadyRegistered" in again.stdout
    assert PASSWORD not in done.stdout + again.stdout


def test_register_and_change_the_endpoint_others_reach_the_node_at(chain):
    cm, node = chain.cm, _funded_node(chain, "dave")
    refused = _register(node.config, "--endpoint", "https://user:pw@node.example")
    assert refused.returncode == 2 and "--endpoint" in refused.stderr
    assert not cm.registry.is_registered(node.identity.address)  # nothing was sent

    done = _register(node.config, "--endpoint", "https://node.hospital-a.example/")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "at https://node.hospital-a.example" in " ".join(done.stdout.split())
    assert cm.registry.party(node.identity.address).endpoint == "https://node.hospital-a.example"
    moved = chainml(
        "node",
        "endpoint",
        "https://node-2.hospital-a.example:8443",
        "--config",
        node.config,
        password=PASSWORD,
    )
    assert moved.returncode == 0, moved.stdout + moved.stderr
    assert cm.registry.party(node.identity.address).endpoint == (
        "https://node-2.hospital-a.example:8443"
    )
    bad = chainml(
        "node", "endpoint", "https://x.example?q=1", "--config", node.config, password=PASSWORD
    )
    assert bad.returncode == 2 and "query" in bad.stderr  # the console boxes it


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("ftp://node.example", "http(s) URL with a host"),
        ("node.example", "http(s) URL with a host"),
        ("https://", "http(s) URL with a host"),
        ("https://user:pw@node.example", "no credentials"),
        ("https://node.example#x", "no credentials, query or fragment"),
        ("https://node.example:99999", "out of range"),
        ("https://node.example/" + "a" * 256, "too long"),
    ],
)
def test_an_endpoint_others_cannot_use_is_refused(url, words):
    with pytest.raises(typer.BadParameter, match=re.escape(words)):
        _endpoint(url)


def test_an_endpoint_is_kept_as_given_without_a_trailing_slash():
    assert _endpoint("https://node.example:8443/chainml/") == "https://node.example:8443/chainml"
