"""The JSON Schemas of docs/protocol/schemas/ against the implementation.

- Each schema is a valid JSON Schema (draft 2020-12).
- Job configuration: every configuration chainml builds validates; and over mutations of
  valid ones (a field dropped, an unknown field added, a value of another type or out of
  range, ``norm_proofs`` false or beside a robust rule or distributed DP) the schema and
  ``JobConfig.decode`` accept and refuse the same documents.
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
from chainml.training.secagg import RoundTranscript
from tests.protocol.schemas import JOB, RECORD, TRANSCRIPT

ROOT = Path(__file__).resolve().parents[2]


def canonical(doc: Any) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def decodes(raw: bytes) -> bool:
    try:
        JobConfig.decode(raw)
    except TrainingError:
        return False
    return True


configs = (
    st.builds(
        JobConfig,
        n_features=st.integers(1, 4096),
        n_classes=st.integers(2, 100),
        hidden=st.lists(st.integers(1, 512), max_size=4).map(tuple),
        activation=st.sampled_from(["relu", "square"]),
        epochs=st.integers(1, 20),
        lr=st.floats(1e-6, 10.0),
        seed=st.integers(0, 2**32),
        verifiable=st.booleans(),
    )
    | st.builds(
        JobConfig,
        n_features=st.integers(1, 4096),
        n_classes=st.integers(2, 100),
        dp=st.sampled_from(["central", "distributed"]),
        noise_multiplier=st.integers(1, 5000).map(lambda k: k / 1000),
        dp_delta=st.integers(1, 30).map(lambda e: float(f"1e-{e}")),
    )
    | st.builds(  # norm-bound proofs: secure aggregation, with or without central DP
        JobConfig,
        n_features=st.integers(1, 4096),
        n_classes=st.integers(2, 100),
        verifiable=st.booleans(),
        dp=st.sampled_from([None, "central"]),
        norm_proofs=st.just(True),
        linf_bound=st.sampled_from([0.0, 0.05, 2.5]),
    )
    | st.builds(
        lambda c, h, k, s, p, a: JobConfig(
            n_features=c * h * h,
            n_classes=10,
            hidden=(),
            model="cnn",
            activation=a,
            image=(c, h, h),
            kernel=k,
            stride=s,
            pool=p,
        ),
        st.integers(1, 3),
        st.integers(12, 28),
        st.integers(1, 5),
        st.integers(1, 3),
        st.integers(1, 2),
        st.sampled_from(["square", "relu_poly"]),
    )
)

# values of every JSON type, in and out of the fields' ranges; ints are left out for
# noise_multiplier and linf_bound, whose canonical spelling is a float (2.0, never 2): a rule of the
# encoding, checked on the bytes, that no JSON Schema can state
VALUES: list[Any] = [
    *(None, True, False, -1, 0, 1, 3, 2.5, -0.5, "", "mlp", "cnn", "relu", "relu_poly"),
    *([], [0], [3], [1, 8, 8], [1, 8, 9], {}),
]


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
        floats = ("noise_multiplier", "linf_bound")  # spelt as floats (2.0, never 2)
        if key in floats and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        doc[key] = value
    assert (JOB.is_valid(doc) and cnn_shape_fits(doc)) == decodes(canonical(doc)), (key, doc)


def test_norm_proofs_is_left_out_when_false_and_refused_where_it_cannot_hold() -> None:
    plain = JobConfig(n_features=8, n_classes=3)
    proven = JobConfig(n_features=8, n_classes=3, norm_proofs=True)
    assert b"norm_proofs" not in plain.encode()  # the bytes (and config_hash) of before
    assert json.loads(proven.encode())["norm_proofs"] is True
    assert proven.secagg_len() == plain.vector_len() + 16 and plain.secagg_len() == (
        plain.vector_len()
    )
    base = json.loads(proven.encode())
    refused = [
        {**base, "norm_proofs": False},  # not canonical: false is spelt by leaving it out
        {**base, "norm_proofs": 1},
        {**base, "aggregation": "median"},  # a robust rule sees the updates themselves
        {**base, "dp": "distributed", "noise_multiplier": 1.0, "dp_delta": 1e-05},
    ]
    for doc in refused:
        assert not JOB.is_valid(doc) and not decodes(canonical(doc)), doc
    central = {**base, "dp": "central", "noise_multiplier": 1.0, "dp_delta": 1e-05}
    assert JOB.is_valid(central) and decodes(canonical(central))


def cnn_shape_fits(doc: dict[str, Any]) -> bool:
    """The arithmetic a JSON Schema cannot state (the schema's description says it): a
    CNN's image holds n_features values, and its kernel and pooling fit inside it."""
    if doc.get("model") != "cnn":
        return True
    c, h, w = doc["image"]
    k, s, p = doc["kernel"], doc["stride"], doc["pool"]
    pooled = min((h - k) // s + 1, (w - k) // s + 1) // p if k <= min(h, w) else 0
    return bool(c * h * w == doc["n_features"] and pooled >= 1)


@pytest.fixture(scope="module")
def rounds(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real rounds, written by the TypeScript verifier's fixture writer: blobs by CID."""
    tmp = tmp_path_factory.mktemp("rounds")
    spec = importlib.util.spec_from_file_location(
        "make_round", ROOT / "verifier-ts" / "fixtures" / "make_round.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp)
    return tmp


@pytest.fixture(scope="module")
def records(rounds: Path) -> list[dict[str, Any]]:
    """The honest plain, verifiable, distributed-DP, robust and CNN rounds' records."""
    found = []
    for name in ("honest", "honest_verifiable", "honest_dp", "honest_robust", "honest_cnn"):
        case = json.loads((rounds / "cases" / f"{name}.json").read_text())
        found.append(json.loads((rounds / "blobs" / case["aggregate_cid"]).read_bytes()))
    return found


@pytest.fixture(scope="module")
def transcripts(rounds: Path, records: list[dict[str, Any]]) -> list[bytes]:
    return [(rounds / "blobs" / r["transcript"]).read_bytes() for r in records[:3]]


def test_records_of_real_rounds_validate(records: list[dict[str, Any]]) -> None:
    for record in records:
        RECORD.validate(record)
        JOB.validate(json.loads(record["config"]))
    assert "dp" in json.loads(records[2]["config"]) and "aggregation" in records[3]
    assert json.loads(records[4]["config"])["model"] == "cnn"


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


def test_transcripts_of_real_rounds_validate(transcripts: list[bytes]) -> None:
    for raw in transcripts:
        TRANSCRIPT.validate(json.loads(raw))
        RoundTranscript.decode(raw)


TRANSCRIPT_EDITS: dict[str, Callable[[dict[str, Any]], object]] = {
    "format": lambda t: t.update(format="chainml-secagg-transcript/2"),
    "no total": lambda t: t.pop("total"),
    "total not whole bytes": lambda t: t.update(total=t["total"][:-1]),
    "upper-case hex": lambda t: t.update(total=t["total"].upper()),
    "short signature": lambda t: t["survivor_signatures"].update(
        {k: v[:-2] for k, v in t["survivor_signatures"].items()}
    ),
    "advert of three fields": lambda t: t["adverts"].update(
        {k: v[:3] for k, v in t["adverts"].items()}
    ),
    "client id 0": lambda t: t["seeds"].update({"0": "00" * 32}),
    "client id with a leading zero": lambda t: t["mask_keys"].update({"07": "00" * 32}),
    "survivors not a list": lambda t: t.update(survivors={"1": 1}),
    "an extra field": lambda t: t.update(note="hello"),
    "seed of 31 bytes": lambda t: t["seeds"].update({k: "00" * 31 for k in t["seeds"]}),
}


@pytest.mark.parametrize("name", list(TRANSCRIPT_EDITS))
def test_a_transcript_that_breaks_the_structure_is_refused_by_both(
    transcripts: list[bytes], name: str
) -> None:
    doc = json.loads(transcripts[0])
    TRANSCRIPT_EDITS[name](doc)
    assert not TRANSCRIPT.is_valid(doc)
    with pytest.raises(TrainingError):  # and chainml's decoder refuses it too
        RoundTranscript.decode(canonical(doc))
