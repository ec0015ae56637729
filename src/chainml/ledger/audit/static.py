"""Static analysis of Vyper 0.4 contracts that fails the build on a finding.

Slither does not read Vyper 0.4 (crytic-compile fails on its source maps), so chainml
checks its contracts with this substitute, built on Vyper's own front end: the typed AST
after semantic analysis, so names, storage variables and internal calls are resolved by
the compiler rather than guessed from text.

Checks (id: what it reports):

- ``state-after-call``: a storage write that can run after an external call in the same
  function (``extcall``, ``raw_call``, ``send``, ``create_*``), directly or through an
  internal function; inside a loop that makes a call, every write in the loop counts.
- ``unguarded-value-transfer``: a function that can send value without ``@nonreentrant``
  (or the module pragma ``nonreentrancy on``).
- ``unchecked-raw-call``: ``raw_call(..., revert_on_failure=False)`` whose success flag is
  not tested by an ``assert`` or ``if``.
- ``missing-access-control``: an ``@external`` function that writes storage but never
  reads ``msg.sender`` (itself or through internal functions).  A function meant to be
  open to anyone carries ``# @audit permissionless: <reason>`` on the line above its
  decorators; waivers are counted and listed.
- ``tx-origin``, ``selfdestruct``: any use.

Limits, compared with Slither: no data-flow or taint analysis across contracts, no
cross-function reentrancy reasoning beyond the per-function rules above, and
``missing-access-control`` is a heuristic (reading ``msg.sender`` is taken as a check).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import vyper.ast as vy_ast
from vyper.compiler.input_bundle import FileInput
from vyper.compiler.phases import CompilerData
from vyper.exceptions import VyperException

from chainml.ledger.errors import LedgerError

CALLS_OUT = {
    "raw_call",
    "send",
    "create_minimal_proxy_to",
    "create_copy_of",
    "create_from_blueprint",
}
VALUE_SENDERS = {"send"}
STORAGE_MUTATORS = {"append", "pop"}
WAIVER = re.compile(r"#\s*@audit\s+permissionless:\s*(\S.*)$")
PRAGMA_NONREENTRANT = re.compile(r"#\s*pragma\s+nonreentrancy\s+on", re.I)


class AnalysisError(LedgerError):
    """A contract could not be parsed or analysed."""


@dataclass(frozen=True)
class Finding:
    check: str
    severity: str
    path: str
    line: int
    function: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}: [{self.severity}] {self.check}"
        return f"{where} in {self.function}: {self.message}"


@dataclass(frozen=True)
class Waiver:
    path: str
    line: int
    function: str
    reason: str


@dataclass
class Report:
    findings: list[Finding]
    waivers: list[Waiver]
    contracts: int
    functions: int


def _is_self_attr(node: Any) -> bool:
    return (
        isinstance(node, vy_ast.Attribute)
        and isinstance(node.value, vy_ast.Name)
        and node.value.id == "self"
    )


def _root_self_attr(node: Any) -> str | None:
    """``self.x`` at the root of an assignment target (``self.x[k].y`` gives ``x``)."""
    while isinstance(node, vy_ast.Subscript | vy_ast.Attribute):
        if _is_self_attr(node):
            return str(node.attr)
        node = node.value
    return None


def _call_name(call: Any) -> str | None:
    func = call.func
    if isinstance(func, vy_ast.Name):
        return str(func.id)
    if isinstance(func, vy_ast.Attribute):
        return str(func.attr)
    return None


class _Contract:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.source = path.read_text()
        self.lines = self.source.splitlines()
        try:
            data = CompilerData(FileInput(0, path, path, self.source))
            self.module = data.annotated_vyper_module
        except VyperException as exc:
            raise AnalysisError(f"{path}: Vyper cannot analyse it: {exc}") from exc
        self.functions = {f.name: f for f in self.module.get_children(vy_ast.FunctionDef)}
        self.storage = {
            d.target.id
            for d in self.module.get_children(vy_ast.VariableDecl)
            if not (d.is_constant or d.is_immutable or d.is_transient)
        }
        self.module_nonreentrant = bool(PRAGMA_NONREENTRANT.search(self.source))
        self._calls_out: dict[str, bool] = {}
        self._writes: dict[str, bool] = {}
        self._reads_sender: dict[str, bool] = {}

    # -- node classification -----------------------------------------------------------

    def _internal_target(self, call: Any) -> Any | None:
        func = call.func
        if _is_self_attr(func) and func.attr in self.functions:
            return self.functions[func.attr]
        return None

    def is_external_call(self, node: Any) -> bool:
        if isinstance(node, vy_ast.ExtCall):
            return True
        return (
            isinstance(node, vy_ast.Call)
            and isinstance(node.func, vy_ast.Name)
            and node.func.id in CALLS_OUT
        )

    def storage_write(self, node: Any) -> str | None:
        """The storage variable a statement-level node writes, if any."""
        if isinstance(node, vy_ast.Assign | vy_ast.AugAssign):
            name = _root_self_attr(node.target)
            return name if name in self.storage else None
        if isinstance(node, vy_ast.Call) and isinstance(node.func, vy_ast.Attribute):
            if node.func.attr in STORAGE_MUTATORS:
                name = _root_self_attr(node.func.value)
                return name if name in self.storage else None
        return None

    # -- transitive facts about functions ------------------------------------------------

    def _transitive(
        self, fn: Any, cache: dict[str, bool], test: Any, seen: frozenset[str] = frozenset()
    ) -> bool:
        if fn.name in cache:
            return cache[fn.name]
        result = False
        for node in fn.get_descendants():
            if test(node):
                result = True
                break
            if isinstance(node, vy_ast.Call):
                target = self._internal_target(node)
                if target is not None and target.name not in seen:
                    if self._transitive(target, cache, test, seen | {fn.name}):
                        result = True
                        break
        cache[fn.name] = result
        return result

    def calls_out(self, fn: Any) -> bool:
        return self._transitive(fn, self._calls_out, self.is_external_call)

    def writes_storage(self, fn: Any) -> bool:
        return self._transitive(fn, self._writes, lambda n: self.storage_write(n) is not None)

    def storage_written(self, fn: Any, seen: frozenset[str] = frozenset()) -> set[str]:
        """Every storage variable ``fn`` can write, itself or through internal functions."""
        names: set[str] = set()
        for node in fn.get_descendants():
            name = self.storage_write(node)
            if name is not None:
                names.add(name)
            elif isinstance(node, vy_ast.Call):
                target = self._internal_target(node)
                if target is not None and target.name not in seen:
                    names |= self.storage_written(target, seen | {fn.name})
        return names

    def reads_sender(self, fn: Any) -> bool:
        def test(n: Any) -> bool:
            return (
                isinstance(n, vy_ast.Attribute)
                and n.attr == "sender"
                and isinstance(n.value, vy_ast.Name)
                and n.value.id == "msg"
            )

        return self._transitive(fn, self._reads_sender, test)

    def node_calls_out(self, node: Any) -> bool:
        for sub in [node, *node.get_descendants()]:
            if self.is_external_call(sub):
                return True
            if isinstance(sub, vy_ast.Call):
                target = self._internal_target(sub)
                if target is not None and self.calls_out(target):
                    return True
        return False

    def node_writes(self, node: Any) -> Iterator[tuple[Any, str]]:
        for sub in [node, *node.get_descendants()]:
            name = self.storage_write(sub)
            if name is not None:
                yield sub, name
            elif isinstance(sub, vy_ast.Call):
                target = self._internal_target(sub)
                if target is not None and self.writes_storage(target):
                    yield sub, f"(via {target.name})"

    def decorators(self, fn: Any) -> set[str]:
        names = set()
        for d in fn.decorator_list:
            if isinstance(d, vy_ast.Name):
                names.add(str(d.id))
            elif isinstance(d, vy_ast.Call) and isinstance(d.func, vy_ast.Name):
                names.add(str(d.func.id))
        return names

    def waiver(self, fn: Any) -> str | None:
        first = min([fn.lineno, *[d.lineno for d in fn.decorator_list]])
        above = self.lines[first - 2] if first >= 2 else ""
        m = WAIVER.search(above)
        return m.group(1).strip() if m else None


def _check_state_after_call(c: _Contract, fn: Any) -> Iterator[Finding]:
    findings: list[Finding] = []

    def flag(node: Any, name: str, why: str) -> None:
        findings.append(
            Finding(
                "state-after-call",
                "high",
                str(c.path),
                node.lineno,
                fn.name,
                f"storage {name} is written {why} (checks-effects-interactions)",
            )
        )

    def walk(body: Sequence[Any], called: bool) -> bool:
        """Walk statements in order; returns whether a call may have happened by the end.

        The branches of an ``if`` are separate paths: a call in one does not precede the
        other.  A loop that calls out may run any of its writes after a call.
        """
        for stmt in body:
            if isinstance(stmt, vy_ast.If):
                if called:
                    for node, name in c.node_writes(stmt.test):
                        flag(node, name, "after an external call")
                in_test = c.node_calls_out(stmt.test)
                after_body = walk(stmt.body, called or in_test)
                after_else = walk(stmt.orelse, called or in_test)
                called = after_body or after_else
            elif isinstance(stmt, vy_ast.For):
                if c.node_calls_out(stmt):
                    for node, name in c.node_writes(stmt):
                        flag(node, name, "in a loop that makes an external call")
                    called = True
                else:
                    called = walk(stmt.body, called)
            else:
                if called:
                    for node, name in c.node_writes(stmt):
                        flag(node, name, "after an external call")
                called = called or c.node_calls_out(stmt)
        return called

    walk(fn.body, False)
    yield from findings


def _sends_value(c: _Contract, fn: Any, seen: frozenset[str] = frozenset()) -> Any | None:
    for node in fn.get_descendants(vy_ast.Call):
        name = _call_name(node)
        if isinstance(node.func, vy_ast.Name) and name in VALUE_SENDERS:
            return node
        if isinstance(node.func, vy_ast.Name) and name == "raw_call":
            if any(k.arg == "value" for k in node.keywords):
                return node
        target = c._internal_target(node)
        if target is not None and target.name not in seen:
            inner = _sends_value(c, target, seen | {fn.name})
            if inner is not None:
                return node
    for node in fn.get_descendants(vy_ast.ExtCall):
        call = node.value
        if isinstance(call, vy_ast.Call) and any(k.arg == "value" for k in call.keywords):
            return node
    return None


def _check_value_transfer(c: _Contract, fn: Any) -> Iterator[Finding]:
    if "external" not in c.decorators(fn) or c.module_nonreentrant:
        return
    node = _sends_value(c, fn)
    if node is not None and "nonreentrant" not in c.decorators(fn):
        yield Finding(
            "unguarded-value-transfer",
            "high",
            str(c.path),
            node.lineno,
            fn.name,
            "sends value without @nonreentrant",
        )


def _checked_names(fn: Any) -> set[str]:
    names: set[str] = set()
    for test_node in [*fn.get_descendants(vy_ast.Assert), *fn.get_descendants(vy_ast.If)]:
        for n in [test_node.test, *test_node.test.get_descendants()]:
            if isinstance(n, vy_ast.Name):
                names.add(str(n.id))
    return names


def _check_raw_calls(c: _Contract, fn: Any) -> Iterator[Finding]:
    checked = _checked_names(fn)
    for call in fn.get_descendants(vy_ast.Call):
        if not (isinstance(call.func, vy_ast.Name) and call.func.id == "raw_call"):
            continue
        unchecked = False
        for k in call.keywords:
            if (
                k.arg == "revert_on_failure"
                and isinstance(k.value, vy_ast.NameConstant)
                and k.value.value is False
            ):
                unchecked = True
        if not unchecked:
            continue
        parent = call.get_ancestor()
        target = None
        if isinstance(parent, vy_ast.AnnAssign | vy_ast.Assign) and isinstance(
            parent.target, vy_ast.Name
        ):
            target = parent.target.id
        elif isinstance(parent, vy_ast.Assign) and isinstance(parent.target, vy_ast.Tuple):
            first = parent.target.elements[0]
            target = first.id if isinstance(first, vy_ast.Name) else None
        if target is None or target not in checked:
            yield Finding(
                "unchecked-raw-call",
                "medium",
                str(c.path),
                call.lineno,
                fn.name,
                "raw_call with revert_on_failure=False whose success is never tested",
            )


def _check_access(c: _Contract, fn: Any, waivers: list[Waiver]) -> Iterator[Finding]:
    decos = c.decorators(fn)
    if (
        "external" not in decos
        or decos & {"view", "pure"}
        or fn.name == "__init__"
        or "deploy" in decos
    ):
        return
    if not c.writes_storage(fn) or c.reads_sender(fn):
        return
    reason = c.waiver(fn)
    if reason:
        waivers.append(Waiver(str(c.path), fn.lineno, fn.name, reason))
        return
    yield Finding(
        "missing-access-control",
        "medium",
        str(c.path),
        fn.lineno,
        fn.name,
        "writes storage but never checks msg.sender (add a check, or a reviewed "
        "'# @audit permissionless: <reason>' waiver)",
    )


def _check_dangerous(c: _Contract, fn: Any) -> Iterator[Finding]:
    for node in fn.get_descendants(vy_ast.Attribute):
        if isinstance(node.value, vy_ast.Name) and node.value.id == "tx" and node.attr == "origin":
            yield Finding("tx-origin", "high", str(c.path), node.lineno, fn.name, "tx.origin used")
    for call in fn.get_descendants(vy_ast.Call):
        if isinstance(call.func, vy_ast.Name) and call.func.id == "selfdestruct":
            yield Finding(
                "selfdestruct", "high", str(c.path), call.lineno, fn.name, "selfdestruct used"
            )


def analyze_file(path: Path) -> Report:
    c = _Contract(path)
    findings: list[Finding] = []
    waivers: list[Waiver] = []
    for fn in c.functions.values():
        findings += _check_state_after_call(c, fn)
        findings += _check_value_transfer(c, fn)
        findings += _check_raw_calls(c, fn)
        findings += _check_access(c, fn, waivers)
        findings += _check_dangerous(c, fn)
    unique = sorted(set(findings), key=lambda f: (f.path, f.line, f.check))
    return Report(unique, waivers, 1, len(c.functions))


def analyze(paths: Iterable[Path]) -> Report:
    """Analyse every ``.vy`` file under ``paths`` (files or directories)."""
    total = Report([], [], 0, 0)
    for p in paths:
        files = sorted(p.glob("*.vy")) if p.is_dir() else [p]
        for f in files:
            r = analyze_file(f)
            total.findings += r.findings
            total.waivers += r.waivers
            total.contracts += 1
            total.functions += r.functions
    return total


def main(argv: Sequence[str]) -> int:
    from chainml.ledger.artifacts import CONTRACTS_DIR

    paths = [Path(a) for a in argv] or [CONTRACTS_DIR]
    try:
        report = analyze(paths)
    except AnalysisError as exc:
        print(f"static analysis failed: {exc}", file=sys.stderr)
        return 2
    for f in report.findings:
        print(f)
    for w in report.waivers:
        print(f"{w.path}:{w.line}: waived missing-access-control in {w.function}: {w.reason}")
    print(
        f"{len(report.findings)} finding(s) in {report.contracts} contract(s), "
        f"{report.functions} function(s); {len(report.waivers)} reviewed waiver(s)"
    )
    return 1 if report.findings else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
