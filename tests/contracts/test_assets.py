"""Datasets, Models and Receipts: every external function and every revert path."""

from __future__ import annotations

import boa

from chainml.crypto import keccak256

from .conftest import ETHER, WINDOW


def addr(label: str) -> str:
    a = boa.env.generate_address(label)
    boa.env.set_balance(a, 10 * ETHER)
    return a


def test_datasets(system):
    ds = system.datasets
    owner, other = addr("owner"), addr("other")
    with boa.env.prank(owner):
        with boa.reverts("InvalidParameter"):
            ds.commit(b"\0" * 32, 10, b"\1" * 32)
        with boa.reverts("InvalidParameter"):
            ds.commit(b"\1" * 32, 0, b"\1" * 32)
        dataset_id = ds.commit(b"\1" * 32, 10, b"\2" * 32)
    got = ds.get(dataset_id)
    assert (got.owner, got.merkle_root, got.record_count, got.revoked) == (
        owner,
        b"\1" * 32,
        10,
        False,
    )
    with boa.reverts("UnknownDataset"):
        ds.get(0)
    with boa.env.prank(other):
        with boa.reverts("NotAuthorized"):
            ds.revoke(dataset_id)
        with boa.reverts("UnknownDataset"):
            ds.revoke(5)
    with boa.env.prank(owner):
        ds.revoke(dataset_id)
        with boa.reverts("DatasetRevoked"):
            ds.revoke(dataset_id)
    assert ds.get(dataset_id).revoked


def test_models_versions_grants(system):
    m = system.models
    owner, other, grantee = addr("o"), addr("x"), addr("g")
    with boa.env.prank(owner):
        model_id = m.create_model("digits")
        with boa.reverts("InvalidParameter"):
            m.publish_version(model_id, "", "man", keccak256(b"w"), 0, 0)
        with boa.reverts("InvalidParameter"):
            m.publish_version(model_id, "ct", "man", b"\0" * 32, 0, 0)
        with boa.reverts("UnknownModel"):
            m.publish_version(model_id, "ct", "man", keccak256(b"w"), 9, 0)
        # publish_version on an unknown model id: titanoboa crashes decoding the frame's
        # uninitialised String local after the revert; tests/ledger/test_system.py checks
        # that UnknownModel comes back from the real chains.
        v1 = m.publish_version(model_id, "ct1", "man1", keccak256(b"w1"), 0, 3)
        v2 = m.publish_version(model_id, "ct2", "man2", keccak256(b"w2"), v1, 3)
        other_model = m.create_model("other")
        with boa.reverts("InvalidParameter"):  # a parent from another model
            m.publish_version(other_model, "ct", "man", keccak256(b"w"), v1, 0)
    assert m.get_version(v2).parent_version == v1 and m.get_model(model_id).version_count == 2
    with boa.reverts("UnknownModel"):
        m.get_model(99)
    with boa.env.prank(other):
        with boa.reverts("NotAuthorized"):
            m.publish_version(model_id, "ct", "man", keccak256(b"w"), 0, 0)
        with boa.reverts("NotAuthorized"):
            m.grant(v1, other, boa.env.timestamp + 100, "key")
        with boa.reverts("NotAuthorized"):
            m.transfer_ownership(model_id, other)
    now = boa.env.timestamp
    with boa.env.prank(owner):
        with boa.reverts("InvalidParameter"):
            m.grant(v1, grantee, now, "key")  # already expired
        with boa.reverts("InvalidParameter"):
            m.grant(v1, "0x" + "00" * 20, now + 100, "key")
        with boa.reverts("UnknownModel"):
            m.grant(42, grantee, now + 100, "key")
        g = m.grant(v1, grantee, now + 100, "key")
    assert m.has_access(v1, grantee) and not m.has_access(v2, grantee) and m.has_access(v2, owner)
    assert m.grant_valid(g) and not m.grant_valid(0) and not m.grant_valid(99)
    assert not m.has_access(0, owner) and not m.has_access(99, owner)
    with boa.env.prank(grantee), boa.reverts("NotAuthorized"):
        m.revoke(g)
    with boa.env.prank(owner):
        with boa.reverts("UnknownGrant"):
            m.revoke(99)
        m.revoke(g)
        with boa.reverts("GrantRevoked"):
            m.revoke(g)
    assert not m.has_access(v1, grantee) and m.get_grant(g).revoked
    with boa.reverts("UnknownGrant"):
        m.get_grant(99)
    with boa.env.prank(owner):
        g2 = m.grant(v1, grantee, now + 100, "key2")
        with boa.reverts("InvalidParameter"):
            m.transfer_ownership(model_id, "0x" + "00" * 20)
        m.transfer_ownership(model_id, other)
        with boa.reverts("NotAuthorized"):
            m.revoke(g2)  # no longer the owner
    boa.env.time_travel(seconds=100)
    assert not m.has_access(v1, grantee)  # expired
    assert m.has_access(v1, other)


