"""Symbolic proofs (Mythril over the deployed bytecode) of the solvency invariants.

Every Mythril run of the module starts at once in a session fixture so that they share the
machine's cores; each test then checks one result.  Three kinds of check keep a proof
honest: the proof itself; a canary run showing that Mythril reaches the exit of every
state-changing function under the induction assumption (a proof that explores nothing
proves nothing); and mutants, each a realistic accounting slip, that must be reported.
"""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor

import pytest
import vyper.ast as vy_ast

from chainml.ledger.artifacts import CONTRACTS_DIR
from chainml.ledger.audit import symbolic
from chainml.ledger.audit.symbolic import INVARIANTS, Invariant

pytestmark = pytest.mark.timeout(1800)

BY_CONTRACT = {inv.contract: inv for inv in INVARIANTS}

# (contract, function the slip is in, line as written, line as mutated)
MUTANTS = [
    ("Registry", "withdraw()", "    self.total_unbonding -= amount\n", ""),
    (
        "Registry",
        "slash(address,uint256,address)",
        "    self.slashed_pool += taken - reward\n",
        "    self.slashed_pool += taken\n",
    ),
    ("Jobs", "claim_reward(uint256)", "    self.escrow_held -= amount\n", ""),
    ("Receipts", "withdraw_earnings()", "    self.total_earnings -= amount\n", ""),
]


def _source(contract: str) -> str:
    return (CONTRACTS_DIR / f"{contract}.vy").read_text()


def _mutant(contract: str, line: str, replacement: str) -> str:
    source = _source(contract)
    assert source.count(line) >= 1, f"{contract}: mutated line not found: {line!r}"
    return source.replace(line, replacement, 1)


@pytest.fixture(scope="module")
def runs():
    if not symbolic.MYTH.exists():
        pytest.fail(
            f"Mythril is not installed at {symbolic.MYTH}: run `make test` or "
            "scripts/setup-mythril.sh"
        )
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures: dict[tuple[str, ...], Future] = {}
        for inv in INVARIANTS:
            futures[("prove", inv.contract)] = pool.submit(symbolic.prove, inv)
            futures[("reach", inv.contract)] = pool.submit(symbolic.reached, inv)
        for contract, function, line, replacement in MUTANTS:
            futures[("mutant", contract, function)] = pool.submit(
                symbolic.prove,
                BY_CONTRACT[contract],
                _mutant(contract, line, replacement),
                only=[function],
            )
        yield {key: f.result() for key, f in futures.items()}


def test_instrumentation_assumes_and_checks_at_every_exit():
    inv = BY_CONTRACT["Jobs"]
    harness = symbolic.instrument(_source("Jobs"), inv)
    module = vy_ast.parse_to_ast(harness)
    functions = {f.name: f for f in module.get_children(vy_ast.FunctionDef)}
    lines = harness.splitlines()

    def text(node) -> str:
        return "\n".join(lines[node.lineno - 1 : node.end_lineno]).strip()

    # payable: the assumption discounts the value just received
    assert text(functions["create_job"].body[0]) == (
        "assert self.balance >= self.escrow_held + msg.value"
    )
    claim = functions["claim_reward"]
    assert text(claim.body[0]) == "assert self.balance >= self.escrow_held"
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


@pytest.mark.parametrize("inv", INVARIANTS, ids=lambda i: i.contract)
def test_invariant_is_proved(runs, inv: Invariant):
    result = runs[("prove", inv.contract)]
    assert result.status == "proved", result.detail


@pytest.mark.parametrize("inv", INVARIANTS, ids=lambda i: i.contract)
def test_proof_reaches_every_state_changing_function(runs, inv: Invariant):
    reached, everything = runs[("reach", inv.contract)]
    assert everything, "no state-changing functions found"
    assert reached == everything, f"never completed under the assumption: {everything - reached}"


@pytest.mark.parametrize(
    ("contract", "function", "line", "replacement"), MUTANTS, ids=[m[1] for m in MUTANTS]
)
def test_accounting_slip_is_reported(runs, contract, function, line, replacement):
    result = runs[("mutant", contract, function)]
    assert result.status == "violated", result
    assert function in result.detail
