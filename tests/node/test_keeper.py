"""The keeper pins what a node's jobs and grants name, fetched over bitswap from the peer
that published it, so that it outlives that peer: a real round recorded on a real chain,
two embedded IPFS peers on loopback (the aggregator's, and a trainer's with its keeper)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chainml.devtools.chainround import ChainWorld
from chainml.ledger.bindings import Role
from chainml.ledger.devchain import DevChainProcess
from chainml.node.keeper import Keeper, record_blobs
from chainml.node.roles.keeper import kind_of
from chainml.storage import ipfs_engine
from chainml.storage.ipfs_engine import IpfsEngineStore
from chainml.storage.local import LocalBlobStore
from chainml.training.job import JobConfig

CONFIG = JobConfig(n_features=8, n_classes=3, hidden=(4,), epochs=1, verifiable=False)
CLIP = 5.0


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[IpfsEngineStore, ...]]:
    try:
        ipfs_engine._lib()
    except ipfs_engine.EngineUnavailable as exc:
        pytest.skip(f"no kubo engine here: {exc}")
    tmp = tmp_path_factory.mktemp("peers")
    with IpfsEngineStore(tmp / "aggregator", timeout=20) as publisher:
        with IpfsEngineStore(tmp / "trainer", peers=[publisher.multiaddr], timeout=5) as own:
            yield publisher, own


def test_a_trainer_keeps_its_rounds_and_its_grants_and_an_outsider_nothing(
    peers: tuple[IpfsEngineStore, IpfsEngineStore], tmp_path: Path
) -> None:
    publisher, own = peers
    with DevChainProcess(tmp_path / "chain") as chain:
        world = ChainWorld(chain.url, publisher, trainers=3)
        job_id = world.job(CONFIG, CLIP)
        outsider = world.party(Role.TRAINER)  # registered, in no job
        world.round(job_id, CONFIG, CLIP, dropped=())
        trainer = world.trainer_ids[0]
        seen: list[str] = []
        keeper = Keeper(trainer.address, world.cm, own, on_kept=lambda k: seen.append(k.why))
        kept = keeper.tick()

        record_cid = world.cm.jobs.round(job_id, 1).aggregate_cid
        record = json.loads(publisher.get(record_cid))
        named = {cid for _, cid in record_blobs(record)}
        assert len(named) == 3 + 3  # transcript, manifest, ciphertext, one input per trainer
        assert {k.cid for k in kept} == {record_cid} | named
        assert all(own.has(cid) for cid in {record_cid} | named)  # pinned here, not cached
        assert seen == [k.why for k in kept] and f"job {job_id} round 1" in seen
        kinds = sorted(kind_of(k) for k in kept)
        assert kinds == ["input"] * 3 + ["model"] * 2 + ["record", "transcript"]
        assert keeper.tick() == [] and not keeper.pending  # nothing new: nothing done

        # a grant to the trainer: the version's blobs and the key bundle; one blob nobody
        # serves stays wanted and is tried again, the others are kept meanwhile
        cm, owner = world.cm, world.trainer_ids[1]
        model_id = cm.models.create_model(owner.account, "kept")
        manifest, ciphertext = publisher.put(b"manifest"), publisher.put(b"sealed weights")
        version = cm.models.publish_version(
            owner.account, model_id, ciphertext, manifest, b"\1" * 32
        )
        bundle = publisher.put(b"a key bundle")
        cm.models.grant(owner.account, version, trainer.address, int(time.time()) + 3600, bundle)
        missing = LocalBlobStore(tmp_path / "nowhere").put(b"a ciphertext nobody serves")
        lost = cm.models.publish_version(owner.account, model_id, missing, manifest, b"\2" * 32)
        cm.models.grant(owner.account, lost, trainer.address, int(time.time()) + 3600, bundle)
        kept = keeper.tick()
        assert {k.cid for k in kept} == {manifest, ciphertext, bundle}
        assert {kind_of(k) for k in kept} == {"model", "key"}
        assert list(keeper.pending) == [missing] and not own.has(missing)
        publisher.put(b"a ciphertext nobody serves")  # now a peer serves it
        assert [k.cid for k in keeper.tick()] == [missing] and own.has(missing)

        # a party in no job and granted nothing keeps nothing
        assert Keeper(outsider.address, world.cm, own).tick() == []


def test_the_keeper_needs_a_store_that_pins(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="store that pins"):
        Keeper("0x" + "11" * 20, None, LocalBlobStore(tmp_path))  # type: ignore[arg-type]


def test_a_record_names_its_norm_claims_and_the_refused_ones() -> None:
    record = {
        "transcript": "bt",
        "inputs": {"2": "bi2", "1": "bi1"},
        "norm": {
            "claims": {"1": "bc1"},
            "refused": {
                "2": {"reason": "proof", "claim": "bc2"},
                "3": {"reason": "none", "claim": ""},
            },
        },
    }
    assert list(record_blobs(record)) == [
        ("transcript", "bt"),
        ("inputs/1", "bi1"),
        ("inputs/2", "bi2"),
        ("claims/1", "bc1"),
        ("claims/2", "bc2"),
    ]
