"""`chainml node register`: the node's own account registers it, with roles and stake."""

from __future__ import annotations

import subprocess

from chainml.ledger.bindings import Role
from chainml.ledger.client import LedgerClient
from chainml.ledger.devchain import DevChainProcess
from chainml.node import localnet
from tests.cli import chainml

PASSWORD = "register test"
ETHER = 10**18


def _register(config, *args: str) -> subprocess.CompletedProcess[str]:
    return chainml("node", "register", "--config", config, *args, password=PASSWORD)


def test_register_from_the_command_line(tmp_path):
    with DevChainProcess(tmp_path / "chain") as chain:
        client = LedgerClient(chain.url)
        cm, dev = localnet.deploy(client, tmp_path)
        node = localnet.init_node(tmp_path, "carol", PASSWORD, rpc=chain.url, work=1 << 10)
        client.transact(dev, to=node.identity.address, value=3 * ETHER)

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
