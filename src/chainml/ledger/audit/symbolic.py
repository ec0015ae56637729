"""Mythril over the deployed bytecode: an induction step for each solvency invariant.

This is the bytecode-level companion of ``chainml.ledger.audit.spec`` (whose z3 proofs over
an executable specification are the ones ``make test`` relies on).  For each external
function that can move ether or what a contract owes (``obligations``), the contract's
Vyper source is cut down to that function and instrumented: it first *assumes* the
invariant held before the call (a plain ``assert``, which reverts and so discards the
states where it did not; amounts below 2^128 wei) and *asserts* it on every way out
(``assert ..., UNREACHABLE``: the INVALID opcode Mythril reports).  The harness is compiled
with ``-O none`` for Shanghai, deployed so immutables are real, and its runtime code goes
to Mythril with all storage unconstrained and one transaction of any sender, value and
calldata.

Outcomes: ``violated`` (Mythril found a state and a call that break the invariant — the
planted slips of the tests are found this way), ``proved`` (every path explored and every
solver query decided), or ``incomplete``: Mythril treats a query z3 does not decide within
its timeout as unsatisfiable and silently drops the path, so a run with undecided queries
(counted by ``myth_launcher``) or one that hit its time limit proves nothing.  On these
contracts most steps end incomplete, which is why the proofs are done over the
specification.  A *canary* run (an exit check that always fails) shows whether Mythril
reaches a function's end at all.

Mythril runs from its own virtualenv (``scripts/setup-mythril.sh``; its pins clash with
chainml's).  ``make audit`` runs ``python -m chainml.ledger.audit.symbolic``, which exits 1
only when a violation is found.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import vyper.ast as vy_ast

from chainml.ledger.audit.spec import AMOUNT_BOUND
from chainml.ledger.errors import LedgerError

ROOT = Path(__file__).resolve().parents[4]
MYTH_PYTHON = Path(os.environ.get("CHAINML_MYTH_PYTHON", ROOT / ".venv-mythril" / "bin" / "python"))
LAUNCHER = Path(__file__).with_name("myth_launcher.py")
LOOP_BOUND = 3
# Mythril 0.24 has no TLOAD/TSTORE/MCOPY: on a Cancun build every @nonreentrant path dies at
# the lock and the proof would pass vacuously.  A Shanghai build keeps the lock in storage.
EVM_VERSION = "shanghai"
EXECUTION_TIMEOUT = 300
SOLVER_TIMEOUT_MS = 30_000
_STATE_CHANGING_EXCLUDED = {"view", "pure"}


class SymbolicError(LedgerError):
    """The prover could not run: Mythril missing, a harness that does not compile, …"""


@dataclass(frozen=True)
class Invariant:
    contract: str
    name: str
    owed: str  # Vyper expression of everything the contract owes
    constructor_args: tuple[Any, ...] = ()

    @property
    def expression(self) -> str:
        return f"self.balance >= {self.owed}"

    @property
    def terms(self) -> list[str]:
        return [t.strip() for t in self.owed.split("+")]

    def harness_sum(self, extra: str = "") -> str:
        """The owed sum in wrapping arithmetic: exact under ``bounded``, and far lighter for
        the solver than Vyper's overflow-checked additions."""
        total = self.terms[0]
        for term in [*self.terms[1:], *([extra] if extra else [])]:
            total = f"unsafe_add({total}, {term})"
        return total

    def bounded(self, extra: str = "") -> str:
        """Every amount below 2^128 wei (all the ether there is, ~2^87, is far below)."""
        values = ["self.balance", *self.terms, *([extra] if extra else [])]
        return " and ".join(f"{v} < {AMOUNT_BOUND}" for v in values)


