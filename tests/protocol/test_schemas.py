"""The JSON Schemas of docs/protocol/schemas/ against the implementation.

- Each schema is a valid JSON Schema (draft 2020-12).
- Job configuration: every configuration chainml builds validates; and over mutations of
  valid ones (a field dropped, an unknown field added, a value of another type or out of
  range) the schema and ``JobConfig.decode`` accept and refuse the same documents.
- Round record: the records of real rounds (plain, verifiable, distributed DP and robust,
  run in process by the TypeScript verifier's fixture writer) validate, and each mutation
  that breaks the documented structure is refused. Records written by node processes are
  checked where those tests read them (``test_ts_verifier.py``: plain and verifiable;
  ``tests/node/test_rounds_dp.py``: distributed DP with its accounting entry;
  ``tests/node/test_rounds.py``: robust).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chainml.training.errors import TrainingError
from chainml.training.job import JobConfig
from tests.protocol.schemas import JOB, RECORD

ROOT = Path(__file__).resolve().parents[2]


def canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def decodes(raw: bytes) -> bool:
    try:
        JobConfig.decode(raw)
    except TrainingError:
        return False
    return True


configs = st.builds(
    JobConfig,
    n_features=st.integers(1, 4096),
    n_classes=st.integers(2, 100),
    hidden=st.lists(st.integers(1, 512), max_size=4).map(tuple),
    activation=st.sampled_from(["relu", "square"]),
    epochs=st.integers(1, 20),
    lr=st.floats(1e-6, 10.0),
    seed=st.integers(0, 2**32),
    verifiable=st.booleans(),
) | st.builds(
    JobConfig,
    n_features=st.integers(1, 4096),
    n_classes=st.integers(2, 100),
    dp=st.sampled_from(["central", "distributed"]),
    noise_multiplier=st.integers(1, 5000).map(lambda k: k / 1000),
    dp_delta=st.integers(1, 30).map(lambda e: float(f"1e-{e}")),
)

# values of every JSON type, in and out of the fields' ranges; ints are left out for
# noise_multiplier, whose canonical spelling is a float (2.0, never 2): a rule of the
# encoding, checked on the bytes, that no JSON Schema can state
VALUES: list[Any] = [None, True, False, -1, 0, 1, 3, 2.5, -0.5, "", "mlp", "relu", [], [0], [3], {}]


@settings(max_examples=60, deadline=None)
@given(configs)
def test_every_configuration_chainml_writes_validates(config: JobConfig) -> None:
    doc = json.loads(config.encode())
    JOB.validate(doc)
    assert decodes(canonical(doc))


@settings(max_examples=150, deadline=None)
@given(configs, st.data())
def test_the_schema_and_the_decoder_refuse_the_same_configurations(
    config: JobConfig, data: st.DataObject
) -> None:
    doc = json.loads(config.encode())
    key = data.draw(st.sampled_from([*JOB.schema["properties"], "extra"]))
    mutation = data.draw(st.sampled_from(["drop", "set"]))
    if mutation == "drop":
        doc.pop(key, None)
    else:
        value = data.draw(st.sampled_from(VALUES))
        if key == "noise_multiplier" and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        doc[key] = value
    assert JOB.is_valid(doc) == decodes(canonical(doc)), (key, mutation, doc)


def _fixture_rounds(tmp: Path) -> list[dict[str, Any]]:
    spec = importlib.util.spec_from_file_location(
        "make_round", ROOT / "verifier-ts" / "fixtures" / "make_round.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp)
    records = []
    for name in ("honest", "honest_verifiable", "honest_dp", "honest_robust"):
        case = json.loads((tmp / "cases" / f"{name}.json").read_text())
        records.append(json.loads((tmp / "blobs" / case["aggregate_cid"]).read_bytes()))
    return records


@pytest.fixture(scope="module")
def records(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    return _fixture_rounds(tmp_path_factory.mktemp("rounds"))


def test_records_of_real_rounds_validate(records: list[dict[str, Any]]) -> None:
    for record in records:
        RECORD.validate(record)
        JOB.validate(json.loads(record["config"]))
    assert "dp" in json.loads(records[2]["config"]) and "aggregation" in records[3]


@pytest.mark.parametrize(
    "edit",
    [
        lambda r: r.pop("root"),
        lambda r: r.pop("bitmap"),
        lambda r: r.update(format="chainml-round-record/1"),
        lambda r: r.update(bitmap=-1),
        lambda r: r.update(bitmap="7"),
        lambda r: r.update(root="AB" * 32),
        lambda r: r.update(transcript="not a cid"),
        lambda r: r.update(inputs={"0": r["inputs"]["1"]}),
        lambda r: r.update(inputs={"1": 5}),
        lambda r: r["params"].pop("graph_seed"),
        lambda r: r["params"].update(verifiable=1),
        lambda r: r.update(extra=True),
        lambda r: r.update(aggregation="krum"),  # a secure round's record with a robust rule
    ],
)
def test_a_record_that_breaks_the_structure_is_refused(
    records: list[dict[str, Any]], edit: Any
) -> None:
    record = json.loads(json.dumps(records[0]))
    edit(record)
    assert not RECORD.is_valid(record)


def test_a_robust_record_that_breaks_the_structure_is_refused(
    records: list[dict[str, Any]],
) -> None:
    edits: list[Callable[[dict[str, Any]], object]] = [
        lambda r: r.pop("signatures"),
        lambda r: r.update(aggregation="secagg"),
        lambda r: r["signatures"].update({"1": "00" * 64}),
        lambda r: r.update(transcript=r["model_manifest"]),
    ]
    for edit in edits:
        record = json.loads(json.dumps(records[3]))
        edit(record)
        assert not RECORD.is_valid(record)
