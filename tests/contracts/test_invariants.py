"""Stateful fuzzing of the contracts' invariants (hypothesis + titanoboa).

Random sequences of calls by random senders, with reverts allowed, and after every step:
each contract's balance equals what it owes; a reward is paid at most once; slashing never
takes more than the stake; a finalised round never changes; only a model's owner changes
its grants; a revoked grant or data set stays revoked; a receipt batch settles or is voided
at most once.  ``CHAINML_FUZZ_SCALE`` multiplies the number of runs (``make bench``).
"""

from __future__ import annotations

import os
from typing import Any

import boa
import pytest
from boa.contracts.base_evm_contract import BoaError
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from chainml.crypto import Identity, keccak256, sign_round_commitment

from .conftest import ETHER, WINDOW, deploy_system

SCALE = int(os.environ.get("CHAINML_FUZZ_SCALE", "1"))
STEPS = 50
RUNS = 40 * SCALE
MIN_STEPS = 1_000 * SCALE  # per machine, counted: at least 2,000 steps in `make test`
STEPS_TAKEN: dict[str, int] = {}
ACTORS = [Identity.generate() for _ in range(5)]
actor = st.integers(0, len(ACTORS) - 1)
amount = st.sampled_from([0, 1, ETHER // 3, ETHER, 2 * ETHER + 1])


def attempt(fn: Any, *args: Any, sender: str, value: int = 0) -> tuple[bool, Any]:
    with boa.env.prank(sender):
        try:
            return True, fn(*args, value=value) if value else fn(*args)
        except BoaError:
            return False, None


class JobsMachine(RuleBasedStateMachine):
    """Registry and Jobs together, with staking, jobs, rounds, challenges and slashing."""

    @initialize()
    def setup(self) -> None:
        self._snapshot = boa.env.anchor()
        self._snapshot.__enter__()
        self.s = deploy_system()
        for n, a in enumerate(ACTORS):
            boa.env.set_balance(a.address, 1000 * ETHER)
            if n < 4:  # most actors start registered and staked; one must register itself
                self.register(n, 2 * ETHER, validator=n % 2 == 0)
        self.jobs: list[int] = []
        self.claimed: set[tuple[int, str]] = set()
        self.final_rounds: dict[tuple[int, int], Any] = {}
        self.challenges: list[int] = []

    def teardown(self) -> None:
        if hasattr(self, "_snapshot"):
            self._snapshot.__exit__(None, None, None)

    # -- registry --------------------------------------------------------------------
    @rule(i=actor, stake=amount, validator=st.booleans())
    def register(self, i: int, stake: int, validator: bool) -> None:
        a = ACTORS[i]
        pop = a.account.sign_digest(self.s.registry.pop_digest(a.address, a.x25519.public_bytes))
        roles = 2 | 4 | (8 if validator else 0)
        attempt(
            self.s.registry.register,
            a.x25519.public_bytes,
            pop,
            roles,
            "x",
            sender=a.address,
            value=stake,
        )

    @rule(i=actor, value=amount)
    def stake(self, i: int, value: int) -> None:
        attempt(self.s.registry.stake, sender=ACTORS[i].address, value=value)

    @rule(i=actor, value=amount)
    def unbond(self, i: int, value: int) -> None:
        attempt(self.s.registry.request_unbond, value, sender=ACTORS[i].address)

    @rule(i=actor)
    def withdraw(self, i: int) -> None:
        attempt(self.s.registry.withdraw, sender=ACTORS[i].address)
        attempt(self.s.registry.claim_slash_reward, sender=ACTORS[i].address)

    @rule(seconds=st.sampled_from([1, WINDOW // 2, WINDOW, 3600]))
    def time_passes(self, seconds: int) -> None:
        boa.env.time_travel(seconds=seconds)

    # -- jobs --------------------------------------------------------------------------
    @rule(req=actor, agg=actor, escrow=amount, rounds=st.integers(1, 2), min_p=st.integers(1, 2))
    def create_job(self, req: int, agg: int, escrow: int, rounds: int, min_p: int) -> None:
        params = (
            ACTORS[agg].address,
            rounds,
            min_p,
            4,
            ETHER // 3,
            WINDOW,
            0,
            0,
            0,
            b"\0" * 32,
            "",
        )
        ok, job_id = attempt(
            self.s.jobs.create_job, params, sender=ACTORS[req].address, value=escrow
        )
        if ok:
            self.jobs.append(job_id)

    @precondition(lambda self: self.jobs)
    @rule(i=actor, j=st.data())
    def join(self, i: int, j: st.DataObject) -> None:
        attempt(self.s.jobs.join, j.draw(st.sampled_from(self.jobs)), sender=ACTORS[i].address)

    @precondition(lambda self: self.jobs)
    @rule(j=st.data())
    def submit_round(self, j: st.DataObject) -> None:
        job_id = j.draw(st.sampled_from(self.jobs))
        job = self.s.jobs.get_job(job_id)
        if job.participant_count == 0:
            return
        bitmap = j.draw(st.integers(1, (1 << job.participant_count) - 1))
        attempt(
            self.s.jobs.submit_round,
            job_id,
            job.rounds_done + 1,
            "bafy",
            keccak256(bytes([bitmap])),
            bitmap,
            sender=job.params.aggregator,
        )

    @precondition(lambda self: self.jobs)
    @rule(j=st.data(), wait=st.booleans())
    def progress(self, j: st.DataObject, wait: bool) -> None:
        """Move a job on: whoever can joins, the next round goes in, maybe the window passes."""
        job_id = j.draw(st.sampled_from(self.jobs))
        for a in ACTORS:
            attempt(self.s.jobs.join, job_id, sender=a.address)
        job = self.s.jobs.get_job(job_id)
        if job.participant_count:
            bitmap = j.draw(st.integers(1, (1 << job.participant_count) - 1))
            attempt(
                self.s.jobs.submit_round,
                job_id,
                job.rounds_done + 1,
                "bafy",
                b"\2" * 32,
                bitmap,
                sender=job.params.aggregator,
            )
        if wait:
            boa.env.time_travel(seconds=WINDOW)
            self._finalize(job_id, ACTORS[0].address)

    def _finalize(self, job_id: int, sender: str) -> None:
        ok, _ = attempt(self.s.jobs.finalize, job_id, sender=sender)
        if ok:
            for r in range(1, self.s.jobs.get_job(job_id).rounds_done + 1):
                self.final_rounds[(job_id, r)] = self.s.jobs.get_round(job_id, r)

    @precondition(lambda self: self.jobs)
    @rule(j=st.data(), i=actor)
    def finalize(self, j: st.DataObject, i: int) -> None:
        self._finalize(j.draw(st.sampled_from(self.jobs)), ACTORS[i].address)

    @precondition(lambda self: self.jobs)
    @rule(j=st.data(), i=actor)
    def claim(self, j: st.DataObject, i: int) -> None:
        job_id, who = j.draw(st.sampled_from(self.jobs)), ACTORS[i].address
        ok, _ = attempt(self.s.jobs.claim_reward, job_id, sender=who)
        if ok:
            assert (job_id, who) not in self.claimed, "a reward was paid twice"
            self.claimed.add((job_id, who))

    @precondition(lambda self: self.jobs)
    @rule(j=st.data())
    def refund(self, j: st.DataObject) -> None:
        job_id = j.draw(st.sampled_from(self.jobs))
        attempt(self.s.jobs.refund, job_id, sender=self.s.jobs.get_job(job_id).requester)

    @precondition(lambda self: self.jobs)
    @rule(j=st.data(), i=actor, c=actor)
    def challenge(self, j: st.DataObject, i: int, c: int) -> None:
        job_id = j.draw(st.sampled_from(self.jobs))
        latest = self.s.jobs.get_job(job_id).rounds_done
        ok, cid = attempt(
            self.s.jobs.challenge, job_id, latest, b"\1" * 32, sender=ACTORS[c].address
        )
        if ok:
            self.challenges.append(cid)

    @precondition(lambda self: self.challenges)
    @rule(k=st.data(), i=actor, uphold=st.booleans())
    def vote_or_resolve(self, k: st.DataObject, i: int, uphold: bool) -> None:
        cid = k.draw(st.sampled_from(self.challenges))
        attempt(self.s.jobs.vote, cid, uphold, sender=ACTORS[i].address)
        attempt(self.s.jobs.resolve, cid, sender=ACTORS[i].address)

    @precondition(lambda self: self.jobs)
    @rule(j=st.data(), cheat=actor, reporter=actor)
    def double_sign(self, j: st.DataObject, cheat: int, reporter: int) -> None:
        job_id = j.draw(st.sampled_from(self.jobs))
        joined = [a for a in ACTORS if self.s.jobs.participant_of(job_id, a.address)]
        a = joined[cheat % len(joined)] if joined else ACTORS[cheat]
        chain_id, jobs = boa.env.evm.patch.chain_id, self.s.jobs.address
        x, y = keccak256(b"x"), keccak256(b"y")
        sx = sign_round_commitment(a.account, chain_id, jobs, job_id, 1, x)
        sy = sign_round_commitment(a.account, chain_id, jobs, job_id, 1, y)
        before = self.s.registry.stake_of(a.address) + self.s.registry.unbonding_of(a.address)
        ok, taken = attempt(
            self.s.jobs.report_double_sign,
            job_id,
            1,
            a.address,
            x,
            sx,
            y,
            sy,
            sender=ACTORS[reporter].address,
        )
        if ok:
            assert taken <= before, "slashed more than the stake"
            after = self.s.registry.stake_of(a.address) + self.s.registry.unbonding_of(a.address)
            assert before - after == taken

    # -- invariants ----------------------------------------------------------------------
    @invariant()
    def count_step(self) -> None:
        STEPS_TAKEN["jobs"] = STEPS_TAKEN.get("jobs", 0) + 1

    @invariant()
    def registry_holds_exactly_what_it_owes(self) -> None:
        if not hasattr(self, "s"):
            return
        r = self.s.registry
        assert boa.env.get_balance(r.address) == (
            r.total_staked() + r.total_unbonding() + r.slashed_pool() + r.total_rewards_owed()
        )
        assert r.total_rewards_owed() == sum(r.rewards_owed(a.address) for a in ACTORS)
        assert r.total_staked() == sum(r.stake_of(a.address) for a in ACTORS)
        assert r.total_unbonding() == sum(r.unbonding_of(a.address) for a in ACTORS)

    @invariant()
    def jobs_hold_exactly_the_unreleased_escrow(self) -> None:
        if not hasattr(self, "s"):
            return
        owed = 0
        for job_id in self.jobs:
            job = self.s.jobs.get_job(job_id)
            assert job.paid <= job.escrow
            owed += job.escrow - job.paid
        assert boa.env.get_balance(self.s.jobs.address) == self.s.jobs.escrow_held() == owed

    @invariant()
    def finalised_rounds_never_change(self) -> None:
        for (job_id, r), snapshot in getattr(self, "final_rounds", {}).items():
            assert self.s.jobs.get_round(job_id, r) == snapshot


class AssetsMachine(RuleBasedStateMachine):
    """Models, Datasets and Receipts."""

    @initialize()
    def setup(self) -> None:
        self._snapshot = boa.env.anchor()
        self._snapshot.__enter__()
        self.s = deploy_system()
        for a in ACTORS:
            boa.env.set_balance(a.address, 1000 * ETHER)
            attempt(self.s.receipts.deposit, sender=a.address, value=3 * ETHER)
        self.versions: list[tuple[int, str]] = []  # (version id, owner at publication)
        self.grants: list[int] = []
        self.revoked_grants: set[int] = set()
        self.datasets: list[int] = []
        self.revoked_datasets: set[int] = set()
        self.batches: list[int] = []
        self.closed_batches: dict[int, int] = {}

    def teardown(self) -> None:
        if hasattr(self, "_snapshot"):
            self._snapshot.__exit__(None, None, None)

    @rule(i=actor)
    def publish(self, i: int) -> None:
        who = ACTORS[i].address
        ok, model_id = attempt(self.s.models.create_model, "m", sender=who)
        ok, version = attempt(
            self.s.models.publish_version, model_id, "ct", "man", b"\1" * 32, 0, 0, sender=who
        )
        if ok:
            self.versions.append((version, who))

    @precondition(lambda self: self.versions)
    @rule(v=st.data(), i=actor, g=actor)
    def grant(self, v: st.DataObject, i: int, g: int) -> None:
        version, _ = v.draw(st.sampled_from(self.versions))
        model_id = self.s.models.get_version(version).model_id
        owner = self.s.models.get_model(model_id).owner
        sender = ACTORS[i].address
        before = self.s.models.grant_count()
        ok, grant_id = attempt(
            self.s.models.grant,
            version,
            ACTORS[g].address,
            boa.env.timestamp + 100,
            "k",
            sender=sender,
        )
        assert ok == (sender == owner), "grant accepted from a non-owner, or refused to the owner"
        if ok:
            self.grants.append(grant_id)
        else:
            assert self.s.models.grant_count() == before

    @precondition(lambda self: self.grants)
    @rule(gs=st.data(), i=actor)
    def revoke(self, gs: st.DataObject, i: int) -> None:
        grant_id = gs.draw(st.sampled_from(self.grants))
        grant = self.s.models.get_grant(grant_id)
        owner = self.s.models.get_model(self.s.models.get_version(grant.version_id).model_id).owner
        sender = ACTORS[i].address
        ok, _ = attempt(self.s.models.revoke, grant_id, sender=sender)
        if sender != owner:
            assert not ok and self.s.models.get_grant(grant_id) == grant
        if ok:
            self.revoked_grants.add(grant_id)

    @precondition(lambda self: self.versions)
    @rule(v=st.data(), i=actor, to=actor)
    def transfer(self, v: st.DataObject, i: int, to: int) -> None:
        version, _ = v.draw(st.sampled_from(self.versions))
        model_id = self.s.models.get_version(version).model_id
        owner = self.s.models.get_model(model_id).owner
        ok, _ = attempt(
            self.s.models.transfer_ownership, model_id, ACTORS[to].address, sender=ACTORS[i].address
        )
        assert ok == (ACTORS[i].address == owner)

    @rule(i=actor, revoke=st.booleans(), j=actor)
    def datasets(self, i: int, revoke: bool, j: int) -> None:
        ok, ds = attempt(
            self.s.datasets.commit, b"\2" * 32, 5, b"\3" * 32, sender=ACTORS[i].address
        )
        if ok:
            self.datasets.append(ds)
        if revoke and self.datasets:
            target = self.datasets[-1]
            ok, _ = attempt(self.s.datasets.revoke, target, sender=ACTORS[j].address)
            if ok:
                self.revoked_datasets.add(target)

    @rule(i=actor, value=amount)
    def deposit(self, i: int, value: int) -> None:
        attempt(self.s.receipts.deposit, sender=ACTORS[i].address, value=value)

    @rule(i=actor, value=amount)
    def request_withdrawal(self, i: int, value: int) -> None:
        attempt(self.s.receipts.request_withdrawal, value, sender=ACTORS[i].address)

    @rule(i=actor)
    def withdraw(self, i: int) -> None:
        attempt(self.s.receipts.withdraw, sender=ACTORS[i].address)
        attempt(self.s.receipts.withdraw_earnings, sender=ACTORS[i].address)

    @rule(p=actor, c=actor, value=amount)
    def post(self, p: int, c: int, value: int) -> None:
        ok, batch = attempt(
            self.s.receipts.post_batch,
            ACTORS[c].address,
            b"\4" * 32,
            3,
            value,
            sender=ACTORS[p].address,
        )
        if ok:
            self.batches.append(batch)

    @precondition(lambda self: self.batches)
    @rule(b=st.data(), i=actor, settle=st.booleans())
    def close_batch(self, b: st.DataObject, i: int, settle: bool) -> None:
        batch = b.draw(st.sampled_from(self.batches))
        fn = self.s.receipts.settle if settle else self.s.receipts.dispute
        args = (batch,) if settle else (batch, b"\5" * 32)
        ok, _ = attempt(fn, *args, sender=ACTORS[i].address)
        if ok:
            assert batch not in self.closed_batches, "a batch was settled or voided twice"
            self.closed_batches[batch] = self.s.receipts.get_batch(batch).status

    @rule(seconds=st.sampled_from([1, WINDOW // 2, WINDOW]))
    def time_passes(self, seconds: int) -> None:
        boa.env.time_travel(seconds=seconds)

    @invariant()
    def count_step(self) -> None:
        STEPS_TAKEN["assets"] = STEPS_TAKEN.get("assets", 0) + 1

    @invariant()
    def receipts_hold_exactly_what_they_owe(self) -> None:
        if not hasattr(self, "s"):
            return
        r = self.s.receipts
        assert boa.env.get_balance(r.address) == (
            r.total_available() + r.total_reserved() + r.total_pending() + r.total_earnings()
        )
        assert r.total_available() == sum(r.available(a.address) for a in ACTORS)
        assert r.total_earnings() == sum(r.earnings(a.address) for a in ACTORS)

    @invariant()
    def revocations_are_final_and_closed_batches_stay_closed(self) -> None:
        for g in getattr(self, "revoked_grants", ()):
            assert self.s.models.get_grant(g).revoked
        for d in getattr(self, "revoked_datasets", ()):
            assert self.s.datasets.get(d).revoked
        for batch, status in getattr(self, "closed_batches", {}).items():
            assert self.s.receipts.get_batch(batch).status == status


FUZZ = settings(
    max_examples=RUNS,
    stateful_step_count=STEPS,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


# bounded by RUNS × STEPS, not by time: about 50 s alone on two cores, but 494 s once on a
# machine at a load average of 10–26, past the suite's 300 s guard against hangs
SLOW_BUT_BOUNDED = pytest.mark.timeout(1200)


@SLOW_BUT_BOUNDED
def test_jobs_and_registry_invariants_hold() -> None:
    STEPS_TAKEN["jobs"] = 0
    run_state_machine_as_test(JobsMachine, settings=FUZZ)
    assert STEPS_TAKEN["jobs"] >= MIN_STEPS, STEPS_TAKEN


@SLOW_BUT_BOUNDED
def test_models_datasets_receipts_invariants_hold() -> None:
    STEPS_TAKEN["assets"] = 0
    run_state_machine_as_test(AssetsMachine, settings=FUZZ)
    assert STEPS_TAKEN["assets"] >= MIN_STEPS, STEPS_TAKEN
