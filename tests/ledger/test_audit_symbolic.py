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
OBLIGATIONS = [(inv, fn) for inv in INVARIANTS for fn in symbolic.obligations(inv)[0]]

# (contract, function the slip is in, line as written, line as mutated)
MUTANTS = [
    ("Registry", "withdraw", "    self.total_unbonding -= amount\n", ""),
    (
        "Registry",
        "slash",
        "    self.slashed_pool += taken - reward\n",
        "    self.slashed_pool += taken\n",
    ),
    ("Jobs", "claim_reward", "    self.escrow_held -= amount\n", ""),
    ("Receipts", "withdraw_earnings", "    self.total_earnings -= amount\n", ""),
]


def _source(contract: str) -> str:
    return (CONTRACTS_DIR / f"{contract}.vy").read_text()


def _mutant(contract: str, line: str, replacement: str) -> str:
    source = _source(contract)
    assert line in source, f"{contract}: mutated line not found: {line!r}"
    return source.replace(line, replacement, 1)


@pytest.fixture(scope="module")
def runs():
    if not symbolic.MYTH.exists():
        pytest.fail(f"Mythril is not installed at {symbolic.MYTH}: run `make test`")
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        futures: dict[tuple[str, ...], Future] = {}
        for inv, fn in OBLIGATIONS:
            futures[("prove", inv.contract, fn)] = pool.submit(symbolic.prove, inv, fn)
            futures[("canary", inv.contract, fn)] = pool.submit(
                symbolic.prove, inv, fn, canary=True
            )
        for contract, fn, line, replacement in MUTANTS:
            futures[("mutant", contract, fn)] = pool.submit(
                symbolic.prove, BY_CONTRACT[contract], fn, _mutant(contract, line, replacement)
            )
        yield {key: f.result() for key, f in futures.items()}


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


@pytest.mark.parametrize(("inv", "function"), OBLIGATIONS, ids=_ids(OBLIGATIONS))
def test_invariant_is_preserved(runs, inv: Invariant, function: str):
    result = runs[("prove", inv.contract, function)]
    assert result.status == "proved", result


@pytest.mark.parametrize(("inv", "function"), OBLIGATIONS, ids=_ids(OBLIGATIONS))
def test_proof_reaches_the_functions_exit(runs, inv: Invariant, function: str):
    """Under the assumption, Mythril must get to the end of the function: otherwise the
    proof above would hold for want of any path."""
    assert runs[("canary", inv.contract, function)].reached


@pytest.mark.parametrize(
    ("contract", "function", "line", "replacement"),
    MUTANTS,
    ids=[f"{m[0]}.{m[1]}" for m in MUTANTS],
)
def test_accounting_slip_is_reported(runs, contract, function, line, replacement):
    assert runs[("mutant", contract, function)].status == "violated"
