"""Symbolic proofs of the contracts' solvency invariants with Mythril over deployed bytecode.

Each proof is an induction on the transaction sequence, both steps checked by an SMT solver
(Mythril's symbolic EVM over z3):

* **step**: the contract's Vyper source is instrumented so that every state-changing
  external function first *assumes* the invariant held before the call (a plain ``assert``,
  which reverts and so prunes the paths where it did not) and *asserts* it on every way out
  (``assert ..., UNREACHABLE``, which compiles to the INVALID opcode that Mythril reports).
  The instrumented contract is deployed (so immutables are real), its runtime code is
  handed to Mythril with **all storage symbolic** (``--unconstrained-storage``) and one
  transaction of any sender, value and calldata.  No report means: from *every* state that
  satisfies the invariant, no transaction can break it;
* **base**: the constructor leaves every total at zero, which the unit tests check.

Together they cover every reachable state, not a bounded number of transactions.  Bounds
that remain, stated in docs/contracts.md: loops are unrolled ``LOOP_BOUND`` times (paths
beyond are not explored), calls out of the contract return unconstrained data and do not
re-enter (re-entry is closed by ``@nonreentrant`` and checked by the static analyser), and a
run that reaches its time limit is reported as incomplete, never as proved.

Mythril runs from its own virtualenv (``scripts/setup-mythril.sh``): its pins clash with
chainml's.  ``python -m chainml.ledger.audit.symbolic`` proves them all and exits 1 unless
every one is proved.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import vyper.ast as vy_ast

from chainml.crypto import keccak256
from chainml.ledger.errors import LedgerError

ROOT = Path(__file__).resolve().parents[4]
MYTH = Path(os.environ.get("CHAINML_MYTH", ROOT / ".venv-mythril" / "bin" / "myth"))
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


def instrument(source: str, invariant: Invariant, *, canary: bool = False) -> str:
    """The contract with the induction step's assumption and check in every state-changing
    external function.  With ``canary`` the check at each exit is one that always fails, so
    that Mythril reports every function that can complete under the assumption: the proof
    is not vacuous for a function only if its canary is reported."""
    module = vy_ast.parse_to_ast(source)
    lines = source.splitlines()
    edits: list[tuple[int, int, list[str]]] = []  # (first line, last line, replacement)
    check = f"assert {CANARY if canary else invariant.expression}, UNREACHABLE"

    def indent(lineno: int) -> str:
        line = lines[lineno - 1]
        return line[: len(line) - len(line.lstrip())]

    for fn in module.get_children(vy_ast.FunctionDef):
        decorators = _decorators(fn)
        if "external" not in decorators or decorators & _STATE_CHANGING_EXCLUDED:
            continue
        first = fn.body[0]
        value = " + msg.value" if "payable" in decorators else ""
        assume = f"assert self.balance >= {invariant.owed}{value}"
        ind = indent(first.lineno)
        edits.append((first.lineno, first.lineno - 1, [ind + assume]))
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
    from eth_abi import encode
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
    ctor = next((i for i in out["abi"] if i.get("type") == "constructor"), {"inputs": []})
    types = [i["type"] for i in ctor["inputs"]]
    creation = bytes.fromhex(out["bytecode"].removeprefix("0x")) + encode(
        types, list(constructor_args)
    )
    address, _ = boa.env.deploy_code(bytecode=creation)
    return bytes(boa.env.get_code(address))


@dataclass(frozen=True)
class ProofResult:
    invariant: Invariant
    status: str  # "proved", "violated" or "incomplete"
    seconds: float
    instructions_covered: int
    instructions_total: int
    detail: str = ""

    @property
    def proved(self) -> bool:
        return self.status == "proved"


def _myth(code_path: Path, timeout: int, selectors: Sequence[bytes] = ()) -> dict[str, Any]:
    if not MYTH.exists():
        raise SymbolicError(f"Mythril is not installed at {MYTH}: run scripts/setup-mythril.sh")
    cmd = [
        str(MYTH),
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
    if selectors:
        only = ",".join("0x" + s.hex() for s in selectors)
        cmd += ["--transaction-sequences", f"[[{only}]]"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 120, check=False)
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        tail = (done.stderr or done.stdout)[-2000:]
        raise SymbolicError(f"Mythril failed (exit {done.returncode}): {tail}") from None
    if not isinstance(report, list) or not report:
        raise SymbolicError(f"unexpected Mythril report: {done.stdout[:500]}")
    return dict(report[0])


def state_changing(source: str) -> dict[bytes, str]:
    """Selector to signature of every external function that is neither view nor pure."""
    import vyper

    abi = vyper.compile_code(source, output_formats=["abi"])["abi"]
    out = {}
    for item in abi:
        if item.get("type") == "function" and item["stateMutability"] not in ("view", "pure"):
            signature = f"{item['name']}({','.join(i['type'] for i in item['inputs'])})"
            out[keccak256(signature.encode())[:4]] = signature
    return out


def _run(
    invariant: Invariant, harness: str, only: Sequence[str], timeout: int
) -> tuple[dict[str, Any], float]:
    code = runtime_code(harness, invariant.constructor_args, invariant.contract)
    with tempfile.TemporaryDirectory(prefix="chainml-myth-") as tmp:
        path = Path(tmp) / f"{invariant.contract}.hex"
        path.write_text(code.hex())
        started = time.monotonic()
        report = _myth(path, timeout, [keccak256(sig.encode())[:4] for sig in only])
        return report, time.monotonic() - started


def _failing_selectors(report: dict[str, Any]) -> set[bytes]:
    found = set()
    for issue in report.get("issues", []):
        for case in issue.get("extra", {}).get("testCases", []):
            steps = case.get("steps") or [{}]
            data = str(steps[-1].get("input", ""))
            if data.startswith("0x") and len(data) >= 10:
                found.add(bytes.fromhex(data[2:10]))
    return found


def _source(invariant: Invariant, source: str | None) -> str:
    from chainml.ledger.artifacts import CONTRACTS_DIR

    return source or (CONTRACTS_DIR / f"{invariant.contract}.vy").read_text()


def prove(
    invariant: Invariant,
    source: str | None = None,
    *,
    only: Sequence[str] = (),
    timeout: int = EXECUTION_TIMEOUT,
) -> ProofResult:
    """Run the induction step for one invariant (on ``source`` instead of the project's
    contract when given: the negative controls pass a mutant), over every external function
    or, with ``only``, over the ones whose signatures (``"withdraw()"``) it names."""
    source = _source(invariant, source)
    report, seconds = _run(invariant, instrument(source, invariant), only, timeout)
    info = report.get("meta", {}).get("mythril_execution_info", {})
    coverage = info.get("coverage") or [{}]
    covered = max(int(c.get("instructions_covered", 0)) for c in coverage)
    total = max(int(c.get("total_instructions", 0)) for c in coverage)
    failing = _failing_selectors(report)
    if report.get("issues"):
        names = state_changing(source)
        which = sorted(names.get(sel, "0x" + sel.hex()) for sel in failing)
        detail = f"counterexample: a call of {', '.join(which) or 'unknown'}"
        return ProofResult(invariant, "violated", seconds, covered, total, detail)
    duration = int(info.get("analysis_duration", 0)) / 1e9
    if duration >= 0.95 * timeout:
        return ProofResult(invariant, "incomplete", seconds, covered, total, "time limit reached")
    return ProofResult(invariant, "proved", seconds, covered, total)


def reached(
    invariant: Invariant, source: str | None = None, *, timeout: int = EXECUTION_TIMEOUT
) -> tuple[set[str], set[str]]:
    """(functions whose exit Mythril reaches under the induction assumption, all
    state-changing functions): a proof covers a function only if it is in the first set."""
    source = _source(invariant, source)
    report, _ = _run(invariant, instrument(source, invariant, canary=True), (), timeout)
    names = state_changing(source)
    return {names[s] for s in _failing_selectors(report) if s in names}, set(names.values())


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    wanted = set(args)
    results = []
    for invariant in INVARIANTS:
        if wanted and invariant.contract not in wanted:
            continue
        print(f"proving {invariant.contract}: {invariant.name} …", file=sys.stderr, flush=True)
        result = prove(invariant)
        results.append(result)
        print(
            f"{invariant.contract:9} {result.status:10} {result.seconds:6.1f} s  "
            f"{result.instructions_covered}/{result.instructions_total} instructions  "
            f"{invariant.expression} {result.detail}"
        )
    return 0 if all(r.proved for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
