"""A node's store is the one its ``[storage]`` table names: a node process on the embedded
IPFS engine serves a key release from a bundle it fetches over the swarm, and a bad table
stops ``load_config`` with a typed error."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
import requests

from chainml.crypto import Identity
from chainml.crypto.stream import generate_key
from chainml.ledger.bindings import Role
from chainml.ledger.client import LedgerClient
from chainml.ledger.devchain import DevChainProcess
from chainml.node import daemon, localnet
from chainml.node.access import LedgerChainView
from chainml.storage import access, ipfs_engine
from chainml.storage.factory import MissingOption, UnknownBackend, UnknownOption
from chainml.storage.ipfs_engine import IpfsEngineStore
from chainml.storage.sealed import seal_artifact

ETHER = 10**18
PASSWORD = "storage test password"


def _with_storage(config: Path, table: str) -> None:
    """Replace node.toml's [storage] table by ``table``."""
    text = config.read_text()
    start = text.index("[storage]")
    end = text.index("\n[", start + 1)
    config.write_text(text[:start] + table.strip() + "\n" + text[end:])


def test_the_template_is_a_local_store_beside_the_config(tmp_path: Path):
    daemon.init(
        tmp_path, "n", "pw", rpc="http://127.0.0.1:1", deployment="d.json", port=1, work=1 << 10
    )
    config = daemon.load_config(tmp_path / "node.toml")
    assert (config.storage.backend, config.storage.dir) == ("local", tmp_path / "store")
    assert config.store == tmp_path / "store"


@pytest.mark.parametrize(
    ("table", "cause"),
    [
        ('[storage]\nbackend = "ipfs2"', UnknownBackend),
        ('[storage]\nbackend = "kubo"', MissingOption),
        ('[storage]\nbackend = "kubo"\napi_url = "http://127.0.0.1:5001"', UnknownOption),
    ],
)
def test_a_bad_storage_table_is_a_config_error(tmp_path: Path, table: str, cause: type):
    daemon.init(
        tmp_path, "n", "pw", rpc="http://127.0.0.1:1", deployment="d.json", port=1, work=1 << 10
    )
    _with_storage(tmp_path / "node.toml", table)
    with pytest.raises(daemon.ConfigError, match=r"node\.toml: \[storage\]") as caught:
        daemon.load_config(tmp_path / "node.toml")
    assert isinstance(caught.value.__cause__, cause)


def test_a_guardian_node_on_the_ipfs_backend_fetches_the_bundle_over_the_swarm(tmp_path: Path):
    try:
        ipfs_engine._lib()
    except ipfs_engine.EngineUnavailable as exc:
        pytest.skip(f"no kubo engine here: {exc}")
    with (
        DevChainProcess(tmp_path / "chain") as chain,
        IpfsEngineStore(tmp_path / "alice-ipfs", timeout=20) as alices,
    ):
        client = LedgerClient(chain.url)
        cm, dev = localnet.deploy(client, tmp_path)
        node = localnet.init_node(tmp_path, "bob", PASSWORD, rpc=chain.url, work=1 << 10)
        bob, alice = node.identity, Identity.generate()
        for ident in (bob, alice):
            client.transact(dev, to=ident.address, value=2 * ETHER)
            cm.registry.register_identity(ident, Role.TRAINER, "x", ETHER)
        _with_storage(
            node.config,
            f'[storage]\nbackend = "ipfs"\npeers = ["{alices.multiaddr}"]\ntimeout = 20\n',
        )
        # alice's sealed model and its guardian bundle live in alice's IPFS peer only
        view = LedgerChainView(cm)
        key = generate_key()
        sealed = seal_artifact(alices, key, os.urandom(5_000), artifact_id="m", version=1)
        model = cm.models.create_model(alice.account, "m")
        version = cm.models.publish_version(
            alice.account,
            model,
            sealed.manifest.ciphertext_cid,
            sealed.manifest_cid,
            sealed.plaintext_commitment,
        )
        bundle = access.split_among_guardians(view, key, version, [bob.address], threshold=1)
        grant = cm.models.grant(
            alice.account, version, alice.address, view.now() + 3600, alices.put(bundle)
        )
        proc = daemon.spawn(node.config, PASSWORD)
        try:
            daemon.wait_ready(node.url, proc)
            request = access.make_request(alice.account, view, grant, bob.address, view.now())
            reply = requests.post(node.url + "/v1/keys/release", data=request.encode(), timeout=30)
            assert reply.status_code == 200, reply.text
            r = reply.json()
            release = access.KeyRelease(
                r["guardian"],
                r["index"],
                bytes.fromhex(r["sealed_share"]),
                bytes.fromhex(r["signature"]),
            )
            assert access.recover_key(alice, view, [request], [release], sealed.manifest) == key
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=20) == 0  # SIGTERM still ends it cleanly with the engine
        bob_dir = node.config.parent
        assert (bob_dir / "ipfs" / "kubo").is_dir()  # bob's repository, as configured
        assert not (bob_dir / "store").exists()  # no local store was opened
