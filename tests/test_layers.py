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
