"""Key release against a real chain: grants on the Models contract, keys in the Registry.

One embedded chain process for the module; owner, grantee, an outsider and five
guardians are registered parties with their own accounts.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from chainml.crypto import Identity
from chainml.crypto.errors import DecryptionFailed, WrongKey
from chainml.crypto.stream import generate_key
from chainml.ledger.bindings import Chainml, Role
from chainml.ledger.client import LedgerClient, LocalSigner
from chainml.ledger.deploy import deploy_system
from chainml.ledger.devchain import DEV_KEY, DevChainProcess
from chainml.node.access import LedgerChainView
from chainml.storage import access
from chainml.storage.access import (
    ForgedRequest,
    GrantExpired,
    GrantRevoked,
    Guardian,
    KeyRequest,
    NotAGuardian,
    NotEnoughShares,
    NotGrantee,
    ReplayedRequest,
    StaleRequest,
    UnknownGrant,
    UnknownParty,
)
from chainml.storage.local import LocalBlobStore
from chainml.storage.sealed import SealedArtifact, open_artifact, seal_artifact

ETHER = 10**18
K, N = 3, 5


@dataclass
class World:
    client: LedgerClient
    cm: Chainml
    view: LedgerChainView
    store: LocalBlobStore
    owner: Identity
    grantee: Identity
    outsider: Identity
    guardians: list[Identity]
    key: bytes
    data: bytes
    sealed: SealedArtifact
    model_id: int
    version_id: int
    grant_id: int


def _party(w_client: LedgerClient, cm: Chainml, dev: LocalSigner, roles: Role) -> Identity:
    ident = Identity.generate()
    w_client.transact(dev, to=ident.address, value=5 * ETHER)
    pop = ident.proof_of_possession(w_client.chain_id, cm.registry.address)
    stake = ETHER if roles & Role.VALIDATOR else 0
    cm.registry.register(
        ident.account, ident.x25519.public_bytes, pop, roles, "http://127.0.0.1:1", stake
    )
    return ident


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    tmp = tmp_path_factory.mktemp("access")
    with DevChainProcess(tmp / "chain") as chain:
        client = LedgerClient(chain.url, timeout=20)
        dev = LocalSigner.from_key(DEV_KEY)
        cm = Chainml.connect(client, deploy_system(client, dev))
        view = LedgerChainView(cm)
        store = LocalBlobStore(tmp / "store")
        owner = _party(client, cm, dev, Role.REQUESTER)
        grantee = _party(client, cm, dev, Role.INFERENCE_PROVIDER)
        outsider = _party(client, cm, dev, Role.INFERENCE_PROVIDER)
        guardians = [_party(client, cm, dev, Role.VALIDATOR) for _ in range(N)]
        key, data = generate_key(), os.urandom(700_000)
        model_id = cm.models.create_model(owner.account, "digits-mlp")
        sealed = seal_artifact(store, key, data, artifact_id=f"model-{model_id}", version=1)
        version_id = cm.models.publish_version(
            owner.account,
            model_id,
            sealed.manifest.ciphertext_cid,
            sealed.manifest_cid,
            sealed.plaintext_commitment,
        )
        bundle = access.split_among_guardians(
            view, key, version_id, [g.address for g in guardians], K
        )
        grant_id = cm.models.grant(
            owner.account, version_id, grantee.address, view.now() + 7 * 86400, store.put(bundle)
        )
        yield World(
            client,
            cm,
            view,
            store,
            owner,
            grantee,
            outsider,
            guardians,
            key,
            data,
            sealed,
            model_id,
            version_id,
            grant_id,
        )
        client.close()


def _guardian(w: World, i: int) -> Guardian:
    return Guardian(w.guardians[i], w.view, w.store)


def _ask(
    w: World, guardians: list[Guardian], who: Identity | None = None, grant_id: int | None = None
):
    who = who or w.grantee
    requests = [
        access.make_request(
            who.account, w.view, grant_id or w.grant_id, g.identity.address, w.view.now()
        )
        for g in guardians
    ]
    return requests, [g.release(r) for g, r in zip(guardians, requests, strict=True)]


def test_threshold_release_opens_the_model(world: World):
    guardians = [_guardian(world, i) for i in (0, 2, 4)]
    requests, releases = _ask(world, guardians)
    key = access.recover_key(world.grantee, world.view, requests, releases, world.sealed.manifest)
    assert key == world.key
    assert open_artifact(world.store, key, world.sealed.manifest) == world.data


def test_a_lying_guardian_is_outvoted(world: World):
    guardians = [_guardian(world, i) for i in range(N)]
    requests, releases = _ask(world, guardians)
    forged = dataclasses.replace(
        releases[1], sealed_share=os.urandom(len(releases[1].sealed_share))
    )
    releases[1] = forged
    assert (
        access.recover_key(world.grantee, world.view, requests, releases, world.sealed.manifest)
        == world.key
    )
    # a share from a guardian that is not who it claims is dropped too
    releases[2] = dataclasses.replace(releases[2], signature=releases[0].signature)
    assert (
        access.recover_key(world.grantee, world.view, requests, releases, world.sealed.manifest)
        == world.key
    )


def test_k_minus_one_guardians_are_not_enough(world: World):
    requests, releases = _ask(world, [_guardian(world, i) for i in range(K - 1)])
    with pytest.raises(NotEnoughShares):
        access.recover_key(world.grantee, world.view, requests, releases, world.sealed.manifest)


def test_only_the_grantee_can_ask_and_only_once(world: World):
    g = _guardian(world, 0)
    with pytest.raises(NotGrantee):
        g.release(
            access.make_request(
                world.outsider.account,
                world.view,
                world.grant_id,
                g.identity.address,
                world.view.now(),
            )
        )
    honest = access.make_request(
        world.grantee.account, world.view, world.grant_id, g.identity.address, world.view.now()
    )
    forged = dataclasses.replace(
        access.make_request(
            world.outsider.account, world.view, world.grant_id, g.identity.address, world.view.now()
        ),
        requester=world.grantee.address,
    )
    with pytest.raises(ForgedRequest):
        g.release(forged)
    g.release(honest)
    with pytest.raises(ReplayedRequest):
        g.release(honest)
    with pytest.raises(ReplayedRequest):  # a replay is refused across the wire format too
        g.release(KeyRequest.decode(honest.encode()))
    stale = access.make_request(
        world.grantee.account,
        world.view,
        world.grant_id,
        g.identity.address,
        world.view.now() - 3600,
    )
    with pytest.raises(StaleRequest):
        g.release(stale)
    wrong = access.make_request(
        world.grantee.account,
        world.view,
        world.grant_id,
        world.guardians[1].address,
        world.view.now(),
    )
    with pytest.raises(NotAGuardian):
        g.release(wrong)
    with pytest.raises(UnknownGrant):
        g.release(
            access.make_request(
                world.grantee.account, world.view, 999, g.identity.address, world.view.now()
            )
        )


def test_a_request_is_useless_to_an_eavesdropper(world: World):
    g = _guardian(world, 3)
    request = access.make_request(
        world.grantee.account, world.view, world.grant_id, g.identity.address, world.view.now()
    )
    release = g.release(request)
    with pytest.raises(NotEnoughShares):  # sealed to the grantee's registered key
        access.recover_key(world.outsider, world.view, [request], [release], world.sealed.manifest)


def test_owner_release(world: World):
    bundle = access.wrap_for_grantee(world.view, world.key, world.version_id, world.grantee.address)
    ref = world.store.put(bundle)
    world.cm.models.grant(
        world.owner.account, world.version_id, world.grantee.address, world.view.now() + 3600, ref
    )
    got = access.unwrap_as_grantee(
        world.view,
        world.store.get(ref),
        world.grantee.x25519,
        world.version_id,
        world.grantee.address,
    )
    assert got == world.key
    with pytest.raises(DecryptionFailed):
        access.unwrap_as_grantee(
            world.view, bundle, world.outsider.x25519, world.version_id, world.grantee.address
        )
    with pytest.raises(access.MalformedBundle):
        access.unwrap_as_grantee(
            world.view, bundle, world.grantee.x25519, world.version_id + 1, world.grantee.address
        )
    with pytest.raises(UnknownParty):
        access.wrap_for_grantee(
            world.view, world.key, world.version_id, Identity.generate().address
        )
    assert world.key.hex() not in bundle.decode()


def test_revocation_and_rotation(world: World):
    grant_id = world.cm.models.grant(
        world.owner.account,
        world.version_id,
        world.outsider.address,
        world.view.now() + 3600,
        world.cm.models.grant_info(world.grant_id).wrapped_key_ref,
    )
    g = _guardian(world, 1)
    g.release(
        access.make_request(
            world.outsider.account, world.view, grant_id, g.identity.address, world.view.now()
        )
    )
    world.cm.models.revoke(world.owner.account, grant_id)
    with pytest.raises(GrantRevoked) as info:
        g.release(
            access.make_request(
                world.outsider.account, world.view, grant_id, g.identity.address, world.view.now()
            )
        )
    assert world.key.hex() not in str(info.value)
    new_key, resealed = access.rotate(world.store, world.key, world.sealed.manifest, new_version=2)
    assert resealed.manifest.ciphertext_cid != world.sealed.manifest.ciphertext_cid
    with pytest.raises(WrongKey):  # what the revoked party kept does not open the new version
        open_artifact(world.store, world.key, resealed.manifest)
    assert open_artifact(world.store, new_key, resealed.manifest) == world.data
    new_version = world.cm.models.publish_version(
        world.owner.account,
        world.model_id,
        resealed.manifest.ciphertext_cid,
        resealed.manifest_cid,
        resealed.plaintext_commitment,
        world.version_id,
    )
    assert world.cm.models.version(new_version).parent_version == world.version_id


def test_an_expired_grant(world: World):
    """Last in the module: it moves the chain's clock forward."""
    grant_id = world.cm.models.grant(
        world.owner.account,
        world.version_id,
        world.grantee.address,
        world.view.now() + 60,
        world.cm.models.grant_info(world.grant_id).wrapped_key_ref,
    )
    world.client.increase_time(120)
    world.client.transact(LocalSigner.from_key(DEV_KEY), to=world.owner.address, value=1)  # mine
    g = _guardian(world, 2)
    with pytest.raises(GrantExpired):
        g.release(
            access.make_request(
                world.grantee.account, world.view, grant_id, g.identity.address, world.view.now()
            )
        )