# Jobs' constructor takes the Registry's address; any address does, calls to it are
# unconstrained in the symbolic run.
INVARIANTS = (
    Invariant(
        "Registry",
        "solvency: balance covers stakes, unbonding stake, the slashed pool and rewards owed",
        "self.total_staked + self.total_unbonding + self.slashed_pool + self.total_rewards_owed",
        (3600, 10**18),
    ),
    Invariant(
        "Jobs",
        "solvency: balance covers every job's unpaid escrow",
        "self.escrow_held",
        ("0x" + "11" * 20,),
    ),
    Invariant(
        "Receipts",
        "solvency: balance covers prepaid, reserved, pending and earned balances",
        "self.total_available + self.total_reserved + self.total_pending + self.total_earnings",
        (3600, 3600),
    ),
)


def _decorators(fn: Any) -> set[str]:
    return {d.id for d in fn.decorator_list if isinstance(d, vy_ast.Name)}


# Mythril's callers are fixed non-zero addresses: at a reachable exit this check fails.
CANARY = "msg.sender == empty(address)"


def instrument(
    source: str, invariant: Invariant, *, target: str | None = None, canary: bool = False
) -> str:
    """The contract with the induction step's assumption and check in every state-changing
    external function; with ``target``, a contract of that one external function alone, so
    that a run explores only it (Mythril's ``--transaction-sequences`` still forks into
    every branch of the dispatcher).  With ``canary`` the
    check at each exit is one that always fails, so that Mythril reports every function
    that can complete under the assumption: the proof is not vacuous for a function only
    if its canary is reported."""
    module = vy_ast.parse_to_ast(source)
    lines = source.splitlines()
    edits: list[tuple[int, int, list[str]]] = []  # (first line, last line, replacement)
    post = f"self.balance >= {invariant.harness_sum()}"
    check = f"assert {CANARY if canary else post}, UNREACHABLE"

    def indent(lineno: int) -> str:
        line = lines[lineno - 1]
        return line[: len(line) - len(line.lstrip())]

    for fn in module.get_children(vy_ast.FunctionDef):
        decorators = _decorators(fn)
        if "external" not in decorators:
            continue
        first = fn.body[0]
        if target is not None and fn.name != target:
            start = min(d.lineno for d in fn.decorator_list)
            edits.append((start, fn.end_lineno, []))
            continue
        if decorators & _STATE_CHANGING_EXCLUDED:
            continue
        value = "msg.value" if "payable" in decorators else ""
        ind = indent(first.lineno)
        assume = [
            f"{ind}assert {invariant.bounded(value)}",
            f"{ind}assert self.balance >= {invariant.harness_sum(value)}",
        ]
        edits.append((first.lineno, first.lineno - 1, assume))
        for ret in fn.get_descendants(vy_ast.Return):
            ind = indent(ret.lineno)
            if ret.value is None:
                edits.append((ret.lineno, ret.lineno - 1, [ind + check]))
                continue
            text = "\n".join(lines[ret.lineno - 1 : ret.end_lineno]).strip()
            name = f"sym_ret_{ret.lineno}"
            returns = lines[fn.lineno - 1 :]
            signature = " ".join(line.strip() for line in returns[: first.lineno - fn.lineno])
            rtype = signature.split("->", 1)[1].split(":", 1)[0].strip()
            edits.append(
                (
                    ret.lineno,
                    ret.end_lineno,
                    [
                        f"{ind}{name}: {rtype} = {text.removeprefix('return').strip()}",
                        ind + check,
                        f"{ind}return {name}",
                    ],
                )
            )
        last = fn.body[-1]
        if not isinstance(last, vy_ast.Return):
            ind = indent(first.lineno)
            edits.append((last.end_lineno + 1, last.end_lineno, [ind + check]))
    for start, end, replacement in sorted(edits, key=lambda e: (e[0], e[1]), reverse=True):
        lines[start - 1 : end] = replacement
    return "\n".join(lines) + "\n"


