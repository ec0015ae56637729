"""An executable specification of how ether moves through the contracts, and z3 proofs
that each contract stays solvent.

Every external function that can receive or send ether, or change what a contract owes, is
written here once, as a z3 transition over 256-bit words (integers with explicit ranges,
which z3 decides at once where bit-blasted 256-bit adders defeat it): the conditions under
which it succeeds (the contract's ``assert``s and Vyper's overflow checks, as far as they concern
money) and the state after.  Amounts the contract computes from data the specification
does not track (a participant's share of an escrow) are left free: the proof then covers
every value they could take.

* **proof** (``prove``): for each transition, z3 shows that no state satisfying
  ``balance >= owed`` (with every amount below 2^128 wei) and no input lead to a state
  that violates it.  With the constructor's all-zero start, induction gives every reachable
  state.
* **tie to the contracts** (``evaluate`` + ``tests/contracts/test_spec_differential.py``):
  the same transitions, evaluated on concrete values, are compared after every call of a
  random call sequence against the real contracts in titanoboa: whenever a contract call
  succeeds, its guard must hold and every tracked variable must equal the specification's.

Forced ether (a selfdestruct beneficiary, block rewards) only raises ``balance``, which
cannot break ``balance >= owed``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import z3

WORD = 256
AMOUNT_BOUND = 2**128


WORD_LIMIT = 2**WORD


def _bv(value: int) -> z3.ArithRef:
    """A 256-bit word, as an unbounded integer: linear integer arithmetic is easy for z3,
    while bit-blasted 256-bit adders defeat it; ranges and overflow are explicit guards."""
    return z3.IntVal(value)


@dataclass
class Step:
    """One transition being written: guards collected, checked arithmetic as guards."""

    guards: list[Any] = field(default_factory=list)

    def require(self, condition: Any) -> None:
        self.guards.append(condition)

    def add(self, a: Any, b: Any) -> Any:
        total = a + b
        self.guards.append(total < WORD_LIMIT)  # Vyper reverts on overflow
        return total

    def sub(self, a: Any, b: Any) -> Any:
        self.guards.append(a >= b)  # Vyper reverts on underflow
        return a - b

    def send(self, state: dict[str, Any], amount: Any) -> None:
        """Ether leaves the contract (raw_call / send): the call fails without funds."""
        state["balance"] = self.sub(state["balance"], amount)


Transition = Callable[[Step, dict[str, Any], dict[str, Any]], None]


@dataclass(frozen=True)
class ContractSpec:
    name: str
    totals: tuple[str, ...]  # what the contract owes
    entries: tuple[str, ...]  # per-account values a transition reads or writes
    inputs: dict[str, tuple[str, ...]]  # function -> its inputs (value, amount, ...)
    transitions: dict[str, Transition]

    def variables(self) -> tuple[str, ...]:
        return ("balance", *self.totals, *self.entries)

    def owed(self, state: dict[str, Any]) -> Any:
        return sum((state[t] for t in self.totals[1:]), state[self.totals[0]])

    def solvent(self, state: dict[str, Any]) -> Any:
        return state["balance"] >= self.owed(state)

    def transition(
        self, function: str, pre: dict[str, Any], inputs: dict[str, Any]
    ) -> tuple[Any, dict[str, Any]]:
        """(success condition, state after) of ``function`` from ``pre`` with ``inputs``."""
        step = Step()
        post = dict(pre)
        self.transitions[function](step, post, inputs)
        return z3.And(*step.guards) if step.guards else z3.BoolVal(True), post


# -- Registry --------------------------------------------------------------------------------


def _registry_stake_in(step: Step, s: dict[str, Any], i: dict[str, Any]) -> None:
    # register (value may be zero) and stake: the value received becomes the sender's stake
    s["balance"] = step.add(s["balance"], i["value"])
    s["stake[sender]"] = step.add(s["stake[sender]"], i["value"])
    s["total_staked"] = step.add(s["total_staked"], i["value"])


def _registry_stake(step: Step, s: dict[str, Any], i: dict[str, Any]) -> None:
    step.require(i["value"] != 0)
    _registry_stake_in(step, s, i)


def _registry_request_unbond(step: Step, s: dict[str, Any], i: dict[str, Any]) -> None:
    a = i["amount"]
    step.require(a != 0)
    s["stake[sender]"] = step.sub(s["stake[sender]"], a)
    s["total_staked"] = step.sub(s["total_staked"], a)
    s["unbonding[sender]"] = step.add(s["unbonding[sender]"], a)
    s["total_unbonding"] = step.add(s["total_unbonding"], a)


def _registry_withdraw(step: Step, s: dict[str, Any], i: dict[str, Any]) -> None:
    a = s["unbonding[sender]"]
    step.require(a != 0)
    s["unbonding[sender]"] = _bv(0)
    s["total_unbonding"] = step.sub(s["total_unbonding"], a)
    step.send(s, a)


def _registry_slash(step: Step, s: dict[str, Any], i: dict[str, Any]) -> None:
    active, bonding = s["stake[offender]"], s["unbonding[offender]"]
    both = step.add(active, bonding)
    taken = z3.If(i["amount"] < both, i["amount"], both)
    from_active = z3.If(taken < active, taken, active)
    from_bonding = step.sub(taken, from_active)
    s["stake[offender]"] = step.sub(active, from_active)
    s["total_staked"] = step.sub(s["total_staked"], from_active)
    s["unbonding[offender]"] = step.sub(bonding, from_bonding)
    s["total_unbonding"] = step.sub(s["total_unbonding"], from_bonding)
    reward = z3.If(i["has_beneficiary"] != 0, taken / 2, _bv(0))
    s["slashed_pool"] = step.add(s["slashed_pool"], step.sub(taken, reward))
    s["owed[beneficiary]"] = step.add(s["owed[beneficiary]"], reward)
    s["total_rewards_owed"] = step.add(s["total_rewards_owed"], reward)


def _registry_claim(step: Step, s: dict[str, Any], i: dict[str, Any]) -> None:
    a = s["owed[sender]"]
    step.require(a != 0)
    s["owed[sender]"] = _bv(0)
    s["total_rewards_owed"] = step.sub(s["total_rewards_owed"], a)
    step.send(s, a)


REGISTRY = ContractSpec(
    "Registry",
    ("total_staked", "total_unbonding", "slashed_pool", "total_rewards_owed"),
    (
        "stake[sender]",
        "unbonding[sender]",
        "owed[sender]",
        "stake[offender]",
        "unbonding[offender]",
        "owed[beneficiary]",
    ),
    {
        "register": ("value",),
        "stake": ("value",),
        "request_unbond": ("amount",),
        "withdraw": (),
        "slash": ("amount", "has_beneficiary"),
        "claim_slash_reward": (),
    },
    {
        "register": _registry_stake_in,
        "stake": _registry_stake,
        "request_unbond": _registry_request_unbond,
        "withdraw": _registry_withdraw,
        "slash": _registry_slash,
        "claim_slash_reward": _registry_claim,
    },
)

# -- Jobs ------------------------------------------------------------------------------------


def _jobs_create(step: Step, s: dict[str, Any], i: dict[str, Any]) -> None:
    step.require(i["value"] != 0)
    s["balance"] = step.add(s["balance"], i["value"])
    s["escrow_held"] = step.add(s["escrow_held"], i["value"])


def _jobs_pay(step: Step, s: dict[str, Any], i: dict[str, Any]) -> None:
    # claim_reward and refund: the amount is the job's business (a share of its escrow, or
    # what is left); whatever it is, it leaves escrow_held and the balance together
    s["escrow_held"] = step.sub(s["escrow_held"], i["paid"])
    step.send(s, i["paid"])


JOBS = ContractSpec(
    "Jobs",
    ("escrow_held",),
    (),
    {"create_job": ("value",), "claim_reward": ("paid",), "refund": ("paid",)},
    {"create_job": _jobs_create, "claim_reward": _jobs_pay, "refund": _jobs_pay},
)

# -- Receipts --------------------------------------------------------------------------------


def _receipts_deposit(step: Step, s: dict[str, Any], i: dict[str, Any]) -> None:
    step.require(i["value"] != 0)
    s["balance"] = step.add(s["balance"], i["value"])
    s["available[sender]"] = step.add(s["available[sender]"], i["value"])
    s["total_available"] = step.add(s["total_available"], i["value"])


def _receipts_request(step: Step, s: dict[str, Any], i: dict[str, Any]) -> None:
    a = i["amount"]
    step.require(a != 0)
    s["available[sender]"] = step.sub(s["available[sender]"], a)
    s["total_available"] = step.sub(s["total_available"], a)
    s["pending[sender]"] = step.add(s["pending[sender]"], a)
    s["total_pending"] = step.add(s["total_pending"], a)


def _receipts_withdraw(step: Step, s: dict[str, Any], i: dict[str, Any]) -> None:
    a = s["pending[sender]"]
    step.require(a != 0)
    s["pending[sender]"] = _bv(0)
    s["total_pending"] = step.sub(s["total_pending"], a)
    step.send(s, a)


def _receipts_post(step: Step, s: dict[str, Any], i: dict[str, Any]) -> None:
    a = i["amount"]
    s["available[client]"] = step.sub(s["available[client]"], a)
    s["total_available"] = step.sub(s["total_available"], a)
    s["reserved[client]"] = step.add(s["reserved[client]"], a)
    s["total_reserved"] = step.add(s["total_reserved"], a)


def _receipts_dispute(step: Step, s: dict[str, Any], i: dict[str, Any]) -> None:
    a = i["amount"]  # the batch's amount
    s["reserved[client]"] = step.sub(s["reserved[client]"], a)
    s["total_reserved"] = step.sub(s["total_reserved"], a)
    s["available[client]"] = step.add(s["available[client]"], a)
    s["total_available"] = step.add(s["total_available"], a)


def _receipts_settle(step: Step, s: dict[str, Any], i: dict[str, Any]) -> None:
    a = i["amount"]
    s["reserved[client]"] = step.sub(s["reserved[client]"], a)
    s["total_reserved"] = step.sub(s["total_reserved"], a)
    s["earnings[provider]"] = step.add(s["earnings[provider]"], a)
    s["total_earnings"] = step.add(s["total_earnings"], a)


def _receipts_withdraw_earnings(step: Step, s: dict[str, Any], i: dict[str, Any]) -> None:
    a = s["earnings[sender]"]
    step.require(a != 0)
    s["earnings[sender]"] = _bv(0)
    s["total_earnings"] = step.sub(s["total_earnings"], a)
    step.send(s, a)


RECEIPTS = ContractSpec(
    "Receipts",
    ("total_available", "total_reserved", "total_pending", "total_earnings"),
    (
        "available[sender]",
        "pending[sender]",
        "earnings[sender]",
        "available[client]",
        "reserved[client]",
        "earnings[provider]",
    ),
    {
        "deposit": ("value",),
        "request_withdrawal": ("amount",),
        "withdraw": (),
        "post_batch": ("amount",),
        "dispute": ("amount",),
        "settle": ("amount",),
        "withdraw_earnings": (),
    },
    {
        "deposit": _receipts_deposit,
        "request_withdrawal": _receipts_request,
        "withdraw": _receipts_withdraw,
        "post_batch": _receipts_post,
        "dispute": _receipts_dispute,
        "settle": _receipts_settle,
        "withdraw_earnings": _receipts_withdraw_earnings,
    },
)

SPECS = {spec.name: spec for spec in (REGISTRY, JOBS, RECEIPTS)}


# -- proof -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proof:
    contract: str
    function: str
    proved: bool
    seconds: float
    counterexample: dict[str, int] | None = None


def prove(spec: ContractSpec, function: str) -> Proof:
    """The induction step for one transition: unsat(bounds ∧ solvent(pre) ∧ guard ∧
    ¬solvent(post))."""
    pre = {v: z3.Int(f"pre.{v}") for v in spec.variables()}
    inputs = {n: z3.Int(f"in.{n}") for n in spec.inputs[function]}
    guard, post = spec.transition(function, pre, inputs)
    solver = z3.Solver()
    solver.add(*[z3.And(x >= 0, x < AMOUNT_BOUND) for x in [*pre.values(), *inputs.values()]])
    solver.add(spec.solvent(pre), guard, z3.Not(spec.solvent(post)))
    started = time.perf_counter()
    result = solver.check()
    seconds = time.perf_counter() - started
    if result == z3.unsat:
        return Proof(spec.name, function, True, seconds)
    if result == z3.sat:
        model = solver.model()
        example = {str(d): model[d].as_long() for d in model.decls()}
        return Proof(spec.name, function, False, seconds, example)
    raise RuntimeError(f"z3 could not decide {spec.name}.{function}: {solver.reason_unknown()}")


def prove_all() -> list[Proof]:
    return [prove(spec, fn) for spec in SPECS.values() for fn in spec.transitions]


# -- concrete evaluation (the tie to the real contracts) -------------------------------------


def evaluate(
    spec: ContractSpec, function: str, pre: dict[str, int], inputs: dict[str, int]
) -> tuple[bool, dict[str, int]]:
    """The transition on concrete values: (would succeed, state after)."""
    guard, post = spec.transition(
        function,
        {k: _bv(pre[k]) for k in spec.variables()},
        {k: _bv(inputs[k]) for k in spec.inputs[function]},
    )
    ok = z3.is_true(z3.simplify(guard))
    return ok, {k: z3.simplify(v).as_long() for k, v in post.items()}


def main() -> int:
    proofs = prove_all()
    for p in proofs:
        verdict = "proved" if p.proved else f"VIOLATED {p.counterexample}"
        print(f"{p.contract:9} {p.function:20} {verdict} ({p.seconds * 1000:.1f} ms)")
    return 0 if all(p.proved for p in proofs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
