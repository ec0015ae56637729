"""A network on one machine: contracts on a development chain and node directories for
named parties.  Used by ``make demo``, the node tests and the node benchmark.

The deployer is the development chains' first account (``chainml.ledger.devchain.DEV_KEY``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from chainml.crypto import Identity
from chainml.crypto.stream import generate_key
from chainml.ledger.anvil import free_port
from chainml.ledger.bindings import Chainml
from chainml.ledger.client import LedgerClient, LocalSigner
from chainml.ledger.deploy import deploy_system
from chainml.ledger.devchain import DEV_KEY
from chainml.node import keystore, roles
from chainml.node.access import LedgerChainView
from chainml.storage import access
from chainml.storage.sealed import seal_artifact
from chainml.storage.store import BlobStore


@dataclass(frozen=True)
class NodeDir:
    name: str
    config: Path
    url: str
    identity: Identity


def deploy(client: LedgerClient, root: Path) -> tuple[Chainml, LocalSigner]:
    """Deploy the contracts with the development key; ``root/deployment.json`` records them."""
    dev = LocalSigner.from_key(DEV_KEY)
    deployment = deploy_system(client, dev)
    deployment.save(Path(root) / "deployment.json")
    return Chainml.connect(client, deployment), dev


def init_node(
    root: Path,
    name: str,
    password: str,
    *,
    rpc: str,
    work: int = keystore.SCRYPT_N,
    identity: Identity | None = None,
) -> NodeDir:
    """``root/name``: a keystore (of ``identity``, or a new one) and a node.toml on a free
    loopback port."""
    port = free_port()
    directory = Path(root) / name
    roles.init(
        directory,
        name,
        password,
        rpc=rpc,
        deployment="../deployment.json",
        port=port,
        work=work,
        identity=identity,
    )
    identity = keystore.load(directory / "keystore.json", password)
    return NodeDir(name, directory / "node.toml", f"http://127.0.0.1:{port}", identity)


def publish_and_grant(
    cm: Chainml, store: BlobStore, owner: Identity, grantee: str, weights: bytes, *, name: str
) -> int:
    """``owner`` seals ``weights`` under a fresh key into ``store``, publishes it as a new
    model's first version and grants it to ``grantee`` for a day (key wrapped to it);
    returns the version id."""
    key = generate_key()
    model_id = cm.models.create_model(owner.account, name)
    sealed = seal_artifact(store, key, weights, artifact_id=f"model-{model_id}", version=1)
    version = cm.models.publish_version(
        owner.account,
        model_id,
        sealed.manifest.ciphertext_cid,
        sealed.manifest_cid,
        sealed.plaintext_commitment,
    )
    view = LedgerChainView(cm)
    bundle = access.wrap_for_grantee(view, key, version, grantee)
    cm.models.grant(owner.account, version, grantee, view.now() + 86400, store.put(bundle))
    return version
