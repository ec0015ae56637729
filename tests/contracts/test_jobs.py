"""Jobs: every external function and every revert path, run in process with titanoboa."""

from __future__ import annotations

import boa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainml.crypto import MerkleTree, commitment_leaf, keccak256, sign_round_commitment
from chainml.crypto.signing import round_commitment_digest

from .conftest import ETHER, WINDOW, deployer, funded, register


def params(aggregator, rounds=2, min_p=1, max_p=4, min_stake=ETHER, window=WINDOW):
    return (aggregator, rounds, min_p, max_p, min_stake, window, 100, 0, 0, b"\0" * 32, "")


def make_job(system, trainers=3, rounds=2, escrow=9 * ETHER, min_p=1, max_p=4):
    requester, aggregator = funded(), funded()
    register(system.registry, aggregator, roles=4, stake=3 * ETHER)
    with boa.env.prank(requester.address):
        job_id = system.jobs.create_job(
            params(aggregator.address, rounds, min_p, max_p), value=escrow
        )
    people = []
    for _ in range(trainers):
        t = funded()
        register(system.registry, t)
        with boa.env.prank(t.address):
            system.jobs.join(job_id)
        people.append(t)
    return job_id, requester, aggregator, people


def submit(
    system,
    job_id,
    round_no,
    aggregator,
    members,
    commit=lambda m, r: keccak256(m.address.encode() + bytes([r])),
):
    leaves = [commitment_leaf(m.address, job_id, round_no, commit(m, round_no)) for m in members]
    tree = MerkleTree(leaves)
    bitmap = sum(1 << (system.jobs.participant_of(job_id, m.address) - 1) for m in members)
    with boa.env.prank(aggregator.address):
        system.jobs.submit_round(job_id, round_no, f"bafy{round_no}", tree.root, bitmap)
    return tree


def test_create_job_reverts(system):
    r, agg = funded(), boa.env.generate_address()
    with boa.env.prank(r.address):
        with boa.reverts("ZeroAmount"):
            system.jobs.create_job(params(agg), value=0)
        for bad in [
            params("0x" + "00" * 20),
            params(agg, rounds=0),
            params(agg, rounds=65),
            params(agg, min_p=0),
            params(agg, min_p=5, max_p=4),
            params(agg, max_p=257),
            params(agg, window=0),
            # a configuration published but not named by its hash
            (*params(agg)[:9], b"\0" * 32, "bafkreia"),
        ]:
            with boa.reverts("InvalidParameter"):
                system.jobs.create_job(bad, value=1)
        job_id = system.jobs.create_job(params(agg), value=ETHER)
        cid = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku"
        named = system.jobs.create_job((*params(agg)[:9], b"\1" * 32, cid), value=1)
    assert job_id == 1 and system.jobs.escrow_held() == ETHER + 1
    job = system.jobs.get_job(1)
    assert job.requester == r.address and job.state == 1 and job.params.aggregator == agg
    assert system.jobs.get_job(named).params[9:] == (b"\1" * 32, cid)
    with boa.reverts("UnknownJob"):
        system.jobs.get_job(3)


