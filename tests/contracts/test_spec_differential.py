"""The executable specification (chainml.ledger.audit.spec) against the real contracts.

Random call sequences run on the compiled contracts in titanoboa.  Before each call the
tracked state is read from the contract; after a call that succeeded, the specification's
guard must hold for that state and input and every tracked variable must equal the
specification's prediction.  This is what makes the z3 proofs over the specification say
something about the contracts.  A contract with an accounting slip must be caught.
"""

from __future__ import annotations

import random
from typing import Any

import boa
import pytest
from boa.contracts.base_evm_contract import BoaError

from chainml.crypto import keccak256
from chainml.ledger.artifacts import CONTRACTS_DIR
from chainml.ledger.audit import spec

from .conftest import ETHER, WINDOW, deployer, funded, register
from .test_jobs import make_job, submit

STEPS = 400
NOBODY = "0x" + "de" * 20  # stands for the roles a call does not involve
AMOUNTS = [0, 1, 7, ETHER // 3, ETHER, 3 * ETHER + 1]


class Mismatch(AssertionError):
    pass


def _check(name: str, fn: str, pre: dict[str, int], inputs: dict[str, int], post: dict[str, int]):
    ok, predicted = spec.evaluate(spec.SPECS[name], fn, pre, inputs)
    if not ok:
        raise Mismatch(f"{name}.{fn} succeeded where the specification forbids it: {pre} {inputs}")
    wrong = {k: (predicted[k], post[k]) for k in post if predicted[k] != post[k]}
    if wrong:
        raise Mismatch(f"{name}.{fn}: (specification, contract) differ on {wrong}")


def _try(call) -> bool:
    try:
        call()
    except BoaError:
        return False
    return True


# -- Registry ------------------------------------------------------------------------------


def registry_run(source: str | None, seed: int, steps: int = STEPS) -> int:
    """Random Registry calls; the slasher is a test account so slash is called directly."""
    rng = random.Random(seed)
    d = boa.loads_partial(source, name="Registry") if source else deployer("Registry")
    owner, slasher = boa.env.generate_address("owner"), boa.env.generate_address("slasher")
    with boa.env.prank(owner):
        reg = d.deploy(3600, ETHER)
        reg.set_slasher(slasher)
    people = [funded(10_000) for _ in range(5)]
    registered: list[Any] = []
    checked = 0

    def state(sender=NOBODY, offender=NOBODY, beneficiary=NOBODY) -> dict[str, int]:
        return {
            "balance": boa.env.get_balance(reg.address),
            "total_staked": reg.total_staked(),
            "total_unbonding": reg.total_unbonding(),
            "slashed_pool": reg.slashed_pool(),
            "total_rewards_owed": reg.total_rewards_owed(),
            "stake[sender]": reg.stake_of(sender),
            "unbonding[sender]": reg.unbonding_of(sender),
            "owed[sender]": reg.rewards_owed(sender),
            "stake[offender]": reg.stake_of(offender),
            "unbonding[offender]": reg.unbonding_of(offender),
            "owed[beneficiary]": reg.rewards_owed(beneficiary),
        }

    for _ in range(steps):
        op = rng.choice(["register", "stake", "unbond", "withdraw", "slash", "claim", "time"])
        who = rng.choice(people)
        a = who.address
        if op == "time":
            boa.env.time_travel(seconds=rng.choice([60, 3600]))
            continue
        if op == "register" and who in registered:
            continue
        if op == "slash":
            offender, ben = rng.choice(people).address, rng.choice([*people, None])
            ben_addr = ben.address if ben else "0x" + "00" * 20
            pre = state(NOBODY, offender, ben_addr if ben else NOBODY)
            amount = rng.choice(AMOUNTS)
            with boa.env.prank(slasher):
                ok = _try(lambda: reg.slash(offender, amount, ben_addr))
            if ok:
                post = state(NOBODY, offender, ben_addr if ben else NOBODY)
                inputs = {"amount": amount, "has_beneficiary": int(ben is not None)}
                _check("Registry", "slash", pre, inputs, post)
                checked += 1
            continue
        pre = state(a)
        amount = rng.choice(AMOUNTS)
        with boa.env.prank(a):
            if op == "register":
                ok = _try(lambda: register(reg, who, roles=2, stake=amount))
                fn, inputs = "register", {"value": amount}
                if ok:
                    registered.append(who)
            elif op == "stake":
                ok = _try(lambda: reg.stake(value=amount))
                fn, inputs = "stake", {"value": amount}
            elif op == "unbond":
                ok = _try(lambda: reg.request_unbond(amount))
                fn, inputs = "request_unbond", {"amount": amount}
            elif op == "withdraw":
                ok = _try(lambda: reg.withdraw())
                fn, inputs = "withdraw", {}
            else:
                ok = _try(lambda: reg.claim_slash_reward())
                fn, inputs = "claim_slash_reward", {}
        if ok:
            _check("Registry", fn, pre, inputs, state(a))
            checked += 1
    return checked


# -- Receipts ------------------------------------------------------------------------------


def receipts_run(source: str | None, seed: int, steps: int = STEPS) -> int:
    rng = random.Random(seed)
    d = boa.loads_partial(source, name="Receipts") if source else deployer("Receipts")
    rc = d.deploy(WINDOW, WINDOW)
    people = [funded(10_000) for _ in range(4)]
    checked = 0

    def state(sender=NOBODY, client=NOBODY, provider=NOBODY) -> dict[str, int]:
        return {
            "balance": boa.env.get_balance(rc.address),
            "total_available": rc.total_available(),
            "total_reserved": rc.total_reserved(),
            "total_pending": rc.total_pending(),
            "total_earnings": rc.total_earnings(),
            "available[sender]": rc.available(sender),
            "pending[sender]": rc.pending_withdrawal(sender),
            "earnings[sender]": rc.earnings(sender),
            "available[client]": rc.available(client),
            "reserved[client]": rc.reserved(client),
            "earnings[provider]": rc.earnings(provider),
        }

    for _ in range(steps):
        op = rng.choice(
            ["deposit", "request", "withdraw", "post", "dispute", "settle", "earn", "time"]
        )
        who = rng.choice(people)
        a = who.address
        amount = rng.choice(AMOUNTS)
        if op == "time":
            boa.env.time_travel(seconds=rng.choice([60, WINDOW]))
            continue
        if op in ("dispute", "settle"):
            count = rc.batch_count()
            if count == 0:
                continue
            target = rng.randint(1, count)
            batch = rc.get_batch(target)
            provider, client, amount = batch[0], batch[1], batch[4]
            pre = state(NOBODY, client, provider if op == "settle" else NOBODY)
        else:
            pre = state(a)
        with boa.env.prank(a):
            if op == "deposit":
                ok = _try(lambda: rc.deposit(value=amount))
                fn, inputs = "deposit", {"value": amount}
            elif op == "request":
                ok = _try(lambda: rc.request_withdrawal(amount))
                fn, inputs = "request_withdrawal", {"amount": amount}
            elif op == "withdraw":
                ok = _try(lambda: rc.withdraw())
                fn, inputs = "withdraw", {}
            elif op == "earn":
                ok = _try(lambda: rc.withdraw_earnings())
                fn, inputs = "withdraw_earnings", {}
            elif op == "post":
                client = rng.choice(people).address
                pre = state(NOBODY, client)
                root = keccak256(bytes([rng.randrange(256)]))
                ok = _try(lambda: rc.post_batch(client, root, 3, amount))
                fn, inputs = "post_batch", {"amount": amount}
            else:
                if op == "dispute":
                    with boa.env.prank(client):
                        ok = _try(lambda: rc.dispute(target, b"\1" * 32))
                else:
                    ok = _try(lambda: rc.settle(target))
                fn, inputs = op, {"amount": amount}
        if ok:
            if op in ("dispute", "settle"):
                post = state(NOBODY, client, provider if op == "settle" else NOBODY)
            elif op == "post":
                post = state(NOBODY, client)
            else:
                post = state(a)
            _check("Receipts", fn, pre, inputs, post)
            checked += 1
    return checked


# -- Jobs ------------------------------------------------------------------------------------


def jobs_run(source: str | None, seed: int, jobs: int = 12) -> int:
    """Whole jobs with random escrow, participants and endings (finalised and claimed, or
    cancelled and refunded); every money call is checked."""
    from .conftest import deploy_system

    rng = random.Random(seed)
    system = deploy_system()
    if source:
        with boa.env.prank(system.owner):
            system.jobs = boa.loads_partial(source, name="Jobs").deploy(system.registry.address)
        system.registry = system.registry  # slasher stays the original Jobs: not exercised here
    checked = 0

    def state() -> dict[str, int]:
        return {
            "balance": boa.env.get_balance(system.jobs.address),
            "escrow_held": system.jobs.escrow_held(),
        }

    def paying(fn: str, who, call) -> None:
        nonlocal checked
        pre = state()
        with boa.env.prank(who.address):
            ok = _try(call)
        if ok:
            post = state()
            _check("Jobs", fn, pre, {"paid": pre["balance"] - post["balance"]}, post)
            checked += 1

    for _ in range(jobs):
        escrow = rng.choice([1, 7, ETHER, 10 * ETHER + 3])
        pre = state()
        job_id, requester, aggregator, people = make_job(
            system, trainers=rng.randint(1, 4), rounds=2, escrow=escrow
        )
        post = state()
        _check("Jobs", "create_job", pre, {"value": escrow}, post)
        checked += 1
        if rng.random() < 0.3:
            with boa.env.prank(requester.address):
                system.jobs.cancel(job_id)
        else:
            submit(system, job_id, 1, aggregator, people)
            submit(system, job_id, 2, aggregator, rng.sample(people, rng.randint(1, len(people))))
            boa.env.time_travel(seconds=WINDOW)
            system.jobs.finalize(job_id)
            for p in rng.sample(people, len(people)):
                paying("claim_reward", p, lambda: system.jobs.claim_reward(job_id))
                paying("claim_reward", p, lambda: system.jobs.claim_reward(job_id))  # twice
        paying("refund", requester, lambda: system.jobs.refund(job_id))
        paying("refund", requester, lambda: system.jobs.refund(job_id))
    return checked


# -- tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_registry_matches_its_specification(seed):
    assert registry_run(None, seed) >= 100


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_receipts_matches_its_specification(seed):
    assert receipts_run(None, seed) >= 100


@pytest.mark.parametrize("seed", [1, 2])
def test_jobs_matches_its_specification(seed):
    assert jobs_run(None, seed) >= 30


def _source(name: str, line: str, replacement: str) -> str:
    text = (CONTRACTS_DIR / f"{name}.vy").read_text()
    assert line in text
    return text.replace(line, replacement, 1)


@pytest.mark.parametrize(
    ("runner", "name", "line", "replacement"),
    [
        (registry_run, "Registry", "    self.total_unbonding -= amount\n", ""),
        (
            registry_run,
            "Registry",
            "    self.slashed_pool += taken - reward\n",
            "    self.slashed_pool += taken\n",
        ),
        (receipts_run, "Receipts", "    self.total_earnings -= amount\n", ""),
        (receipts_run, "Receipts", "    self.total_reserved -= b.amount\n", ""),
        (jobs_run, "Jobs", "    self.escrow_held -= amount\n", ""),
    ],
    ids=[
        "registry-withdraw",
        "registry-slash",
        "receipts-earnings",
        "receipts-dispute",
        "jobs-claim",
    ],
)
def test_an_accounting_slip_in_a_contract_is_caught(runner, name, line, replacement):
    with pytest.raises(Mismatch):
        for seed in range(1, 6):
            runner(_source(name, line, replacement), seed)


@pytest.mark.parametrize(
    ("name", "function"), [(s.name, f) for s in spec.SPECS.values() for f in s.transitions]
)
def test_solvency_is_inductive(name, function):
    proof = spec.prove(spec.SPECS[name], function)
    assert proof.proved, proof.counterexample


def _mutated_spec(name: str, function: str, drop: str) -> spec.ContractSpec:
    """The specification with one variable's update of one transition undone."""
    original = spec.SPECS[name]
    inner = original.transitions[function]

    def mutated(step, s, i):
        before = s[drop]
        inner(step, s, i)
        s[drop] = before

    return spec.ContractSpec(
        original.name,
        original.totals,
        original.entries,
        original.inputs,
        {**original.transitions, function: mutated},
    )


@pytest.mark.parametrize(
    ("name", "function", "drop"),
    [
        ("Registry", "withdraw", "total_unbonding"),
        ("Registry", "claim_slash_reward", "total_rewards_owed"),
        ("Jobs", "claim_reward", "escrow_held"),
        ("Receipts", "withdraw_earnings", "total_earnings"),
        ("Receipts", "withdraw", "total_pending"),
        ("Registry", "stake", "balance"),
    ],
)
def test_the_prover_finds_a_broken_transition(name, function, drop):
    proof = spec.prove(_mutated_spec(name, function, drop), function)
    assert not proof.proved and proof.counterexample
