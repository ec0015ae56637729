"""A party's sealed models, as its node sees them: publish, grant, open, revoke.

The data key of a version the party owns is kept only wrapped to the party's own X25519
key (an owner-release bundle in the store, its CID in the node's state), so the node can
grant or re-seal later without ever writing the key in the clear.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from chainml.crypto.stream import generate_key
from chainml.node.access import LedgerChainView
from chainml.node.core import Node
from chainml.node.keyrelease import fetch_key
from chainml.storage import access
from chainml.storage.errors import StorageError
from chainml.storage.sealed import (
    Manifest,
    load_manifest,
    open_artifact,
    open_to_file,
    seal_artifact,
)
from chainml.storage.store import BlobStore

SAFETENSORS = "application/vnd.safetensors"


class NoKey(StorageError):
    """This node holds no key for that version (it neither owns nor was granted it)."""


@dataclass(frozen=True)
class Published:
    model_id: int
    version_id: int
    ciphertext_cid: str
    manifest_cid: str
    zk_bundle: str = ""  # the CID of its proof bundle, if published with one


def _store(node: Node) -> BlobStore:
    return node.store  # the configured store (storage.factory), opened once per node


def _remember_key(node: Node, version_id: int, key: bytes) -> None:
    view = LedgerChainView(node.cm)
    bundle = access.wrap_for_grantee(view, key, version_id, node.identity.address)
    node.state.put(f"model-key:{version_id}", _store(node).put(bundle))


def _own_key(node: Node, version_id: int) -> bytes:
    ref = node.state.get(f"model-key:{version_id}")
    if ref is None:
        raise NoKey(f"this node keeps no key for version {version_id}")
    return access.unwrap_as_grantee(
        LedgerChainView(node.cm),
        _store(node).get(ref),
        node.identity.x25519,
        version_id,
        node.identity.address,
    )


def seal_and_publish(
    node: Node,
    path: Path,
    *,
    name: str,
    model_id: int = 0,
    parent: int = 0,
    job_id: int = 0,
    proofs: bool = False,
) -> Published:
    """Seal ``path`` under a fresh key, store it and publish it as a new version; with
    ``proofs``, first build and store its proof bundle (``chainml.inference.zkml``: the
    weights must be an MLP or a regression) and name it in the manifest."""
    account = node.identity.account
    bundle_cid = _proof_bundle(node, path) if proofs else ""
    if not model_id:
        model_id = node.cm.models.create_model(account, name)
    version = node.cm.models.model(model_id).version_count + 1
    key = generate_key()
    media = SAFETENSORS if path.suffix == ".safetensors" else "application/octet-stream"
    sealed = seal_artifact(
        _store(node),
        key,
        path,
        artifact_id=f"model-{model_id}",
        version=version,
        media_type=media,
        zk_bundle=bundle_cid,
    )
    version_id = node.cm.models.publish_version(
        account,
        model_id,
        sealed.manifest.ciphertext_cid,
        sealed.manifest_cid,
        sealed.plaintext_commitment,
        parent,
        job_id,
    )
    _remember_key(node, version_id, key)
    return Published(
        model_id, version_id, sealed.manifest.ciphertext_cid, sealed.manifest_cid, bundle_cid
    )


def _proof_bundle(node: Node, path: Path) -> str:
    """Build the proof bundle of the weights at ``path`` (the SRS made here, kept beside the
    store) and store it; its CID."""
    from chainml.inference import zkml
    from chainml.training.models import classifier_from_safetensors

    _, params, activation = classifier_from_safetensors(path.read_bytes())
    cache = zkml.SrsCache(Path(node.config.store).parent / "zk-srs")
    bundle, prover = zkml.build_bundle(params, activation, srs=cache)
    prover.close()  # the owner keeps no proving key: each provider rebuilds its own
    return _store(node).put(bundle.encode())


def grant(
    node: Node,
    version_id: int,
    grantee: str,
    *,
    expiry: int,
    guardians: list[str] | None = None,
    threshold: int = 0,
) -> int:
    """Grant ``grantee`` the version: its key wrapped to the grantee (owner release) or,
    with ``guardians``, split ``threshold``-of-n among them (threshold release)."""
    view = LedgerChainView(node.cm)
    key = _own_key(node, version_id)
    if guardians:
        bundle = access.split_among_guardians(view, key, version_id, guardians, threshold)
    else:
        bundle = access.wrap_for_grantee(view, key, version_id, grantee)
    ref = _store(node).put(bundle)
    return node.cm.models.grant(node.identity.account, version_id, grantee, expiry, ref)


def manifest_of(node: Node, version_id: int) -> Manifest:
    return load_manifest(_store(node), node.cm.models.version(version_id).manifest_cid)


def _version_key(node: Node, version_id: int, manifest: Manifest, grant_id: int) -> bytes:
    """The data key of a version: the owner's own, or through a grant (owner-wrapped, or
    rebuilt from the guardians' shares)."""
    if not grant_id:
        return _own_key(node, version_id)
    info = node.cm.models.grant_info(grant_id)
    if info.version_id != version_id:
        raise access.MalformedBundle(f"grant {grant_id} is for version {info.version_id}")
    raw = _store(node).get(info.wrapped_key_ref)
    kind = json.loads(raw).get("kind") if raw.startswith(b"{") else None
    if kind == "owner":
        return access.unwrap_as_grantee(
            LedgerChainView(node.cm),
            raw,
            node.identity.x25519,
            version_id,
            node.identity.address,
        )
    return fetch_key(node.identity, node.cm, _store(node), grant_id, manifest)


def open_version(node: Node, version_id: int, dest: Path, *, grant_id: int = 0) -> Manifest:
    """Decrypt a version to ``dest`` (atomically) with the owner's key or through a grant."""
    manifest = manifest_of(node, version_id)
    open_to_file(_store(node), _version_key(node, version_id, manifest, grant_id), manifest, dest)
    return manifest


def open_in_memory(node: Node, version_id: int, *, grant_id: int = 0) -> bytes:
    """A version's plaintext, never written to disk (a server loading the model it serves)."""
    manifest = manifest_of(node, version_id)
    key = _version_key(node, version_id, manifest, grant_id)
    return open_artifact(_store(node), key, manifest)


def revoke(node: Node, grant_id: int, *, rotate: bool) -> int:
    """Revoke a grant; with ``rotate``, re-seal the version under a new key as a new
    version (returned) so that what the revoked party may have kept opens nothing new."""
    node.cm.models.revoke(node.identity.account, grant_id)
    if not rotate:
        return 0
    old = node.cm.models.grant_info(grant_id).version_id
    info = node.cm.models.version(old)
    model_id = info.model_id
    version = node.cm.models.model(model_id).version_count + 1
    new_key, sealed = access.rotate(
        _store(node), _own_key(node, old), manifest_of(node, old), version
    )
    version_id = node.cm.models.publish_version(
        node.identity.account,
        model_id,
        sealed.manifest.ciphertext_cid,
        sealed.manifest_cid,
        sealed.plaintext_commitment,
        old,
        info.job_id,
    )
    _remember_key(node, version_id, new_key)
    return version_id
