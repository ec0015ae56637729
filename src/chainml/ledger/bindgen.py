"""Generate ``chainml.ledger.generated`` from the committed ABIs.

For every contract of ``artifacts.CONTRACTS`` the generated module holds one class with a
typed method per ABI function (calls return Python values, transactions return the
``Receipt``), and one frozen dataclass per tuple the ABI returns or takes, its fields named
and ordered by the ABI's components.  So no caller ever unpacks a tuple by position, and a
change of a contract's ABI shows up as a type error, not as a silently shifted field.

Record names follow the function that returns them: ``get_job`` returns ``Job``,
``identities`` returns ``Identity``, ``Datasets.get`` returns ``Dataset``; a nested tuple is
named after its parent and its field (``Job.params`` is ``JobParams``).  These are the names
of the Vyper structs, which a test checks.

Two things the ABI cannot say are declared here: which integer fields are enums
(``FIELD_ENUMS``) and which fields of an input struct may be left out (``INPUT_DEFAULTS``).

``python -m chainml.ledger.bindgen build`` regenerates the module (``make artifacts`` runs it
after compiling) and ``check`` fails if it is stale (``make test`` runs it).
"""

from __future__ import annotations

import keyword
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chainml.ledger import artifacts

GENERATED = Path(__file__).parent / "generated.py"

# (record, field) -> enum of chainml.ledger.enums
FIELD_ENUMS = {
    ("Identity", "roles"): "Role",
    ("Job", "state"): "JobState",
    ("Round", "status"): "RoundStatus",
    ("Challenge", "status"): "ChallengeStatus",
    ("Batch", "status"): "BatchStatus",
}
# record -> {field: Python default}; only trailing fields of structs a caller builds
INPUT_DEFAULTS = {
    "JobParams": {
        "clip_bound": "0",
        "dp_noise_multiplier": "0",
        "dp_delta_exponent": "0",
        "config_hash": "bytes(32)",
        "config_cid": '""',
    },
}


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part)


def _singular(name: str) -> str:
    if name.endswith("ies"):
        return name[:-3] + "y"
    return name[:-1] if name.endswith("s") and not name.endswith("ss") else name


def _ident(name: str) -> str:
    name = name.lstrip("_") or "arg"
    return name + "_" if keyword.iskeyword(name) else name


@dataclass
class Record:
    name: str
    components: list[Mapping[str, Any]]
    contract: str
    uses: list[str] = field(default_factory=list)

    @property
    def signature(self) -> tuple[tuple[str, str], ...]:
        return _signature(self.components)


def _signature(components: Sequence[Mapping[str, Any]]) -> tuple[tuple[str, str], ...]:
    out = []
    for c in components:
        kind = str(c["type"])
        if kind.startswith("tuple"):
            kind = repr(_signature(c["components"])) + kind[5:]
        out.append((str(c["name"]), kind))
    return tuple(out)


