"""Bytecode-level checks of the solvency invariants with Mythril (``make audit``).

The proofs that `make test` relies on are z3 proofs over the executable specification
(tests/contracts/test_spec_differential.py).  Mythril works on the compiled bytecode but
leaves some solver queries undecided, so its induction steps end "incomplete" rather than
"proved" (docs/contracts.md).  What it does show, and what these tests check: it finds each
planted accounting slip in the bytecode, and it finds no violation in the contracts.  The
harness construction itself is checked without Mythril, in every `make test`.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
import vyper.ast as vy_ast

from chainml.ledger.artifacts import CONTRACTS_DIR
from chainml.ledger.audit import symbolic
from chainml.ledger.audit.symbolic import INVARIANTS, Invariant

BY_CONTRACT = {inv.contract: inv for inv in INVARIANTS}
OBLIGATIONS = [(inv, fn) for inv in INVARIANTS for fn in symbolic.obligations(inv)[0]]

# Mythril's known misses, the same paths its canary never reaches: strict, so that a
# Mythril that starts finding them is noticed.
_SLASH_MISSED = pytest.mark.xfail(
    strict=True, reason="the slash path needs solver queries over Mythril's 30 s timeout"
)
_JOBS_MISSED = pytest.mark.xfail(
    strict=True, reason="copying the Job struct needs more loop iterations than -b 3"
)

# (contract, function the slip is in, line as written, line as mutated)
MUTANTS = [
    ("Registry", "withdraw", "    self.total_unbonding -= amount\n", ""),
    pytest.param(
        "Registry",
        "slash",
        "    self.slashed_pool += taken - reward\n",
        "    self.slashed_pool += taken\n",
        marks=_SLASH_MISSED,
    ),
    pytest.param(
        "Jobs", "claim_reward", "    self.escrow_held -= amount\n", "", marks=_JOBS_MISSED
    ),
    ("Receipts", "withdraw_earnings", "    self.total_earnings -= amount\n", ""),
]


def _source(contract: str) -> str:
    return (CONTRACTS_DIR / f"{contract}.vy").read_text()


def _mutant(contract: str, line: str, replacement: str) -> str:
    source = _source(contract)
    assert line in source, f"{contract}: mutated line not found: {line!r}"
    return source.replace(line, replacement, 1)


def _all_at_once(tasks: dict) -> dict:
    """Run Mythril for every task at once, sharing the cores."""
    if not symbolic.MYTH_PYTHON.exists():
        pytest.fail(f"Mythril is not installed at {symbolic.MYTH_PYTHON}: run `make audit`")
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures: dict[tuple[str, ...], Future] = {
            key: pool.submit(fn, *args, **kw) for key, (fn, args, kw) in tasks.items()
        }
        return {key: f.result() for key, f in futures.items()}


@pytest.fixture(scope="module")
def proofs():
    return _all_at_once(
        {(inv.contract, fn): (symbolic.prove, (inv, fn), {}) for inv, fn in OBLIGATIONS}
    )


@pytest.fixture(scope="module")
def mutants():
    return _all_at_once(
        {
            (contract, fn): (
                symbolic.prove,
                (BY_CONTRACT[contract], fn, _mutant(contract, line, replacement)),
                {},
            )
            for contract, fn, line, replacement in (getattr(m, "values", m) for m in MUTANTS)
        }
    )


def test_obligations_cover_every_function_that_can_move_the_totals():
    relevant, skipped = symbolic.obligations(BY_CONTRACT["Registry"])
    assert {"register", "stake", "request_unbond", "withdraw", "slash"} <= set(relevant)
    assert {"rotate_key", "set_endpoint", "set_slasher"} <= set(skipped)
    # a function that starts writing a total through an internal call needs a proof
    source = _source("Registry").replace(
        "    self.identities[msg.sender].endpoint = endpoint\n",
        "    self.identities[msg.sender].endpoint = endpoint\n    self._add_stake(msg.sender, 1)\n",
    )
    assert "set_endpoint" in symbolic.obligations(BY_CONTRACT["Registry"], source)[0]


def test_instrumentation_assumes_and_checks_at_every_exit():
    inv = BY_CONTRACT["Jobs"]
    harness = symbolic.instrument(_source("Jobs"), inv)
    module = vy_ast.parse_to_ast(harness)
    functions = {f.name: f for f in module.get_children(vy_ast.FunctionDef)}
    lines = harness.splitlines()

    def text(node) -> str:
        return "\n".join(lines[node.lineno - 1 : node.end_lineno]).strip()

    bound = str(2**128)
    # payable: the assumption discounts the value just received
    create = functions["create_job"]
    assert text(create.body[0]) == (
        f"assert self.balance < {bound} and self.escrow_held < {bound} and msg.value < {bound}"
    )
    assert text(create.body[1]) == (
        "assert self.balance >= unsafe_add(self.escrow_held, msg.value)"
    )
    claim = functions["claim_reward"]
    assert text(claim.body[1]) == "assert self.balance >= self.escrow_held"
    assert text(claim.body[-2]) == "assert self.balance >= self.escrow_held, UNREACHABLE"
    assert text(claim.body[-1]).startswith("return sym_ret_")
    # every early return in a state-changing function is preceded by the check
    for fn in functions.values():
        decorators = {d.id for d in fn.decorator_list if isinstance(d, vy_ast.Name)}
        if "external" not in decorators or decorators & {"view", "pure"}:
            assert "UNREACHABLE" not in text(fn)
            continue
        for ret in fn.get_descendants(vy_ast.Return):
            assert "UNREACHABLE" in lines[ret.lineno - 2], (fn.name, ret.lineno)
    assert symbolic.instrument(_source("Jobs"), inv, canary=True).count(
        symbolic.CANARY
    ) == harness.count("UNREACHABLE")
    # one function alone: the others are gone, so a run explores only it
    alone = vy_ast.parse_to_ast(symbolic.instrument(_source("Jobs"), inv, target="refund"))
    external = [
        f.name
        for f in alone.get_children(vy_ast.FunctionDef)
        if any(getattr(d, "id", None) == "external" for d in f.decorator_list)
    ]
    assert external == ["refund"]


def test_harness_build_keeps_lock_in_storage():
    """Mythril has no transient storage: a Cancun build would make every @nonreentrant path
    die at the lock and every proof pass vacuously."""
    ops = _opcodes(symbolic.runtime_code(_source("Receipts"), (1, 1), "Receipts"))
    assert 0x5C not in ops and 0x5D not in ops  # TLOAD, TSTORE
    assert 0x55 in ops  # SSTORE


def _opcodes(code: bytes) -> bytes:
    out, i = bytearray(), 0
    while i < len(code):
        op = code[i]
        out.append(op)
        i += 1 + (op - 0x5F if 0x60 <= op <= 0x7F else 0)  # skip PUSH immediates
    return bytes(out)


def _ids(pairs):
    return [f"{inv.contract}.{fn}" for inv, fn in pairs]


@pytest.mark.mythril
@pytest.mark.timeout(3600)
@pytest.mark.parametrize(("inv", "function"), OBLIGATIONS, ids=_ids(OBLIGATIONS))
def test_no_violation_in_the_contracts(proofs, inv: Invariant, function: str):
    result = proofs[(inv.contract, function)]
    assert result.status in ("proved", "incomplete"), result


@pytest.mark.mythril
@pytest.mark.timeout(3600)
@pytest.mark.parametrize(
    ("contract", "function", "line", "replacement"),
    MUTANTS,
    ids=[".".join(getattr(m, "values", m)[:2]) for m in MUTANTS],
)
def test_accounting_slip_is_reported(mutants, contract, function, line, replacement):
    assert mutants[(contract, function)].status == "violated"
