"""Run one benchmark (``python -m benchmarks NAME [--quick]``) or all of them (``all``)."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if not m.name.startswith("_"))


def run_one(name: str, quick: bool) -> dict[str, Any]:
    module = importlib.import_module(f"benchmarks.{name}")
    started = time.perf_counter()
    result: dict[str, Any] = module.run(quick=quick)
    result.setdefault("benchmark", name)
    result["quick"] = quick
    result["wall_seconds"] = round(time.perf_counter() - started, 3)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    parser.add_argument("name", choices=[*available(), "all"])
    parser.add_argument("--quick", action="store_true", help="a run of under a minute")
    args = parser.parse_args(argv)
    names = available() if args.name == "all" else [args.name]
    results = []
    for name in names:
        print(f"== benchmark {name}{' (quick)' if args.quick else ''}", file=sys.stderr)
        result = run_one(name, args.quick)
        results.append(result)
        if args.name == "all":
            print(json.dumps(result))
    print(json.dumps(results[0] if len(results) == 1 else {"benchmarks": results}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
