"""The whole contract system through the typed bindings, on the embedded chain and on Anvil.

The same tests run against both backends (``chain_url`` is parametrised), which shows the
Python side leans on no quirk of either implementation.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from chainml.crypto import (
    DatasetCommitment,
    Identity,
    MerkleTree,
    commitment_leaf,
    encode_float_records,
    keccak256,
    schema_hash,
    sign_round_commitment,
)
from chainml.ledger import errors
from chainml.ledger.bindings import (
    Chainml,
    ChallengeStatus,
    JobParams,
    JobState,
    Role,
    RoundStatus,
)
from chainml.ledger.client import LedgerClient, LocalSigner
from chainml.ledger.deploy import Deployment, SystemParameters, deploy_system

ETHER = 10**18
WINDOW = 600


@dataclass
class World:
    client: LedgerClient
    cm: Chainml
    deployment: Deployment
    dev: LocalSigner
    parties: list[Identity]


def _party(client: LedgerClient, dev: LocalSigner, ether: int = 20) -> Identity:
    ident = Identity.generate()
    client.transact(dev, to=ident.address, value=ether * ETHER)
    return ident


def _register(w: World, ident: Identity, roles: Role, stake: int) -> None:
    pop = ident.proof_of_possession(w.client.chain_id, w.cm.registry.address)
    w.cm.registry.register(
        ident.account, ident.x25519.public_bytes, pop, roles, "http://127.0.0.1:1", stake
    )


@pytest.fixture
def world(client: LedgerClient, dev_signer: LocalSigner) -> World:
    params = SystemParameters(
        unbonding_delay=3600,
        min_validator_stake=ETHER,
        dispute_window=WINDOW,
        withdrawal_delay=WINDOW,
    )
    deployment = deploy_system(client, dev_signer, params)
    cm = Chainml.connect(client, deployment)
    w = World(client, cm, deployment, dev_signer, [])
    roles = Role.TRAINER | Role.DATA_OWNER | Role.VALIDATOR
    for _ in range(4):
        ident = _party(client, dev_signer)
        _register(w, ident, roles, 5 * ETHER)
        w.parties.append(ident)
    return w


def test_deployment_round_trips_and_is_checked(world: World, tmp_path):
    path = tmp_path / "deployment.json"
    world.deployment.save(path)
    assert Deployment.load(path) == world.deployment
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(errors.DeploymentFileError):
        Deployment.load(tmp_path / "bad.json")


def test_registration_needs_a_valid_proof_of_possession(world: World):
    w = world
    ident = _party(w.client, w.dev)
    other = Identity.generate()
    wrong = other.proof_of_possession(w.client.chain_id, w.cm.registry.address)
    with pytest.raises(errors.InvalidProofOfPossession):
        w.cm.registry.register(ident.account, ident.x25519.public_bytes, wrong, Role.TRAINER, "x")
    other_chain = ident.proof_of_possession(w.client.chain_id + 1, w.cm.registry.address)
    with pytest.raises(errors.InvalidProofOfPossession):
        w.cm.registry.register(
            ident.account, ident.x25519.public_bytes, other_chain, Role.TRAINER, "x"
        )
    _register(w, ident, Role.TRAINER, ETHER)
    info = w.cm.registry.party(ident.address)
    assert info.x25519_key == ident.x25519.public_bytes and info.roles == Role.TRAINER
    with pytest.raises(errors.AlreadyRegistered):
        _register(w, ident, Role.TRAINER, 0)


def test_stake_unbond_withdraw(world: World):
    w, p = world, world.parties[0]
    reg = w.cm.registry
    reg.request_unbond(p.account, 2 * ETHER)
    assert reg.stake_of(p.address) == 3 * ETHER and reg.unbonding_of(p.address) == 2 * ETHER
    with pytest.raises(errors.UnbondingNotReady):
        reg.withdraw(p.account)
    w.client.increase_time(3601)
    before = w.client.balance(p.address)
    reg.withdraw(p.account)
    assert w.client.balance(p.address) > before + ETHER  # less gas
    with pytest.raises(errors.NothingToWithdraw):
        reg.withdraw(p.account)
    with pytest.raises(errors.InsufficientStake):
        reg.request_unbond(p.account, 100 * ETHER)


def test_dataset_commitment_of_real_records(world: World):
    from sklearn.datasets import load_digits

    digits = load_digits()
    records = encode_float_records(digits.data, digits.target)
    commitment = DatasetCommitment.build(records)
    owner = world.parties[0]
    ds = world.cm.datasets
    dataset_id = ds.commit(owner.account, commitment.root, len(records), schema_hash("digits 8x8"))
    info = ds.get(dataset_id)
    assert info.merkle_root == commitment.root and info.record_count == 1797
    assert info.owner == owner.address and not info.revoked
    with pytest.raises(errors.NotAuthorized):
        ds.revoke(world.parties[1].account, dataset_id)
    ds.revoke(owner.account, dataset_id)
    assert ds.get(dataset_id).revoked
    with pytest.raises(errors.DatasetRevoked):
        ds.revoke(owner.account, dataset_id)
    with pytest.raises(errors.UnknownDataset):
        ds.get(dataset_id + 1)


def _run_round(w: World, job_id: int, round_no: int, members: list[Identity], aggregator: Identity):
    commitments = {m.address: keccak256(f"update {round_no} {m.address}".encode()) for m in members}
    leaves = [commitment_leaf(m.address, job_id, round_no, commitments[m.address]) for m in members]
    tree = MerkleTree(leaves)
    bitmap = 0
    for m in members:
        bitmap |= 1 << (w.cm.jobs.functions.participant_of(job_id, m.address) - 1)
    w.cm.jobs.submit_round(
        aggregator.account, job_id, round_no, f"bafy-round-{round_no}", tree.root, bitmap
    )
    return commitments, tree


def test_job_lifecycle_rewards_and_inclusion(world: World):
    w = world
    requester, aggregator = _party(w.client, w.dev), _party(w.client, w.dev)
    _register(w, aggregator, Role.AGGREGATOR, ETHER)
    trainers = w.parties[:3]
    params = JobParams(
        aggregator.address,
        rounds=2,
        min_participants=2,
        max_participants=3,
        min_stake=ETHER,
        challenge_window=WINDOW,
        clip_bound=1000,
    )
    job_id = w.cm.jobs.create_job(requester.account, params, 10 * ETHER + 1)  # 1 wei of dust
    weak = _party(w.client, w.dev)
    _register(w, weak, Role.TRAINER, ETHER // 2)
    with pytest.raises(errors.InsufficientStake):
        w.cm.jobs.join(weak.account, job_id)
    for t in trainers:
        w.cm.jobs.join(t.account, job_id)
    with pytest.raises(errors.JobFull):
        w.cm.jobs.join(w.parties[3].account, job_id)
    with pytest.raises(errors.NotAuthorized):
        w.cm.jobs.submit_round(trainers[0].account, job_id, 1, "cid", b"\1" * 32, 3)
    commitments, tree = _run_round(w, job_id, 1, trainers, aggregator)
    with pytest.raises(errors.JobNotOpen):
        w.cm.jobs.join(w.parties[3].account, job_id)
    # inclusion of each signed commitment, and not of a forged one
    for i, t in enumerate(trainers):
        assert w.cm.jobs.verify_inclusion(
            job_id, 1, t.address, commitments[t.address], tree.proof(i)
        )
    assert not w.cm.jobs.verify_inclusion(
        job_id, 1, trainers[0].address, b"\x09" * 32, tree.proof(0)
    )
    with pytest.raises(errors.WrongRound):
        _run_round(w, job_id, 3, trainers, aggregator)
    with pytest.raises(errors.TooFewParticipants):
        _run_round(w, job_id, 2, trainers[:1], aggregator)
    _run_round(w, job_id, 2, trainers[:2], aggregator)
    with pytest.raises(errors.ChallengeWindowOpen):
        w.cm.jobs.finalize(requester.account, job_id)
    w.client.increase_time(WINDOW + 1)
    w.cm.jobs.finalize(requester.account, job_id)
    job = w.cm.jobs.job(job_id)
    assert job.state == JobState.FINALIZED and job.total_participations == 5
    # a finalised round never changes
    with pytest.raises(errors.JobNotOpen):
        w.cm.jobs.submit_round(aggregator.account, job_id, 2, "other", b"\2" * 32, 3)
    assert w.cm.jobs.round(job_id, 1).status == RoundStatus.RECORDED
    paid = [w.cm.jobs.claim_reward(t.account, job_id) for t in trainers]
    assert paid == [(10 * ETHER + 1) * 2 // 5] * 2 + [(10 * ETHER + 1) // 5]
    with pytest.raises(errors.AlreadyClaimed):
        w.cm.jobs.claim_reward(trainers[0].account, job_id)
    with pytest.raises(errors.NotParticipant):
        w.cm.jobs.claim_reward(w.parties[3].account, job_id)
    assert w.cm.jobs.refund(requester.account, job_id) == 10 * ETHER + 1 - sum(paid)
    assert w.cm.jobs.escrow_held() == 0
    assert w.client.balance(w.cm.jobs.address) == 0


def test_double_signing_is_slashed_once(world: World):
    w = world
    requester, aggregator = _party(w.client, w.dev), _party(w.client, w.dev)
    cheat, reporter = w.parties[0], w.parties[1]
    params = JobParams(aggregator.address, 1, 1, 4, ETHER, WINDOW)
    job_id = w.cm.jobs.create_job(requester.account, params, ETHER)
    w.cm.jobs.join(cheat.account, job_id)
    chain_id, jobs = w.client.chain_id, w.cm.jobs.address
    a, b = keccak256(b"a"), keccak256(b"b")
    sig_a = sign_round_commitment(cheat.account, chain_id, jobs, job_id, 1, a)
    sig_b = sign_round_commitment(cheat.account, chain_id, jobs, job_id, 1, b)
    with pytest.raises(errors.InvalidEvidence):  # the same commitment twice is no evidence
        w.cm.jobs.report_double_sign(
            reporter.account, job_id, 1, cheat.address, [(a, sig_a), (a, sig_a)]
        )
    forged = sign_round_commitment(reporter.account, chain_id, jobs, job_id, 1, b)
    with pytest.raises(errors.InvalidEvidence):
        w.cm.jobs.report_double_sign(
            reporter.account, job_id, 1, cheat.address, [(a, sig_a), (b, forged)]
        )
    stake_before = w.cm.registry.stake_of(cheat.address)
    slashed = w.cm.jobs.report_double_sign(
        reporter.account, job_id, 1, cheat.address, [(a, sig_a), (b, sig_b)]
    )
    assert slashed == ETHER
    assert w.cm.registry.stake_of(cheat.address) == stake_before - ETHER
    assert w.cm.registry.slashed_pool() == ETHER // 2
    with pytest.raises(errors.EvidenceAlreadyUsed):
        w.cm.jobs.report_double_sign(
            reporter.account, job_id, 1, cheat.address, [(a, sig_a), (b, sig_b)]
        )


def test_challenge_upheld_by_committee_cancels_job_and_slashes_aggregator(world: World):
    w = world
    requester, aggregator = _party(w.client, w.dev), _party(w.client, w.dev)
    _register(w, aggregator, Role.AGGREGATOR, 3 * ETHER)
    trainers = w.parties[:2]
    params = JobParams(aggregator.address, 2, 1, 4, ETHER, WINDOW)
    job_id = w.cm.jobs.create_job(requester.account, params, 4 * ETHER)
    for t in trainers:
        w.cm.jobs.join(t.account, job_id)
    _run_round(w, job_id, 1, trainers, aggregator)
    challenger = trainers[0]
    cid = w.cm.jobs.challenge(challenger.account, job_id, 1, keccak256(b"wrong sum"))
    with pytest.raises(errors.ChallengePending):
        w.cm.jobs.challenge(trainers[1].account, job_id, 1, keccak256(b"again"))
    info = w.cm.jobs.challenge_info(cid)
    assert info.status == ChallengeStatus.OPEN
    assert challenger.address not in info.committee and aggregator.address not in info.committee
    assert len(info.committee) == 3  # every other validator
    outsider = _party(w.client, w.dev)
    with pytest.raises(errors.NotCommitteeMember):
        w.cm.jobs.vote(outsider.account, cid, True)
    by_address = {p.address: p for p in w.parties}
    members = [by_address[a] for a in info.committee]
    with pytest.raises(errors.VotingOpen):
        w.cm.jobs.resolve(requester.account, cid)
    w.cm.jobs.vote(members[0].account, cid, True)
    with pytest.raises(errors.AlreadyVoted):
        w.cm.jobs.vote(members[0].account, cid, True)
    w.cm.jobs.vote(members[1].account, cid, True)
    agg_stake = w.cm.registry.stake_of(aggregator.address)
    w.cm.jobs.resolve(requester.account, cid)  # 2 of 3 equal stakes: a majority
    assert w.cm.jobs.challenge_info(cid).status == ChallengeStatus.UPHELD
    assert w.cm.jobs.round(job_id, 1).status == RoundStatus.INVALID
    assert w.cm.jobs.job(job_id).state == JobState.CANCELLED
    assert w.cm.registry.stake_of(aggregator.address) == agg_stake - ETHER
    assert w.cm.jobs.refund(requester.account, job_id) == 4 * ETHER
    with pytest.raises(errors.AlreadyResolved):
        w.cm.jobs.resolve(requester.account, cid)


def test_models_grants_and_receipts(world: World):
    w = world
    owner, grantee, provider = w.parties[0], w.parties[1], w.parties[2]
    models = w.cm.models
    model_id = models.create_model(owner.account, "digits-mlp")
    v1 = models.publish_version(
        owner.account, model_id, "bafy-ct", "bafy-manifest", keccak256(b"w")
    )
    with pytest.raises(errors.NotAuthorized):
        models.publish_version(grantee.account, model_id, "x", "y", keccak256(b"w"))
    with pytest.raises(errors.UnknownModel):
        models.publish_version(owner.account, model_id + 7, "x", "y", keccak256(b"w"))
    now = int(w.client.block("latest")["timestamp"], 16)
    grant_id = models.grant(owner.account, v1, grantee.address, now + 1000, "bafy-wrapped-key")
    assert models.has_access(v1, grantee.address) and models.has_access(v1, owner.address)
    with pytest.raises(errors.NotAuthorized):
        models.revoke(grantee.account, grant_id)
    models.revoke(owner.account, grant_id)
    assert not models.has_access(v1, grantee.address)
    with pytest.raises(errors.GrantRevoked):
        models.revoke(owner.account, grant_id)
    g2 = models.grant(owner.account, v1, grantee.address, now + 1000, "bafy-wrapped-key-2")
    assert models.grant_info(g2).wrapped_key_ref == "bafy-wrapped-key-2"
    w.client.increase_time(1001)
    assert not models.has_access(v1, grantee.address)  # expired
    models.transfer_ownership(owner.account, model_id, grantee.address)
    with pytest.raises(errors.NotAuthorized):
        models.grant(owner.account, v1, provider.address, now + 5000, "k")
    models.grant(grantee.account, v1, provider.address, now + 5000, "k")
    assert models.has_access(v1, provider.address)

    rc = w.cm.receipts
    client_party = grantee
    rc.deposit(client_party.account, ETHER)
    b1 = rc.post_batch(provider.account, client_party.address, keccak256(b"root1"), 10, ETHER // 4)
    b2 = rc.post_batch(provider.account, client_party.address, keccak256(b"root2"), 5, ETHER // 4)
    with pytest.raises(errors.InsufficientBalance):
        rc.post_batch(provider.account, client_party.address, keccak256(b"root3"), 5, ETHER)
    with pytest.raises(errors.NotAuthorized):
        rc.dispute(provider.account, b2, keccak256(b"why"))
    rc.dispute(client_party.account, b2, keccak256(b"left out my receipt 7"))
    with pytest.raises(errors.DisputeWindowOpen):
        rc.settle(provider.account, b1)
    w.client.increase_time(WINDOW + 1)
    with pytest.raises(errors.DisputeWindowClosed):
        rc.dispute(client_party.account, b1, keccak256(b"late"))
    rc.settle(provider.account, b1)
    with pytest.raises(errors.AlreadyResolved):
        rc.settle(provider.account, b2)
    assert rc.earnings(provider.address) == ETHER // 4
    assert rc.available(client_party.address) == ETHER - ETHER // 4
    rc.withdraw_earnings(provider.account)
    assert w.client.balance(rc.address) == ETHER - ETHER // 4
