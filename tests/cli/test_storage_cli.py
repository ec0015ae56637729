"""`chainml cid`, `chainml store put | get`, `chainml model seal | grant | open | revoke`,
each run as its own process, the model commands against a real chain process."""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest

from chainml.ledger.bindings import Role
from chainml.ledger.client import LedgerClient
from chainml.ledger.devchain import DevChainProcess
from chainml.node import daemon, localnet
from chainml.storage.unixfs import CHUNK
from tests.cli import chainml

PASSWORD = "storage cli test"
ETHER = 10**18


def _cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return chainml(*args, password=PASSWORD)


def test_cid_matches_ipfs_cid(tmp_path: Path):
    path = tmp_path / "f.bin"
    path.write_bytes(random.Random(1).randbytes(3 * CHUNK + 9))
    ref = json.loads(
        subprocess.run(
            ["ipfs_cid", str(path)], capture_output=True, text=True, timeout=60
        ).stdout.splitlines()[0]
    )
    assert _cli("cid", path).stdout.strip() == ref["CIDv1"]
    assert _cli("cid", "--v0", path).stdout.strip() == ref["CIDv0"]


def test_store_put_get_and_a_damaged_store(tmp_path: Path):
    data = random.Random(2).randbytes(2 * CHUNK + 1)
    src, out, store = tmp_path / "in.bin", tmp_path / "out.bin", tmp_path / "store"
    src.write_bytes(data)
    cid = _cli("store", "put", src, "--store", store).stdout.strip()
    assert _cli("store", "get", cid, "-o", out, "--store", store).returncode == 0
    assert out.read_bytes() == data
    out.unlink()
    leaf = next(p for p in store.rglob("b*") if p.is_file() and p.name != cid)
    leaf.write_bytes(leaf.read_bytes()[:-1] + b"!")
    bad = _cli("store", "get", cid, "-o", out, "--store", store)
    assert bad.returncode == 1 and "CorruptBlob" in bad.stderr
    assert not out.exists() and not list(tmp_path.glob(".get-*"))
    assert "InvalidCid" in _cli("store", "get", "nonsense", "-o", out, "--store", store).stderr


