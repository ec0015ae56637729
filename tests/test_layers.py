"""The import direction of DESIGN.md holds: cli -> node -> training/inference -> ledger/storage -> crypto."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "chainml"

# A package may import only packages of a strictly lower rank (and itself, and chainml.errors).
RANK = {
    "errors": 0,
    "crypto": 1,
    "ledger": 2,
    "storage": 2,
    "training": 3,
    "inference": 3,
    "node": 4,
    "cli": 5,
    "devtools": 6,  # test and benchmark harnesses, not in the wheel
}


def _package_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "chainml" or len(parts) < 2:
        return None
    return parts[1]


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


def test_every_package_has_a_rank() -> None:
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages <= set(RANK), packages - set(RANK)


def _violations(src: Path) -> list[str]:
    bad: list[str] = []
    for path in src.rglob("*.py"):
        rel = path.relative_to(src)
        own = rel.parts[0].removesuffix(".py")
        if own not in RANK:
            continue
        for module in _imports(path):
            target = _package_of(module)
            if target is None or target == own or target == "errors":
                continue
            if target not in RANK or RANK[target] >= RANK[own]:
                bad.append(f"{rel}: imports {module} ({own} may not import {target})")
    return bad


def test_imports_point_one_way() -> None:
    bad = _violations(SRC)
    assert not bad, "\n".join(bad)


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    (tmp_path / "crypto").mkdir()
    (tmp_path / "crypto" / "ok.py").write_text("from chainml.errors import ChainmlError\n")
    (tmp_path / "crypto" / "bad.py").write_text("import chainml.ledger.client\n")
    (tmp_path / "ledger").mkdir()
    (tmp_path / "ledger" / "bad.py").write_text("from chainml.node import daemon\n")
    (tmp_path / "ledger" / "ok.py").write_text("from chainml.crypto import keys\n")
    assert sorted(_violations(tmp_path)) == [
        "crypto/bad.py: imports chainml.ledger.client (crypto may not import ledger)",
        "ledger/bad.py: imports chainml.node (ledger may not import node)",
    ]


# -- no import cycle inside a package ---------------------------------------------------------
#
# Every import counts, at module level or inside a function (a function-local import that
# closes a circle is the same circle, only discovered later); only imports under
# ``if TYPE_CHECKING:`` are left out, since they never run.


def _module_name(src: Path, path: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([src.name, *parts])


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST, module: str, is_package: bool) -> list[str]:
    """Modules named by the import statements that can run, resolved to absolute names;
    ``from pkg import name`` names ``pkg.name`` too (it may be a submodule)."""
    found: list[str] = []
    base = module.split(".") if is_package else module.split(".")[:-1]

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - node.level + 1]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append(target)
            found.extend(f"{target}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _import_graph(src: Path) -> dict[str, set[str]]:
    paths = {_module_name(src, p): p for p in src.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        targets = _runtime_imports(tree, name, path.name == "__init__.py")
        graph[name] = {t for t in targets if t in paths and t != name}
    return graph


def _cycles(src: Path) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    graph = _import_graph(src)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return sorted(found)


def test_no_import_cycle() -> None:
    cycles = _cycles(SRC)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_the_cycle_check_catches_function_local_and_relative_imports(tmp_path: Path) -> None:
    src = tmp_path / "chainml"
    (src / "node").mkdir(parents=True)
    (src / "__init__.py").write_text("")
    (src / "node" / "__init__.py").write_text("")
    (src / "node" / "daemon.py").write_text("from chainml.node.models import seal\n")
    (src / "node" / "models.py").write_text("def seal():\n    from . import inference\n")
    (src / "node" / "inference.py").write_text("def run():\n    from chainml.node import daemon\n")
    (src / "node" / "typed.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from chainml.node import ok\n"
    )
    (src / "node" / "ok.py").write_text("import chainml.node.typed\n")
    assert _cycles(src) == [
        ["chainml.node.daemon", "chainml.node.inference", "chainml.node.models"]
    ]


# The risky primitives (PRGs, fixed-point rings, Shamir, lattice commitments, curve arithmetic)
# are called only by the recipes that check their inputs: chainml.crypto itself, the SecAgg+
# protocol and its wire format, and the sealed-model key sharing.  A new caller is a decision,
# so it is added here by name.
HAZMAT_CALLERS = {
    "crypto",
    "training/secagg",
    "training/wire.py",
    "storage/access.py",
}


def _hazmat_callers(src: Path) -> list[str]:
    bad: list[str] = []
    for path in src.rglob("*.py"):
        rel = path.relative_to(src).as_posix()
        if any(rel == c or rel.startswith(c + "/") for c in HAZMAT_CALLERS):
            continue
        if any(m.startswith("chainml.crypto.hazmat") for m in _imports(path)):
            bad.append(rel)
    return sorted(bad)


def test_only_recipes_call_the_hazmat_primitives() -> None:
    assert not _hazmat_callers(SRC)


def test_the_hazmat_check_catches_a_stray_caller(tmp_path: Path) -> None:
    (tmp_path / "node").mkdir()
    (tmp_path / "node" / "rounds.py").write_text("from chainml.crypto.hazmat import prg\n")
    (tmp_path / "training" / "secagg").mkdir(parents=True)
    (tmp_path / "training" / "secagg" / "client.py").write_text(
        "from chainml.crypto.hazmat.prg import expand\n"
    )
    assert _hazmat_callers(tmp_path) == ["node/rounds.py"]