def runtime_code(source: str, constructor_args: Sequence[Any], name: str) -> bytes:
    """Compile the (instrumented) source without optimisation (``-O none`` keeps a linear
    selector dispatch that Mythril follows; the optimised jump table defeats it) for
    ``EVM_VERSION``, deploy it in titanoboa's EVM and return the code as deployed,
    immutables included."""
    import boa
    import vyper
    from eth_abi.abi import encode
    from vyper.compiler.settings import OptimizationLevel, Settings
    from vyper.exceptions import VyperException

    try:
        out = vyper.compile_code(
            source,
            output_formats=["bytecode", "abi"],
            settings=Settings(optimize=OptimizationLevel.NONE, evm_version=EVM_VERSION),
        )
    except VyperException as exc:
        raise SymbolicError(f"{name}: the instrumented contract does not compile: {exc}") from exc
    ctor: dict[str, Any] = next(
        (i for i in out["abi"] if i.get("type") == "constructor"), {"inputs": []}
    )
    types = [i["type"] for i in ctor["inputs"]]
    creation = bytes.fromhex(out["bytecode"].removeprefix("0x")) + encode(
        types, list(constructor_args)
    )
    address, _ = boa.env.deploy_code(bytecode=creation)
    return bytes(boa.env.get_code(address))


@dataclass(frozen=True)
class ProofResult:
    invariant: Invariant
    function: str
    status: str  # "proved", "violated" or "incomplete"
    seconds: float
    instructions_covered: int
    instructions_total: int
    canary: bool = False
    undecided: int = 0  # solver queries that timed out: Mythril drops their paths

    @property
    def proved(self) -> bool:
        return self.status == "proved"

    @property
    def reached(self) -> bool:
        """For a canary run: Mythril reached an exit of the function."""
        return self.status == "violated"


def _myth(code_path: Path, timeout: int) -> tuple[dict[str, Any], int]:
    """Mythril's report, and how many solver queries it left undecided."""
    if not MYTH_PYTHON.exists():
        raise SymbolicError(
            f"Mythril's interpreter is not at {MYTH_PYTHON}: run scripts/setup-mythril.sh"
        )
    cmd = [
        str(MYTH_PYTHON),
        str(LAUNCHER),
        "analyze",
        "-f",
        str(code_path),
        "--bin-runtime",
        "--unconstrained-storage",
        "-m",
        "Exceptions",
        "-t",
        "1",
        "-b",
        str(LOOP_BOUND),
        "--execution-timeout",
        str(timeout),
        "--solver-timeout",
        str(SOLVER_TIMEOUT_MS),
        "-o",
        "jsonv2",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 120, check=False)
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        tail = (done.stderr or done.stdout)[-2000:]
        raise SymbolicError(f"Mythril failed (exit {done.returncode}): {tail}") from None
    if not isinstance(report, list) or not report:
        raise SymbolicError(f"unexpected Mythril report: {done.stdout[:500]}")
    marker = re.findall(r"CHAINML-SOLVER-UNKNOWN (\d+)", done.stderr)
    if not marker:
        raise SymbolicError("Mythril ended without the launcher's count of undecided queries")
    return dict(report[0]), int(marker[-1])


def _source(invariant: Invariant, source: str | None) -> str:
    from chainml.ledger.artifacts import CONTRACTS_DIR

    return source or (CONTRACTS_DIR / f"{invariant.contract}.vy").read_text()


def obligations(
    invariant: Invariant, source: str | None = None
) -> tuple[list[str], dict[str, str]]:
    """(external functions that can change the invariant, {function: why not} for the rest).

    A function can change ``balance >= owed`` only if it receives value (payable), can send
    it (any external call), or writes a storage variable that ``owed`` reads; the writes are
    found on Vyper's typed AST through internal calls.  The others need no proof."""
    from chainml.ledger.audit.static import _Contract

    source = _source(invariant, source)
    with tempfile.TemporaryDirectory(prefix="chainml-sym-") as tmp:
        path = Path(tmp) / f"{invariant.contract}.vy"
        path.write_text(source)
        contract = _Contract(path)
    variables = set(re.findall(r"self\.(\w+)", invariant.owed))
    relevant, skipped = [], {}
    for name, fn in contract.functions.items():
        decorators = contract.decorators(fn)
        if "external" not in decorators:
            continue
        if decorators & _STATE_CHANGING_EXCLUDED:
            skipped[name] = "view or pure"
        elif "payable" in decorators or contract.calls_out(fn):
            relevant.append(name)
        elif contract.storage_written(fn) & variables:
            relevant.append(name)
        else:
            skipped[name] = "neither receives nor sends value nor writes " + ", ".join(
                sorted(variables)
            )
    return relevant, skipped


