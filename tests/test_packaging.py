"""Packaging: every imported third-party package is declared, in the right place.

The runtime wheel's modules may import only ``[project] dependencies``; a module that
belongs to an optional feature imports only its extra; tests and benchmarks import only
what ``make test`` installs (runtime + ``dev`` + ``torch`` + ``zk``).  Each import is mapped to the
distribution that provides it through the installed metadata, so a package that merely
happens to be installed (pulled in by something else) does not count as declared.
"""

from __future__ import annotations

import ast
import importlib.metadata as md
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

# modules of an optional feature, and the extra that provides their imports
EXTRA_OF = {
    "chainml/training/torch_adapter.py": "torch",
    "chainml/inference/torch_import.py": "torch",
    "chainml/inference/zkml.py": "zk",  # imports EZKL and onnx only when called
    "chainml/ledger/audit/": "dev",  # contract audit tools, left out of the wheel
    "chainml/ledger/bindgen.py": "dev",  # writes generated.py; left out of the wheel
    # compiles the contracts for the PoS devnet's Paris EVM; devtools are not in the wheel
    "chainml/devtools/posdevnet_job.py": "dev",
}
# function-local imports of dev-only commands inside runtime modules
DEV_COMMANDS = {
    ("chainml/ledger/artifacts.py", "vyper"),  # `artifacts build|check` compile the sources
}
# imported by code that runs in its own virtual environment (scripts/setup-mythril.sh, setup-flower.sh)
OWN_VENV = {"mythril", "flwr"}
# declared and used without a Python import: kubo-python ships the kubo engine as a shared
# library that chainml.storage.ipfs_engine loads through cffi
NOT_IMPORTED = {"kubo-python"}
# runtime pins on pre-releases, allowed only where the project never made a release
PRERELEASE_ONLY = {"eth-tester", "py-evm"}
LOCAL = {"chainml", "tests", "benchmarks", "conftest"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert match, requirement
    return _norm(match.group(0))


RUNTIME = {_name(r) for r in PROJECT["dependencies"]}
EXTRAS = {k: {_name(r) for r in v} for k, v in PROJECT["optional-dependencies"].items()}
PROVIDERS = {k: {_norm(d) for d in v} for k, v in md.packages_distributions().items()}


def _imports(path: Path) -> Iterator[tuple[str, int]]:
    """(top-level module, line) of every absolute import in ``path``, at any depth."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".")[0], node.lineno
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".")[0], node.lineno


def _third_party(paths: list[Path]) -> Iterator[tuple[Path, str, int]]:
    for path in paths:
        for top, line in _imports(path):
            if top not in sys.stdlib_module_names and top not in LOCAL:
                yield path, top, line


def _src_modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _extra_of(rel: str) -> str | None:
    return next((x for prefix, x in EXTRA_OF.items() if rel.startswith(prefix)), None)


def test_every_src_import_is_declared_where_it_belongs() -> None:
    wrong = []
    for path, top, line in _third_party(_src_modules()):
        rel = path.relative_to(SRC).as_posix()
        extra = _extra_of(rel)
        if top in OWN_VENV and extra == "dev":
            continue
        if (rel, top) in DEV_COMMANDS:
            extra = "dev"
        allowed = RUNTIME | (EXTRAS[extra] if extra else set())
        if not PROVIDERS.get(top, set()) & allowed:
            where = f"the {extra} extra" if extra else "[project] dependencies"
            wrong.append(f"{rel}:{line} imports {top} (from {PROVIDERS.get(top)}): not in {where}")
    assert not wrong, "\n".join(wrong)


def test_tests_and_benchmarks_import_only_what_make_test_installs() -> None:
    allowed = RUNTIME | EXTRAS["dev"] | EXTRAS["torch"] | EXTRAS["zk"]
    paths = sorted((ROOT / "tests").rglob("*.py")) + sorted((ROOT / "benchmarks").rglob("*.py"))
    wrong = [
        f"{path.relative_to(ROOT)}:{line} imports {top} (from {PROVIDERS.get(top)})"
        for path, top, line in _third_party(paths)
        if not PROVIDERS.get(top, set()) & allowed and top not in OWN_VENV
    ]
    assert not wrong, "\n".join(wrong)


def test_every_runtime_dependency_is_imported_by_the_runtime_package() -> None:
    used: set[str] = set()
    for path, top, _ in _third_party(_src_modules()):
        if _extra_of(path.relative_to(SRC).as_posix()) is None:
            used |= PROVIDERS.get(top, set())
    unused = RUNTIME - used - NOT_IMPORTED
    assert not unused, f"declared but imported by no runtime module: {sorted(unused)}"
    assert "web3" not in RUNTIME


def test_prerelease_pins_only_where_no_release_exists() -> None:
    pre = re.compile(r"==\s*[0-9][0-9.]*(a|b|rc|\.dev)[0-9]*")
    pinned = {_name(r) for r in PROJECT["dependencies"] if pre.search(r)}
    assert pinned == PRERELEASE_ONLY, "a new pre-release pin: is there really no release?"
    text = (ROOT / "pyproject.toml").read_text()
    assert "have only ever\n    # published pre-releases" in text  # the reason stays beside them


def test_the_wheel_carries_no_audit_tools_and_every_contract_artifact() -> None:
    hatchling = pytest.importorskip("hatchling.builders.wheel")
    files = {
        f.distribution_path for f in hatchling.WheelBuilder(str(ROOT)).recurse_included_files()
    }
    assert not [
        f for f in files if f.startswith(("chainml/ledger/audit", "chainml/ledger/bindgen"))
    ]
    assert "chainml/ledger/generated.py" in files  # what bindgen wrote is runtime code
    assert "chainml/ledger/devchain/chain.py" in files  # the embedded chain is a runtime feature
    for vy in (SRC / "chainml/ledger/contracts").glob("*.vy"):
        assert f"chainml/ledger/artifacts/{vy.stem}.json" in files
    # what the wheel does carry imports only runtime dependencies
    for name in files:
        if name.endswith(".py"):
            assert _extra_of(name) in (None, "torch", "zk"), name


def _runtime_closure() -> set[str]:
    """The runtime dependencies and everything they require, as installed."""
    seen: set[str] = set()
    todo = list(RUNTIME)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        todo += [_name(r) for r in requires if "extra ==" not in r]
    return seen


BLOCKER = """
import importlib, importlib.abc, sys
blocked = set(sys.argv[1].split(","))

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ImportError(f"{name} is not installed with the runtime wheel")
        return None

sys.meta_path.insert(0, Block())
for module in sys.argv[2].split(","):
    importlib.import_module(module)
print("imported", len(sys.argv[2].split(",")))
"""


def test_every_runtime_module_imports_without_the_dev_and_torch_extras():
    hatchling = pytest.importorskip("hatchling.builders.wheel")
    files = {
        f.distribution_path for f in hatchling.WheelBuilder(str(ROOT)).recurse_included_files()
    }
    modules = sorted(
        name.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
        for name in files
        if name.endswith(".py") and _extra_of(name) is None and not name.endswith("__main__.py")
    )
    # top-level modules that only the extras bring (what the runtime dependencies pull in
    # themselves, such as scipy under scikit-learn, stays importable)
    only_extras: set[str] = set()
    for dist in (EXTRAS["dev"] | EXTRAS["torch"]) - _runtime_closure():
        only_extras |= {top for top, dists in PROVIDERS.items() if dists == {dist}}
    assert {"vyper", "z3", "boa", "torch", "web3"} <= only_extras
    done = subprocess.run(
        [sys.executable, "-c", BLOCKER, ",".join(sorted(only_extras)), ",".join(modules)],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"imported {len(modules)}" in done.stdout
