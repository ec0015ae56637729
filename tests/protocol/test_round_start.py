"""``round/start`` (``docs/protocol/secagg.md`` §8.2): the vector decodes to its fields and
re-encodes to the same bytes with chainml; the independent reading of the spec agrees; a
non-finite clip is refused (§15 item 12: chainml does not refuse it yet)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from chainml.node.rounds import RoundStart
from chainml.training.secagg import ProtocolViolation

V: dict[str, Any] = json.loads(
    (Path(__file__).resolve().parents[2] / "docs/protocol/vectors/secagg-v4.json").read_text()
)["round_start"]
ORDER = ["format", "config", "params", "roster", "clip", "attempt"]


def _independent(raw: bytes) -> dict[str, Any]:
    """§8.2 as written: the fields in order, no whitespace, a finite clip, ids as decimal."""

    def refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    d = json.loads(raw, parse_constant=refuse_constant)
    if list(d) != ORDER or json.dumps(d, separators=(",", ":")).encode() != raw:
        raise ValueError("not the encoding of §8.2")
    if d["format"] != "chainml-round-start/2" or not math.isfinite(d["clip"]):
        raise ValueError("unknown format or clip")
    return d


def test_the_round_start_vector_with_chainml():
    start = RoundStart.decode(V["message"].encode())
    assert start.encode() == V["message"].encode()
    assert start.config.decode() == V["config"]
    assert {str(i): a for i, a in start.roster.items()} == V["roster"]
    assert (start.clip, start.attempt) == (V["clip"], V["attempt"])


def test_the_round_start_vector_independently():
    d = _independent(V["message"].encode())
    assert (d["config"], d["roster"], d["clip"], d["attempt"]) == (
        V["config"],
        V["roster"],
        V["clip"],
        V["attempt"],
    )
    with pytest.raises(ValueError):
        _independent(V["nan_clip"].encode())


def test_a_nan_clip_is_refused_by_chainml():
    with pytest.raises(ProtocolViolation):
        RoundStart.decode(V["nan_clip"].encode())