@pytest.fixture(scope="module")
def two_nodes(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("models")
    with DevChainProcess(tmp / "chain") as chain:
        client = LedgerClient(chain.url)
        cm, dev = localnet.deploy(client, tmp)
        nodes = {}
        for name in ("owner", "reader"):
            node = localnet.init_node(tmp, name, PASSWORD, rpc=chain.url, work=1 << 10)
            client.transact(dev, to=node.identity.address, value=3 * ETHER)
            cm.registry.register_identity(node.identity, Role.REQUESTER, node.url, 0)
            nodes[name] = node
        # one machine: both nodes use the same store, as IPFS would make them
        for node in nodes.values():
            node.config.write_text(
                node.config.read_text().replace('dir = "store"', f'dir = "{tmp / "store"}"')
            )
        yield cm, nodes, tmp


def test_seal_grant_open_revoke(two_nodes):
    cm, nodes, tmp = two_nodes
    owner, reader = nodes["owner"].config, nodes["reader"].config
    weights = tmp / "w.safetensors"
    weights.write_bytes(random.Random(3).randbytes(300_000))
    sealed = _cli("model", "seal", weights, "--name", "digits", "--config", owner)
    assert sealed.returncode == 0, sealed.stdout + sealed.stderr
    version = cm.models.version(1)
    assert version.manifest_cid in sealed.stdout and version.model_id == 1

    out = tmp / "opened.safetensors"
    assert _cli("model", "open", "1", "-o", out, "--config", owner).returncode == 0  # the owner
    assert out.read_bytes() == weights.read_bytes()
    denied = _cli("model", "open", "1", "-o", tmp / "x", "--config", reader)
    assert denied.returncode == 1 and "NoKey" in denied.stderr and not (tmp / "x").exists()

    reader_address = nodes["reader"].identity.address
    granted = _cli("model", "grant", "1", reader_address, "--days", "1", "--config", owner)
    assert granted.returncode == 0, granted.stderr
    out.unlink()
    assert _cli("model", "open", "1", "--grant", "1", "-o", out, "--config", reader).returncode == 0
    assert out.read_bytes() == weights.read_bytes()

    revoked = _cli("model", "revoke", "1", "--config", owner)
    assert revoked.returncode == 0 and "re-sealed as version 2" in revoked.stdout
    assert cm.models.grant_info(1).revoked and cm.models.version(2).parent_version == 1
    assert cm.models.version(2).ciphertext_cid != version.ciphertext_cid
    again = _cli("model", "open", "2", "--grant", "1", "-o", tmp / "y", "--config", reader)
    assert again.returncode == 1 and not (tmp / "y").exists()
    assert _cli("model", "open", "2", "-o", tmp / "z", "--config", owner).returncode == 0
    assert (tmp / "z").read_bytes() == weights.read_bytes()
    assert PASSWORD not in sealed.stdout + granted.stdout + revoked.stdout + again.stderr


def test_store_put_get_through_a_kubo_rpc_api(tmp_path: Path):
    from tests.storage.test_kubo_rpc import Kubo

    daemon = Kubo()  # the recorded Kubo RPC protocol on loopback
    try:
        data = random.Random(4).randbytes(CHUNK + 7)
        src, out = tmp_path / "in.bin", tmp_path / "out.bin"
        src.write_bytes(data)
        put = _cli("store", "put", src, "--ipfs-api", daemon.url)
        assert put.returncode == 0, put.stderr
        cid = put.stdout.strip()
        assert _cli("store", "get", cid, "-o", out, "--ipfs-api", daemon.url).returncode == 0
        assert out.read_bytes() == data
        assert "add" in daemon.commands() and "block/get" in daemon.commands()
    finally:
        daemon.close()


def test_store_commands_use_the_node_s_configured_store(tmp_path: Path):
    """--config takes the store from node.toml's [storage] table, as the node itself would:
    the local backend's directory, then a kubo daemon's RPC API."""
    from tests.node.test_node_storage import _with_storage
    from tests.storage.test_kubo_rpc import Kubo

    daemon.init(
        tmp_path, "n", "pw", rpc="http://127.0.0.1:1", deployment="d.json", port=1, work=1 << 10
    )
    config = tmp_path / "node.toml"
    data = random.Random(5).randbytes(CHUNK + 3)
    src, out = tmp_path / "in.bin", tmp_path / "out.bin"
    src.write_bytes(data)
    cid = _cli("store", "put", src, "--config", config).stdout.strip()
    assert (tmp_path / "store").is_dir() and not Path(".chainml/store", cid).exists()
    assert _cli("store", "get", cid, "-o", out, "--store", tmp_path / "store").returncode == 0
    assert out.read_bytes() == data

    kubo = Kubo()
    try:
        _with_storage(config, f'[storage]\nbackend = "kubo"\napi = "{kubo.url}"')
        put = _cli("store", "put", src, "--config", config)
        assert put.returncode == 0 and put.stdout.strip() == cid, put.stderr
        out.unlink()
        assert _cli("store", "get", cid, "-o", out, "--config", config).returncode == 0
        assert out.read_bytes() == data and "add" in kubo.commands()
    finally:
        kubo.close()

    _with_storage(config, '[storage]\nbackend = "kubo"')
    bad = _cli("store", "put", src, "--config", config)
    said = " ".join(bad.stderr.split())  # the console wraps long lines
    assert bad.returncode == 1 and "ConfigError" in said and "needs 'api'" in said
    both = _cli("store", "put", src, "--config", config, "--store", tmp_path / "s2")
    assert both.returncode == 2 and "one of --store, --ipfs-api and --config" in both.stderr
    assert not (tmp_path / "s2").exists()
