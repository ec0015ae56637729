"""The node's chain facts cached per block (``CachingLedgerClient``), against the embedded
chain over loopback: answers are kept while the head stays, dropped when it moves, read
back at once after the node's own transaction; Registry answers survive a new block
without a Registry event and not one with; a participant once joined is read once."""

from __future__ import annotations

import pytest

from chainml.crypto import Identity
from chainml.ledger.bindings import Chainml, JobParams, Role
from chainml.ledger.client import LedgerClient, LocalSigner
from chainml.ledger.deploy import Deployment
from chainml.ledger.devchain import DevChainProcess
from chainml.node import localnet
from chainml.node.chaincache import CachingLedgerClient

ETHER = 10**18


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("chaincache")
    with DevChainProcess(tmp / "chain") as running:
        plain = LedgerClient(running.url)
        cm, dev = localnet.deploy(plain, tmp)
        yield running.url, cm, dev, Deployment.load(tmp / "deployment.json")


def _cached(url: str, deployment: Deployment) -> tuple[CachingLedgerClient, Chainml]:
    client = CachingLedgerClient(url, head_ttl=3600)  # the head moves only when told to
    cm = Chainml.connect(client, deployment)
    selector = cm.jobs.contract.abi.encode_call("participant_at", [0, 0])[:4]
    client.cache_policy(registry=deployment.registry, forever=[(deployment.jobs, selector)])
    return client, cm


def _funded(cm: Chainml, dev: LocalSigner, roles: Role) -> Identity:
    ident = Identity.generate()
    cm.jobs.client.transact(dev, to=ident.address, value=5 * ETHER)
    cm.registry.register_identity(ident, roles, "http://127.0.0.1:1/old", ETHER)
    return ident


def test_reads_are_kept_while_the_head_stays_and_own_writes_read_back(chain):
    url, other, dev, deployment = chain
    client, cm = _cached(url, deployment)
    before = cm.jobs.job_count()
    reads = client.reads
    assert cm.jobs.job_count() == before and client.reads == reads  # from memory
    requester = _funded(other, dev, Role.REQUESTER)
    other.jobs.create_job(requester.account, JobParams(requester.address, 1, 1, 2, 1, 60), ETHER)
    assert cm.jobs.job_count() == before  # another's write: unseen until the head is read
    client.refresh()
    assert cm.jobs.job_count() == before + 1
    # this node's own transaction: its receipt names a newer block, so no stale read
    mine = _funded(other, dev, Role.REQUESTER)
    cm.jobs.create_job(mine.account, JobParams(mine.address, 1, 1, 2, 1, 60), ETHER)
    assert cm.jobs.job_count() == before + 2


def test_registry_answers_last_until_a_registry_event(chain):
    url, other, dev, deployment = chain
    client, cm = _cached(url, deployment)
    party = _funded(other, dev, Role.TRAINER)
    assert cm.registry.party(party.address).endpoint == "http://127.0.0.1:1/old"
    requester = _funded(other, dev, Role.REQUESTER)  # a Registry event: the cache starts over
    client.refresh()
    assert cm.registry.party(party.address).endpoint == "http://127.0.0.1:1/old"
    # a new block with no Registry event in it: the Registry's answers stay
    other.jobs.create_job(requester.account, JobParams(requester.address, 1, 1, 2, 1, 60), ETHER)
    client.refresh()
    reads = client.reads
    assert cm.registry.party(party.address).endpoint == "http://127.0.0.1:1/old"
    assert client.reads == reads + 1  # the head only
    # the endpoint changes on chain: the next block's Registry event drops the cached one
    other.registry.set_endpoint(party.account, "http://127.0.0.1:2/new")
    assert cm.registry.party(party.address).endpoint == "http://127.0.0.1:1/old"
    client.refresh()
    assert cm.registry.party(party.address).endpoint == "http://127.0.0.1:2/new"


def test_a_participant_is_read_once_and_an_empty_slot_every_time(chain):
    url, other, dev, deployment = chain
    client, cm = _cached(url, deployment)
    requester = _funded(other, dev, Role.REQUESTER)
    job_id = other.jobs.create_job(
        requester.account, JobParams(requester.address, 1, 1, 2, 1, 60), ETHER
    )
    trainer = _funded(other, dev, Role.TRAINER)
    client.refresh()
    assert int(cm.jobs.contract.call("participant_at", job_id, 0), 16) == 0
    other.jobs.join(trainer.account, job_id)
    client.refresh()
    # an empty slot was not kept: the join shows
    assert cm.jobs.contract.call("participant_at", job_id, 0).lower() == trainer.address.lower()
    other.jobs.join(_funded(other, dev, Role.TRAINER).account, job_id)
    client.refresh()
    client.head()
    reads = client.reads
    assert cm.jobs.contract.call("participant_at", job_id, 0).lower() == trainer.address.lower()
    assert client.reads == reads  # kept across new blocks


def test_lookups_of_invented_addresses_stay_bounded(chain, monkeypatch):
    from chainml.node import chaincache

    url, other, dev, deployment = chain
    monkeypatch.setattr(chaincache, "MAX_ENTRIES", 3)
    client, cm = _cached(url, deployment)
    party = _funded(other, dev, Role.TRAINER)
    client.refresh()
    for _ in range(10):  # anyone can sign with a new key: each is a new Registry lookup
        assert not cm.registry.is_registered(Identity.generate().address)
    assert len(client._per_registry) <= 3
    assert cm.registry.is_registered(party.address)  # still right after being dropped


def test_the_environment_s_proxy_settings_are_read_once_not_per_request(chain, monkeypatch):
    from requests import sessions

    from chainml.node.chaincache import environment_once

    url, _, _, _ = chain
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    client = CachingLedgerClient(url)

    def read_again(*args: object, **kwargs: object) -> dict[str, str]:
        raise AssertionError("the environment read again for a request")

    monkeypatch.setattr(sessions, "get_environ_proxies", read_again)
    assert client.rpc("eth_chainId")  # answered without reading the environment
    assert client.block_number() >= 0
    monkeypatch.undo()

    # what it read: a proxy for other hosts, none for one NO_PROXY names, the CA bundle
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.invalid:3128")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/ca.pem")
    remote, loopback = sessions.Session(), sessions.Session()
    environment_once(remote, "http://rpc.example:8545")
    environment_once(loopback, "http://127.0.0.1:8545")
    assert remote.proxies.get("http") == "http://proxy.invalid:3128"
    assert "http" not in loopback.proxies
    assert remote.verify == "/etc/ssl/ca.pem" and not remote.trust_env
