"""Compiled contract artifacts: ABI and bytecode, committed beside the Vyper sources.

The artifacts are what chainml deploys, so a user needs no compiler.  They are built by
``python -m chainml.ledger.artifacts build`` (needs the ``dev`` extra for Vyper) and
``python -m chainml.ledger.artifacts check`` fails if any artifact no longer matches its
source, which ``make test`` runs.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from chainml.ledger.errors import ArtifactMismatch

CONTRACTS_DIR = Path(__file__).parent / "contracts"
ARTIFACTS_DIR = Path(__file__).parent / "artifacts"
COMPILER_VERSION = "0.4.3"

# chainml's contracts, in deployment order (a constructor may take the address of one
# deployed before it).  This one list drives the artifacts, the generated bindings
# (chainml.ledger.generated), deployment files, deployment and connection.
CONTRACTS: tuple[str, ...] = ("Registry", "Datasets", "Models", "Jobs", "Receipts")


@dataclass(frozen=True)
class Artifact:
    """One compiled contract."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: bytes
    source_sha256: str
    compiler: str


def contract_names() -> list[str]:
    """Names of the deployable contracts, in deployment order (one ``Name.vy`` each)."""
    return list(CONTRACTS)


def _source_hash(name: str) -> str:
    return hashlib.sha256((CONTRACTS_DIR / f"{name}.vy").read_bytes()).hexdigest()


@cache
def load(name: str) -> Artifact:
    """The committed artifact of contract ``name``; raises ``ArtifactMismatch`` if absent."""
    path = ARTIFACTS_DIR / f"{name}.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ArtifactMismatch(f"no compiled artifact for {name}: run `make artifacts`") from exc
    return Artifact(
        name=name,
        abi=data["abi"],
        bytecode=bytes.fromhex(data["bytecode"].removeprefix("0x")),
        source_sha256=data["source_sha256"],
        compiler=data["compiler"],
    )


def compile_source(name: str, *, optimize: str | None = None) -> tuple[list[dict[str, Any]], bytes]:
    """Compile ``contracts/name.vy`` with Vyper; returns (abi, deploy bytecode)."""
    import vyper  # dev dependency only
    from vyper.compiler import compile_from_file_input
    from vyper.compiler.input_bundle import FilesystemInputBundle
    from vyper.compiler.settings import OptimizationLevel, Settings

    if vyper.__version__ != COMPILER_VERSION:
        raise ArtifactMismatch(f"need vyper {COMPILER_VERSION}, found {vyper.__version__}")
    bundle = FilesystemInputBundle([CONTRACTS_DIR])
    file_input = bundle.load_file(CONTRACTS_DIR / f"{name}.vy")
    settings = Settings(optimize=OptimizationLevel.from_string(optimize)) if optimize else None
    out = compile_from_file_input(
        file_input, input_bundle=bundle, output_formats=["abi", "bytecode"], settings=settings
    )
    return out["abi"], bytes.fromhex(out["bytecode"].removeprefix("0x"))


def build() -> list[str]:
    """Compile every contract and write its artifact; returns the names written.  (The typed
    bindings are generated from the artifacts next: ``python -m chainml.ledger.bindgen build``.)"""
    ARTIFACTS_DIR.mkdir(exist_ok=True)
    for name in contract_names():
        abi, code = compile_source(name)
        doc = {
            "contract": name,
            "compiler": f"vyper {COMPILER_VERSION}",
            "source_sha256": _source_hash(name),
            "abi": abi,
            "bytecode": "0x" + code.hex(),
        }
        (ARTIFACTS_DIR / f"{name}.json").write_text(json.dumps(doc, indent=1) + "\n")
    load.cache_clear()
    return contract_names()


def check() -> None:
    """Raise ``ArtifactMismatch`` unless every artifact is the compiled form of its source
    and every source is in ``CONTRACTS``."""
    stale = [p.stem for p in ARTIFACTS_DIR.glob("*.json") if p.stem not in CONTRACTS]
    if stale:
        raise ArtifactMismatch(f"artifacts without a source: {', '.join(stale)}")
    unlisted = [p.stem for p in CONTRACTS_DIR.glob("*.vy") if p.stem not in CONTRACTS]
    if unlisted:
        raise ArtifactMismatch(f"contracts missing from CONTRACTS: {', '.join(unlisted)}")
    for name in contract_names():
        art = load(name)
        if art.source_sha256 != _source_hash(name):
            raise ArtifactMismatch(f"{name}.vy changed since its artifact was built")
        abi, code = compile_source(name)
        if abi != art.abi or code != art.bytecode:
            raise ArtifactMismatch(f"{name}: compiling the source gives other bytecode or ABI")


def main(argv: list[str]) -> int:
    if argv[1:] == ["build"]:
        for name in build():
            print(f"built {name}")
        return 0
    if argv[1:] == ["check"]:
        try:
            check()
        except ArtifactMismatch as exc:
            print(f"artifact check failed: {exc}", file=sys.stderr)
            return 1
        print(f"artifacts match their sources ({len(contract_names())} contracts)")
        return 0
    print("usage: python -m chainml.ledger.artifacts build|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