def prove(
    invariant: Invariant,
    function: str,
    source: str | None = None,
    *,
    canary: bool = False,
    timeout: int = EXECUTION_TIMEOUT,
) -> ProofResult:
    """The induction step for one invariant and one external function (on ``source``
    instead of the project's contract when given: the negative controls pass a mutant).
    With ``canary``, the run that must come back "violated" for the proof to mean
    anything."""
    harness = instrument(_source(invariant, source), invariant, target=function, canary=canary)
    code = runtime_code(harness, invariant.constructor_args, invariant.contract)
    with tempfile.TemporaryDirectory(prefix="chainml-myth-") as tmp:
        path = Path(tmp) / f"{invariant.contract}.hex"
        path.write_text(code.hex())
        started = time.monotonic()
        report, undecided = _myth(path, timeout)
        seconds = time.monotonic() - started
    info = report.get("meta", {}).get("mythril_execution_info", {})
    coverage = info.get("coverage") or [{}]
    covered = max(int(c.get("instructions_covered", 0)) for c in coverage)
    total = max(int(c.get("total_instructions", 0)) for c in coverage)
    if report.get("issues"):
        status = "violated"
    elif undecided or int(info.get("analysis_duration", 0)) / 1e9 >= 0.95 * timeout:
        status = "incomplete"
    else:
        status = "proved"
    return ProofResult(invariant, function, status, seconds, covered, total, canary, undecided)


def prove_all(
    invariants: Sequence[Invariant] = INVARIANTS, *, workers: int | None = None
) -> list[ProofResult]:
    """Every obligation of every invariant, with its canary, on ``workers`` processes."""
    from concurrent.futures import ThreadPoolExecutor

    tasks = [
        (inv, fn, canary)
        for inv in invariants
        for fn in obligations(inv)[0]
        for canary in (False, True)
    ]
    with ThreadPoolExecutor(max_workers=workers or os.cpu_count() or 2) as pool:
        futures = [pool.submit(prove, inv, fn, canary=canary) for inv, fn, canary in tasks]
        return [f.result() for f in futures]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    chosen = [inv for inv in INVARIANTS if not args or inv.contract in args]
    for inv in chosen:
        relevant, skipped = obligations(inv)
        print(f"{inv.contract}: {inv.expression}", flush=True)
        print(f"  to prove: {', '.join(relevant)}", flush=True)
        for name, why in skipped.items():
            print(f"  {name}: no proof needed ({why})", flush=True)
    results = prove_all(chosen)
    for r in results:
        kind = "exit reached" if r.canary else "invariant"
        verdict = ("reached" if r.reached else "not reached") if r.canary else r.status
        print(
            f"{r.invariant.contract:9} {r.function:20} {kind:12} {verdict:11} "
            f"{r.seconds:6.1f} s  {r.undecided} undecided  "
            f"{r.instructions_covered}/{r.instructions_total} instructions"
        )
    violated = [r for r in results if not r.canary and r.status == "violated"]
    proved = [r for r in results if not r.canary and r.proved]
    print(
        f"{len(proved)} of {len(results) // 2} induction steps proved by Mythril, "
        f"{len(violated)} violated; the rest incomplete (see docs/contracts.md)"
    )
    return 1 if violated else 0


if __name__ == "__main__":
    raise SystemExit(main())