def test_join_reverts(system):
    job_id, requester, aggregator, people = make_job(system, trainers=4)
    late = funded()
    with boa.env.prank(late.address):
        with boa.reverts("UnknownJob"):
            system.jobs.join(99)
        with boa.reverts("NotRegistered"):
            system.jobs.join(job_id)
    validator_only = funded()  # staked and registered, but not as a trainer
    register(system.registry, validator_only, roles=8 | 1)
    with boa.env.prank(validator_only.address), boa.reverts("NotTrainer"):
        system.jobs.join(job_id)
    assert not system.registry.has_role(validator_only.address, 2)
    assert system.registry.has_role(validator_only.address, 8 | 1)
    assert not system.registry.has_role(validator_only.address, 0)  # an empty mask: no
    assert not system.registry.has_role(late.address, 2)  # never registered
    register(system.registry, late, stake=ETHER // 2)
    with boa.env.prank(late.address), boa.reverts("InsufficientStake"):
        system.jobs.join(job_id)
    with boa.env.prank(people[0].address), boa.reverts("AlreadyJoined"):
        system.jobs.join(job_id)
    with boa.env.prank(late.address):
        system.registry.stake(value=ETHER)
        with boa.reverts("JobFull"):
            system.jobs.join(job_id)
    job2, _, agg2, ppl2 = make_job(system, trainers=1)
    submit(system, job2, 1, agg2, ppl2)
    with boa.env.prank(late.address), boa.reverts("JobNotOpen"):
        system.jobs.join(job2)


def test_cancel_and_refund(system):
    job_id, requester, aggregator, people = make_job(system, escrow=5 * ETHER)
    with boa.env.prank(people[0].address), boa.reverts("NotAuthorized"):
        system.jobs.cancel(job_id)
    with boa.env.prank(requester.address):
        with boa.reverts("JobNotOpen"):
            system.jobs.refund(job_id)
        system.jobs.cancel(job_id)
        with boa.reverts("JobNotOpen"):
            system.jobs.cancel(job_id)
        before = boa.env.get_balance(requester.address)
        assert system.jobs.refund(job_id) == 5 * ETHER
        assert boa.env.get_balance(requester.address) == before + 5 * ETHER
        with boa.reverts("NothingToWithdraw"):
            system.jobs.refund(job_id)
    with boa.env.prank(people[0].address), boa.reverts("NotAuthorized"):
        system.jobs.refund(job_id)
    j2, r2, a2, p2 = make_job(system, trainers=1, rounds=1)
    submit(system, j2, 1, a2, p2)
    with boa.env.prank(r2.address), boa.reverts("JobNotOpen"):
        system.jobs.cancel(j2)


def test_submit_round_reverts(system):
    job_id, requester, aggregator, people = make_job(system, trainers=3, min_p=2)
    with boa.env.prank(people[0].address), boa.reverts("NotAuthorized"):
        system.jobs.submit_round(job_id, 1, "cid", b"\1" * 32, 7)
    with boa.env.prank(aggregator.address):
        with boa.reverts("WrongRound"):
            system.jobs.submit_round(job_id, 2, "cid", b"\1" * 32, 7)
        with boa.reverts("InvalidParameter"):
            system.jobs.submit_round(job_id, 1, "", b"\1" * 32, 7)
        with boa.reverts("NotParticipant"):
            system.jobs.submit_round(job_id, 1, "cid", b"\1" * 32, 0b1011)  # index 3 never joined
        with boa.reverts("TooFewParticipants"):
            system.jobs.submit_round(job_id, 1, "cid", b"\1" * 32, 0b100)
        with boa.reverts("UnknownJob"):
            system.jobs.submit_round(77, 1, "cid", b"\1" * 32, 7)
        system.jobs.submit_round(job_id, 1, "cid1", b"\1" * 32, 0b011)
        system.jobs.submit_round(job_id, 2, "cid2", b"\2" * 32, 0b111)
        with boa.reverts("WrongRound"):
            system.jobs.submit_round(job_id, 3, "cid3", b"\3" * 32, 0b111)
    rnd = system.jobs.get_round(job_id, 1)
    assert (rnd.aggregate_cid, rnd.bitmap, rnd.participants, rnd.status) == ("cid1", 3, 2, 1)
    assert system.jobs.get_job(job_id).total_participations == 5


@pytest.mark.parametrize("n", [4, 32, 256])
def test_round_result_gas_does_not_grow_with_participants(n):
    """Same gas for 4, 32 and 256 participants (the bitmap is one word)."""
    owner, agg = boa.env.generate_address(), boa.env.generate_address()
    boa.env.set_balance(owner, ETHER)
    with boa.env.prank(owner):
        reg = deployer("Registry").deploy(3600, ETHER)
        jobs = deployer("Jobs").deploy(reg.address)
    with boa.env.prank(owner):
        job_id = jobs.create_job(params(agg, rounds=2, min_p=1, max_p=256, min_stake=0), value=1)
    members = []
    for _ in range(n):
        m = funded(2)
        register(reg, m, roles=2, stake=0)
        with boa.env.prank(m.address):
            jobs.join(job_id)
        members.append(m)
    bitmap = (1 << n) - 1
    with boa.env.prank(agg):
        jobs.submit_round(job_id, 1, "bafkreig3zk52nwaoloma3" + "x" * 37, b"\7" * 32, bitmap)
        gas = jobs._computation.get_gas_used()
    assert jobs.get_round(job_id, 1).participants == n
    # Record the figure for comparison across the parametrised runs.
    test_round_result_gas_does_not_grow_with_participants.gas[n] = gas
    seen = test_round_result_gas_does_not_grow_with_participants.gas
    assert max(seen.values()) - min(seen.values()) <= 1200  # calldata bytes of the bitmap only


test_round_result_gas_does_not_grow_with_participants.gas = {}  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def popcounter():
    """Jobs' SWAR popcount as an external function (deployed outside the per-test snapshot)."""
    from chainml.ledger.artifacts import CONTRACTS_DIR

    src = (CONTRACTS_DIR / "Jobs.vy").read_text()
    start = src.index("@internal\n@pure\ndef _popcount")
    end = src.index("@internal", start + 10)
    body = src[start:end].replace("@internal", "@external").replace("def _popcount", "def popcount")
    return boa.loads(body)


@settings(max_examples=300, deadline=None)
@given(
    x=st.one_of(st.integers(0, 2**256 - 1), st.sampled_from([0, 1, 2**255, 2**256 - 1, 2**256 - 2]))
)
def test_popcount_matches_python(popcounter, x):
    assert popcounter.popcount(x) == bin(x).count("1")


def test_inclusion_proofs(system):
    job_id, requester, aggregator, people = make_job(system)
    tree = submit(system, job_id, 1, aggregator, people)
    for i, p in enumerate(people):
        c = keccak256(p.address.encode() + bytes([1]))
        assert system.jobs.verify_inclusion(job_id, 1, p.address, c, tree.proof(i))
        assert not system.jobs.verify_inclusion(job_id, 2, p.address, c, tree.proof(i))
        assert not system.jobs.verify_inclusion(
            job_id, 1, p.address, keccak256(b"x"), tree.proof(i)
        )


def test_finalize_claim_and_dust(system):
    job_id, requester, aggregator, people = make_job(system, trainers=3, escrow=10 * ETHER + 2)
    with boa.env.prank(requester.address), boa.reverts("WrongRound"):
        system.jobs.finalize(job_id)
    submit(system, job_id, 1, aggregator, people)
    submit(system, job_id, 2, aggregator, people[:1])
    with boa.env.prank(people[0].address):
        with boa.reverts("NotFinalized"):
            system.jobs.claim_reward(job_id)
        with boa.reverts("ChallengeWindowOpen"):
            system.jobs.finalize(job_id)
    boa.env.time_travel(seconds=WINDOW)
    system.jobs.finalize(job_id)
    with boa.reverts("JobNotOpen"):
        system.jobs.finalize(job_id)
    assert system.jobs.reward_of(job_id, people[0].address) == (10 * ETHER + 2) * 2 // 4
    with boa.env.prank(requester.address), boa.reverts("NotFinalized"):
        system.jobs.refund(job_id)  # shares are still unclaimed
    paid = 0
    for p in people:
        with boa.env.prank(p.address):
            paid += system.jobs.claim_reward(job_id)
            with boa.reverts("AlreadyClaimed"):
                system.jobs.claim_reward(job_id)
    assert system.jobs.reward_of(job_id, people[0].address) == 0
    outsider = funded()
    with boa.env.prank(outsider.address), boa.reverts("NotParticipant"):
        system.jobs.claim_reward(job_id)
    with boa.env.prank(requester.address):
        assert system.jobs.refund(job_id) == 10 * ETHER + 2 - paid
    assert boa.env.get_balance(system.jobs.address) == system.jobs.escrow_held() == 0


def test_a_participant_with_no_round_has_no_reward(system):
    job_id, requester, aggregator, people = make_job(system, trainers=2, rounds=1)
    submit(system, job_id, 1, aggregator, people[:1])
    boa.env.time_travel(seconds=WINDOW)
    system.jobs.finalize(job_id)
    with boa.env.prank(people[1].address), boa.reverts("NoReward"):
        system.jobs.claim_reward(job_id)


def _committee_world(system):
    validators = [funded() for _ in range(5)]
    for v in validators:
        register(system.registry, v, roles=2 | 8, stake=2 * ETHER)
    job_id, requester, aggregator, people = make_job(system, trainers=0, rounds=2)
    for v in validators[:2]:
        with boa.env.prank(v.address):
            system.jobs.join(job_id)
    submit(system, job_id, 1, aggregator, validators[:2])
    return job_id, requester, aggregator, validators


def test_challenge_reverts_and_rejection_slashes_the_challenger(system):
    job_id, requester, aggregator, validators = _committee_world(system)
    challenger = validators[0]
    with boa.env.prank(challenger.address):
        with boa.reverts("WrongRound"):
            system.jobs.challenge(job_id, 2, b"\0" * 32)
    nobody = funded()
    with boa.env.prank(nobody.address), boa.reverts("NotRegistered"):
        system.jobs.challenge(job_id, 1, b"\0" * 32)
    poor = funded()
    register(system.registry, poor, stake=ETHER // 10)
    with boa.env.prank(poor.address), boa.reverts("InsufficientStake"):
        system.jobs.challenge(job_id, 1, b"\0" * 32)
    with boa.env.prank(challenger.address):
        cid = system.jobs.challenge(job_id, 1, keccak256(b"bad sum"))
        with boa.reverts("ChallengePending"):
            system.jobs.challenge(job_id, 1, b"\0" * 32)
    c = system.jobs.get_challenge(cid)
    assert challenger.address not in c.committee and len(c.committee) == 4
    with boa.reverts("UnknownChallenge"):
        system.jobs.vote(cid + 1, True)
    with boa.reverts("UnknownChallenge"):
        system.jobs.resolve(cid + 1)
    with boa.reverts("UnknownChallenge"):
        system.jobs.get_challenge(cid + 1)
    submit(system, job_id, 2, aggregator, validators[:2])
    members = [v for v in validators if v.address in c.committee]
    with boa.env.prank(members[0].address):
        system.jobs.vote(cid, False)
    boa.env.time_travel(seconds=WINDOW)
    with boa.env.prank(requester.address), boa.reverts("ChallengePending"):
        system.jobs.finalize(job_id)
    with boa.env.prank(members[1].address), boa.reverts("VotingClosed"):
        system.jobs.vote(cid, False)
    stake_before = system.registry.stake_of(challenger.address)
    system.jobs.resolve(cid)  # after the deadline: not upheld, so rejected
    assert system.jobs.get_challenge(cid).status == 3
    assert system.registry.stake_of(challenger.address) == stake_before - ETHER // 10
    with boa.reverts("AlreadyResolved"):
        system.jobs.resolve(cid)
    with boa.env.prank(members[1].address), boa.reverts("AlreadyResolved"):
        system.jobs.vote(cid, True)
    system.jobs.finalize(job_id)  # the rejected challenge no longer blocks


def test_challenge_window_closes(system):
    job_id, requester, aggregator, validators = _committee_world(system)
    boa.env.time_travel(seconds=WINDOW)
    with boa.env.prank(validators[0].address), boa.reverts("ChallengeWindowClosed"):
        system.jobs.challenge(job_id, 1, b"\0" * 32)


def test_upheld_challenge_and_voting_rules(system):
    job_id, requester, aggregator, validators = _committee_world(system)
    with boa.env.prank(validators[0].address):
        cid = system.jobs.challenge(job_id, 1, b"\1" * 32)
    c = system.jobs.get_challenge(cid)
    members = [v for v in validators if v.address in c.committee]
    with boa.env.prank(validators[0].address), boa.reverts("NotCommitteeMember"):
        system.jobs.vote(cid, True)
    with boa.reverts("VotingOpen"):
        system.jobs.resolve(cid)
    for m in members[:3]:  # 3 of 4 equal stakes
        with boa.env.prank(m.address):
            system.jobs.vote(cid, True)
    with boa.env.prank(members[0].address), boa.reverts("AlreadyVoted"):
        system.jobs.vote(cid, True)
    system.jobs.resolve(cid)
    assert system.jobs.get_challenge(cid).status == 2
    assert system.jobs.get_round(job_id, 1).status == 2
    assert system.jobs.get_job(job_id).state == 3


def test_double_sign_evidence(system):
    job_id, requester, aggregator, people = make_job(system)
    cheat, reporter = people[0], funded()
    chain_id, jobs = boa.env.evm.patch.chain_id, system.jobs.address
    a, b = keccak256(b"a"), keccak256(b"b")
    assert system.jobs.commitment_digest(job_id, 1, a) == round_commitment_digest(
        chain_id, jobs, job_id, 1, a
    )
    sa = sign_round_commitment(cheat.account, chain_id, jobs, job_id, 1, a)
    sb = sign_round_commitment(cheat.account, chain_id, jobs, job_id, 1, b)
    other_round = sign_round_commitment(cheat.account, chain_id, jobs, job_id, 2, b)
    with boa.env.prank(reporter.address):
        with boa.reverts("NotParticipant"):
            system.jobs.report_double_sign(job_id, 1, reporter.address, a, sa, b, sb)
        with boa.reverts("InvalidEvidence"):
            system.jobs.report_double_sign(job_id, 1, cheat.address, a, sa, a, sa)
        with boa.reverts("InvalidEvidence"):
            system.jobs.report_double_sign(job_id, 1, cheat.address, a, sa, b, other_round)
        with boa.reverts("InvalidEvidence"):
            system.jobs.report_double_sign(job_id, 1, cheat.address, a, sa, b, sb[:64])
        assert system.jobs.report_double_sign(job_id, 1, cheat.address, a, sa, b, sb) == ETHER
        with boa.reverts("EvidenceAlreadyUsed"):
            system.jobs.report_double_sign(job_id, 1, cheat.address, a, sa, b, sb)
    assert system.registry.rewards_owed(reporter.address) == ETHER // 2