def test_receipts_flow_and_reverts(system):
    rc = system.receipts
    client, provider, stranger = addr("c"), addr("p"), addr("s")
    with boa.env.prank(client):
        with boa.reverts("ZeroAmount"):
            rc.deposit(value=0)
        rc.deposit(value=3 * ETHER)
        with boa.reverts("ZeroAmount"):
            rc.request_withdrawal(0)
        with boa.reverts("InsufficientBalance"):
            rc.request_withdrawal(4 * ETHER)
        with boa.reverts("NothingToWithdraw"):
            rc.withdraw()
        with boa.reverts("InvalidParameter"):
            rc.post_batch(client, b"\1" * 32, 1, 1)  # billing oneself
    with boa.env.prank(provider):
        with boa.reverts("InvalidParameter"):
            rc.post_batch(client, b"\0" * 32, 1, 1)
        with boa.reverts("InvalidParameter"):
            rc.post_batch(client, b"\1" * 32, 0, 1)
        with boa.reverts("InvalidParameter"):
            rc.post_batch("0x" + "00" * 20, b"\1" * 32, 1, 1)
        with boa.reverts("InsufficientBalance"):
            rc.post_batch(client, b"\1" * 32, 1, 4 * ETHER)
        b1 = rc.post_batch(client, b"\1" * 32, 10, ETHER)
        b2 = rc.post_batch(client, b"\2" * 32, 10, ETHER)
        with boa.reverts("NothingToWithdraw"):
            rc.withdraw_earnings()
    assert rc.available(client) == ETHER and rc.reserved(client) == 2 * ETHER
    with boa.env.prank(client):
        rc.request_withdrawal(ETHER)  # what is left; the batches stay reserved
        with boa.reverts("UnbondingNotReady"):
            rc.withdraw()
        with boa.reverts("UnknownBatch"):
            rc.dispute(9, b"\0" * 32)
        rc.dispute(b2, keccak256(b"receipt 4 missing"))
        with boa.reverts("AlreadyResolved"):
            rc.dispute(b2, b"\0" * 32)
    with boa.env.prank(stranger):
        with boa.reverts("NotAuthorized"):
            rc.dispute(b1, b"\0" * 32)
        with boa.reverts("DisputeWindowOpen"):
            rc.settle(b1)
        with boa.reverts("UnknownBatch"):
            rc.settle(0)
    boa.env.time_travel(seconds=WINDOW)
    with boa.env.prank(client), boa.reverts("DisputeWindowClosed"):
        rc.dispute(b1, b"\0" * 32)
    with boa.env.prank(stranger):
        rc.settle(b1)
        with boa.reverts("AlreadyResolved"):
            rc.settle(b1)
        with boa.reverts("AlreadyResolved"):
            rc.settle(b2)
    with boa.env.prank(client):
        before = boa.env.get_balance(client)
        rc.withdraw()
        assert boa.env.get_balance(client) == before + ETHER
    with boa.env.prank(provider):
        rc.withdraw_earnings()
    assert boa.env.get_balance(provider) == 11 * ETHER
    assert rc.get_batch(b2).status == 3 and rc.get_batch(b1).status == 2
    with boa.reverts("UnknownBatch"):
        rc.get_batch(77)
    assert rc.available(client) == ETHER  # the disputed amount came back
    assert boa.env.get_balance(rc.address) == (
        rc.total_available() + rc.total_reserved() + rc.total_pending() + rc.total_earnings()
    )
