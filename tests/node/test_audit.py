"""`audit_round` on a round record an aggregator could publish: it derives the SecAgg+
parameters itself (never from the record), ties the record's configuration to the hash on
chain, and answers every malformed or doctored record, transcript or blob with
`AggregateMismatch` (which `chainml job audit` turns into exit 3) instead of a traceback.

The chain is a stand-in holding only what `audit_round` reads (the job's parameters, its
participants and their registered keys, the round's record CID, root and bitmap); the
round itself is a real in-process SecAgg+ round between five clients."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chainml.crypto import Identity
from chainml.node.rounds import _bitmap, _root, audit_round, record_params, round_params
from chainml.storage.local import LocalBlobStore
from chainml.training.job import JobConfig
from chainml.training.secagg import AggregateMismatch, SecAggClient, SecAggServer, run_in_memory
from tests.protocol.standin import StandInChain

JOB, ROUND, ATTEMPT, CLIP = 4, 2, 1, 5.0
CONFIG = JobConfig(n_features=4, n_classes=2, hidden=(), epochs=1)  # lattice commitments
PLAIN = JobConfig(n_features=4, n_classes=2, hidden=(), epochs=1, verifiable=False)
IDS = {i: Identity.generate() for i in range(1, 6)}
ROSTER = {i: IDS[i].address for i in IDS}


def _chain(config: JobConfig, **kw: object) -> StandInChain:
    keys = {a.address: a.x25519.public_bytes for a in IDS.values()}
    return StandInChain(config, ROSTER, keys, clip=CLIP, **kw)  # type: ignore[arg-type]


Edit = Callable[[dict[str, Any], dict[str, Any], LocalBlobStore], None]


def _audit(
    tmp_path: Path,
    edit: Edit = lambda record, transcript, store: None,
    config: JobConfig = PLAIN,
    published: bytes | None = None,
):
    """Run a real round, store its record as the aggregator does, let ``edit`` doctor the
    record and the transcript, and audit it. The job publishes ``published`` under its
    ``config_cid`` (by default the configuration's own bytes)."""
    store = LocalBlobStore(tmp_path / "blobs")
    params = round_params(_chain(config), JOB, ROUND, ATTEMPT, config, CLIP, ROSTER)  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    clients = {
        i: SecAggClient(params, i, IDS[i], rng.normal(scale=0.1, size=params.vector_len))
        for i in IDS
    }
    server = SecAggServer(params)
    result = run_in_memory(params, clients, server=server)
    transcript = json.loads(result.transcript.encode())
    record: dict[str, Any] = {
        "format": "chainml-round-record/2",
        "job": JOB,
        "round": ROUND,
        "config": config.encode().decode(),
        "inputs": {str(i): store.put(v.astype("<u4").tobytes()) for i, v in server.inputs.items()},
        "params": record_params(params, ATTEMPT),
    }
    edit(record, transcript, store)
    canonical = json.dumps(transcript, sort_keys=True, separators=(",", ":"))
    record.setdefault("transcript", store.put(canonical.encode()))
    chain = _chain(
        config,
        record_cid=store.put(json.dumps(record, sort_keys=True, separators=(",", ":")).encode()),
        root=_root(JOB, ROUND, result.transcript.leaves(params)),
        bitmap=_bitmap(result.survivors),
        config_cid=store.put(config.encode() if published is None else published),
    )
    return audit_round(chain, store, JOB, ROUND)  # type: ignore[arg-type]


@pytest.mark.parametrize("config", [PLAIN, CONFIG], ids=["masked inputs", "commitments"])
def test_an_honest_record_checks_out(tmp_path: Path, config: JobConfig) -> None:
    assert _audit(tmp_path, config=config) == tuple(ROSTER)


def _set(path: str, value: Any) -> Edit:
    def edit(record: dict[str, Any], transcript: dict[str, Any], store: LocalBlobStore) -> None:
        where, *keys = path.split(".")
        target = record if where == "record" else transcript
        for k in keys[:-1]:
            target = target[int(k) if isinstance(target, list) else k]
        last: Any = int(keys[-1]) if isinstance(target, list) else keys[-1]
        if value is KeyError:
            del target[last]
        else:
            target[last] = value

    return edit


def _odd_input(record: dict[str, Any], transcript: dict[str, Any], store: LocalBlobStore) -> None:
    record["inputs"]["1"] = store.put(b"\x00" * 7)


def _unknown_transcript(record: dict[str, Any], _t: dict[str, Any], _s: LocalBlobStore) -> None:
    record["transcript"] = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


def _spaced(record: dict[str, Any], transcript: dict[str, Any], store: LocalBlobStore) -> None:
    record["transcript"] = store.put(json.dumps(transcript, sort_keys=True).encode())


DOCTORED = {
    "transcript not in its canonical encoding": _spaced,
    # what the issue names: a sum of the wrong byte length, a survivor's advert missing
    "sum of 4k+1 bytes": _set("transcript.total", "00" * 41),
    "sum of 3 bytes": _set("transcript.total", "000000"),
    "a survivor's advert missing": _set("transcript.adverts.3", KeyError),
    # the record's parameters are the rule's or the audit refuses them
    "degree not the rule's": _set("record.params.degree", 2),
    "threshold not the rule's": _set("record.params.threshold", 2),
    "graph seed not the rule's": _set("record.params.graph_seed", "00" * 32),
    "attempt missing": _set("record.params.attempt", KeyError),
    "clip not the rule's": _set("record.params.clip", 99.0),
    "another round's record": _set("record.round", ROUND + 1),
    "another job's record": _set("record.job", JOB + 1),
    "attempt negative": _set("record.params.attempt", -1),
    "another configuration": _set(
        "record.config", JobConfig(n_features=4, n_classes=3, hidden=(), epochs=1).encode().decode()
    ),
    # malformed transcripts and blobs
    "transcript format unknown": _set("transcript.format", "chainml-secagg-transcript/2"),
    "survivors not a list": _set("transcript.survivors", 5),
    "seed of the wrong size": _set("transcript.seeds.1", "00"),
    "input entry truncated": _set("transcript.inputs.2", ["00" * 32]),
    "partner id out of range": _set("transcript.inputs.2.1", [0, 70000]),
    "masked input of 7 bytes": _odd_input,
    "masked input missing": _set("record.inputs.4", KeyError),
    "transcript blob missing": _unknown_transcript,
    "record without inputs": _set("record.inputs", KeyError),
    "seed that does not open its commitment": _set("transcript.seeds.2", "11" * 32),
}


def test_a_job_whose_published_configuration_is_another_is_refused(tmp_path: Path) -> None:
    other = JobConfig(n_features=4, n_classes=2, hidden=(), epochs=2, verifiable=False)
    with pytest.raises(AggregateMismatch, match="published"):
        _audit(tmp_path, published=other.encode())


@pytest.mark.parametrize("name", list(DOCTORED))
def test_every_doctored_record_is_a_typed_mismatch(tmp_path: Path, name: str) -> None:
    """A round checked by recomputing the sum from the masked inputs (every field used)."""
    with pytest.raises(AggregateMismatch):
        _audit(tmp_path, DOCTORED[name])


@pytest.mark.parametrize(
    "name",
    [
        "sum of 4k+1 bytes",
        "sum of 3 bytes",
        "degree not the rule's",
        "another configuration",
        "survivors not a list",
        "transcript blob missing",
    ],
)
def test_a_doctored_verifiable_record_is_a_typed_mismatch(tmp_path: Path, name: str) -> None:
    """A round checked from its lattice commitments alone."""
    with pytest.raises(AggregateMismatch):
        _audit(tmp_path, DOCTORED[name], CONFIG)