class _Generator:
    def __init__(self) -> None:
        self.records: dict[str, Record] = {}  # name -> record, in order of first use
        self.by_signature: dict[tuple[tuple[str, str], ...], str] = {}
        self.enums: set[str] = set()
        self.events: dict[str, list[tuple[str, str, bool]]] = {}  # name -> fields

    # -- records ---------------------------------------------------------------------

    def record(self, name: str, param: Mapping[str, Any], contract: str, use: str) -> str:
        """The record class for tuple ``param`` (named ``name`` unless already known)."""
        components = list(param["components"])
        sig = _signature(components)
        known = self.by_signature.get(sig)
        if known is None:
            if name in self.records:
                raise ValueError(f"two different tuples would both be called {name}")
            self.records[name] = Record(name, components, contract)
            self.by_signature[sig] = name
            for c in components:  # nested tuples are named after their parent and field
                if str(c["type"]).startswith("tuple"):
                    self.record(name + _camel(str(c["name"])), c, contract, f"{name}.{c['name']}")
            known = name
        self.records[known].uses.append(use)
        return known

    # -- types -----------------------------------------------------------------------

    def py_type(
        self, param: Mapping[str, Any], record: str | None, owner: str, *, arg: bool
    ) -> str:
        """The Python annotation of ``param``; ``record`` names it if it is a tuple."""
        kind = str(param["type"])
        if kind.endswith("]"):
            inner = dict(param, type=kind[: kind.rindex("[")])
            item = self.py_type(inner, record, owner, arg=arg)
            return f"Sequence[{item}]" if arg else f"tuple[{item}, ...]"
        if kind == "tuple":
            assert record is not None
            return record
        enum = FIELD_ENUMS.get((owner, str(param["name"])))
        if enum:
            self.enums.add(enum)
            return enum
        if kind == "address" or kind == "string":
            return "str"
        if kind == "bool":
            return "bool"
        if kind.startswith("bytes"):
            return "bytes"
        if kind.startswith(("uint", "int")):
            return "int"
        raise ValueError(f"no Python type for ABI type {kind}")

    def decode(self, param: Mapping[str, Any], record: str | None, owner: str, expr: str) -> str:
        """An expression turning the decoded value ``expr`` into ``py_type``."""
        kind = str(param["type"])
        if kind.endswith("]"):
            inner = dict(param, type=kind[: kind.rindex("[")])
            return f"tuple({self.decode(inner, record, owner, 'v')} for v in {expr})"
        if kind == "tuple":
            return f"{record}.from_abi({expr})"
        enum = FIELD_ENUMS.get((owner, str(param["name"])))
        if enum:
            return f"{enum}({expr})"
        py = self.py_type(param, record, owner, arg=False)
        return f"{py}({expr})"

    def encode(self, param: Mapping[str, Any], expr: str) -> str:
        """An expression turning a Python argument into what the ABI encoder takes."""
        kind = str(param["type"])
        if kind.endswith("]"):
            inner = dict(param, type=kind[: kind.rindex("[")])
            item = self.encode(inner, "v")
            return f"list({expr})" if item == "v" else f"[{item} for v in {expr}]"
        if kind == "tuple":
            return f"{expr}.to_abi()"
        return expr  # the ABI encoder checks it (an enum or flag is an int)

    # -- rendering -------------------------------------------------------------------

    def tuple_name(
        self, param: Mapping[str, Any], default: str, contract: str, use: str
    ) -> str | None:
        if str(param["type"]).startswith("tuple"):
            return self.record(default, param, contract, use)
        return None

    def output_record(self, contract: str, item: Mapping[str, Any]) -> str | None:
        """The record ``item`` returns, if it returns a tuple: ``get_job`` returns ``Job``."""
        name, outputs = str(item["name"]), list(item.get("outputs", []))
        if len(outputs) != 1:  # Vyper returns one value (a struct for several)
            raise ValueError(f"{contract}.{name}: {len(outputs)} outputs, expected one")
        stem = name.removeprefix("get_").removeprefix("get") or contract
        return self.tuple_name(outputs[0], _camel(_singular(stem)), contract, f"{name}()")

    def function(self, contract: str, item: Mapping[str, Any]) -> list[str]:
        name = str(item["name"])
        view = item.get("stateMutability") in ("view", "pure")
        payable = item.get("stateMutability") == "payable"
        args, passed = ["self"], []
        if not view:
            args.append("signer: TransactionSigner")
        for i, param in enumerate(item.get("inputs", [])):
            pname = _ident(str(param["name"]) or f"arg{i}")
            rec = self.tuple_name(param, _camel(name) + _camel(pname), contract, f"{name}()")
            args.append(f"{pname}: {self.py_type(param, rec, '', arg=True)}")
            passed.append(self.encode(param, pname))
        if view:
            args += ["*", 'block: int | str = "latest"']
        elif payable:
            args += ["*", "value: int = 0"]
        outputs = list(item.get("outputs", []))
        call_args = ", ".join([repr(name), *passed])
        if view:
            rec = self.output_record(contract, item)
            returns = self.py_type(outputs[0], rec, "", arg=False)
            body = self.decode(outputs[0], rec, "", f"self.contract.call({call_args}, block=block)")
        else:
            returns = "Receipt"
            extra = ", value=value" if payable else ""
            body = f"self.contract.transact(signer, {call_args}{extra})"
        kind = "call" if view else ("payable transaction" if payable else "transaction")
        return [
            f"    def {_ident(name)}({', '.join(args)}) -> {returns}:",
            f'        """``{contract}.{name}`` ({kind})."""',
            f"        return {body}",
            "",
        ]

    def render_record(self, rec: Record) -> list[str]:
        defaults = INPUT_DEFAULTS.get(rec.name, {})
        lines = [
            "@dataclass(frozen=True)",
            f"class {rec.name}:",
            f'    """``{rec.contract}``: {", ".join(sorted(set(rec.uses)))}."""',
            "",
        ]
        decoded, encoded = [], []
        for i, c in enumerate(rec.components):
            fname = _ident(str(c["name"]))
            nested = None
            if str(c["type"]).startswith("tuple"):
                nested = self.by_signature[_signature(c["components"])]
            annotation = self.py_type(c, nested, rec.name, arg=False)
            default = f" = {defaults[fname]}" if fname in defaults else ""
            lines.append(f"    {fname}: {annotation}{default}")
            value = self.decode(c, nested, rec.name, f"value[{i}]")
            decoded.append(f"            {fname}={value},")
            encoded.append(f"{self.encode(c, 'self.' + fname)},")
        lines += [
            "",
            "    @classmethod",
            f"    def from_abi(cls, value: Sequence[Any]) -> {rec.name}:",
            '        """From the decoded ABI tuple (components in ABI order)."""',
            "        return cls(",
            *decoded,
            "        )",
            "",
            "    def to_abi(self) -> tuple[Any, ...]:",
            '        """The ABI tuple, components in ABI order."""',
            f"        return ({' '.join(encoded)})",
            "",
            "",
        ]
        return lines

    def event_record(self, contract: str, item: Mapping[str, Any]) -> list[str]:
        """A frozen record for event ``item`` (once per name: the same event in two
        contracts must have the same fields)."""
        name = str(item["name"])
        fields = [(str(i["name"]), str(i["type"]), bool(i.get("indexed"))) for i in item["inputs"]]
        if name in self.events:
            if self.events[name] != fields:
                raise ValueError(f"two different events are both called {name}")
            return []
        if name in self.records:
            raise ValueError(f"an event and a struct are both called {name}")
        self.events[name] = fields
        lines = [
            "@dataclass(frozen=True)",
            f"class {name}:",
            f'    """The ``{name}`` event (first seen in ``{contract}``)."""',
            "",
        ]
        decoded = []
        for param in item["inputs"]:
            fname = _ident(str(param["name"]))
            kind = str(param["type"])
            dynamic = kind in ("string", "bytes") or kind.endswith("]") or kind.startswith("tuple")
            if param.get("indexed") and dynamic:  # only its hash is in the log
                annotation, value = "bytes", f'bytes(args["{param["name"]}"])'
            else:
                annotation = self.py_type(param, None, name, arg=False)
                value = self.decode(param, None, name, f'args["{param["name"]}"]')
            lines.append(f"    {fname}: {annotation}")
            decoded.append(f"            {fname}={value},")
        lines += [
            "",
            "    @classmethod",
            f"    def from_args(cls, args: Mapping[str, Any]) -> {name}:",
            '        """From a decoded log\'s arguments (``Event.args``), by name."""',
            "        return cls(",
            *decoded,
            "        )",
            "",
            "",
        ]
        return lines

    def events_class(self, contract: str, abi: Sequence[Mapping[str, Any]]) -> list[str]:
        lines = [
            f"class {contract}Events:",
            f'    """Every event of ``{contract}``\'s ABI: those a transaction emitted, typed."""',
            "",
            "    def __init__(self, contract: BoundContract) -> None:",
            "        self.contract = contract",
            "",
        ]
        for item in abi:
            if item.get("type") != "event":
                continue
            name = str(item["name"])
            snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
            lines += [
                f"    def {snake}(self, receipt: Receipt) -> list[{name}]:",
                f'        """The ``{name}`` events this contract emitted in ``receipt``."""',
                f"        found = self.contract.events(receipt, {name!r})",
                f"        return [{name}.from_args(e.args) for e in found]",
                "",
            ]
        lines[-1:] = ["", ""]
        return lines

    def render(self) -> str:
        classes: list[str] = []
        event_records: list[str] = []
        for contract in artifacts.CONTRACTS:
            abi = artifacts.load(contract).abi
            classes += [
                f"class {contract}Functions:",
                f'    """Every function of ``{contract}``\'s ABI, typed."""',
                "",
                "    def __init__(self, contract: BoundContract) -> None:",
                "        self.contract = contract",
                "",
            ]
            functions = [item for item in abi if item.get("type") == "function"]
            for item in functions:  # what functions return names the records first
                if item.get("stateMutability") in ("view", "pure"):
                    self.output_record(contract, item)
            for item in functions:
                classes += self.function(contract, item)
            classes[-1:] = ["", ""]
            classes += self.events_class(contract, abi)
        for contract in artifacts.CONTRACTS:
            for item in artifacts.load(contract).abi:
                if item.get("type") == "event":
                    event_records += self.event_record(contract, item)
        records: list[str] = []
        for rec in self.records.values():
            records += self.render_record(rec)
        records += event_records
        enums = ", ".join(sorted(self.enums))
        header = [
            '"""Typed bindings of chainml\'s contracts, generated from their ABIs in',
            f"{_sources()}.",
            "",
            "Do not edit: ``python -m chainml.ledger.bindgen build`` writes this file from the",
            "committed ABIs and ``python -m chainml.ledger.bindgen check`` fails if it is stale.",
            '"""',
            "",
            "from __future__ import annotations",
            "",
            "from collections.abc import Mapping, Sequence",
            "from dataclasses import dataclass",
            "from typing import Any",
            "",
            "from chainml.ledger.client import BoundContract, Receipt, TransactionSigner",
            f"from chainml.ledger.enums import {enums}",
            "",
            "",
        ]
        names = [f"{c}{kind}" for c in artifacts.CONTRACTS for kind in ("Functions", "Events")]
        names += list(self.records) + list(self.events)
        footer = ["__all__ = [", *(f'    "{n}",' for n in sorted(names)), "]", ""]
        text = re.sub(r"\n{4,}", "\n\n\n", "\n".join(header + records + classes + footer))
        return _formatted(text)


def _formatted(text: str) -> str:
    """``text`` as ``ruff format`` leaves it (so ``make lint`` accepts the file as written)."""
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--stdin-filename", str(GENERATED), "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        cwd=GENERATED.parent,
    )
    if done.returncode != 0:
        raise RuntimeError(f"ruff could not format the generated bindings: {done.stderr}")
    return done.stdout


def _sources() -> str:
    return "artifacts/" + "{" + ",".join(artifacts.CONTRACTS) + "}.json"


def render() -> str:
    """The text of ``generated.py`` for the committed artifacts."""
    return _Generator().render()


def write() -> None:
    GENERATED.write_text(render())


def is_current() -> bool:
    return GENERATED.exists() and GENERATED.read_text() == render()


def main(argv: list[str]) -> int:
    if argv[1:] == ["build"]:
        write()
        print(f"wrote {GENERATED.name} from {len(artifacts.CONTRACTS)} contracts' ABIs")
        return 0
    if argv[1:] == ["check"]:
        if not is_current():
            print(f"{GENERATED} is stale: run `make artifacts`", file=sys.stderr)
            return 1
        print(f"{GENERATED.name} matches the committed ABIs")
        return 0
    print("usage: python -m chainml.ledger.bindgen build|check", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
