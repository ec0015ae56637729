"""node.toml: every table and key the template writes is one the node reads, and a table or
key it does not know (a misspelling) is refused by name instead of left at its default."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from chainml.node import core


def _init(tmp_path: Path) -> Path:
    core.init(
        tmp_path, "n", "pw", rpc="http://127.0.0.1:1", deployment="d.json", port=1, work=1 << 10
    )
    return tmp_path / "node.toml"


def test_the_template_uses_only_known_tables_and_keys(tmp_path: Path):
    path = _init(tmp_path)
    doc = tomllib.loads(path.read_text())
    assert set(doc) == set(core.SECTIONS)
    for section, keys in core.SECTIONS.items():
        if keys:  # [http] and [storage] check their own keys
            assert set(doc[section]) <= keys, section
    assert core.NodeConfig.load(path).stage_timeout == 10.0


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (("stage_timeout = 10", "stage_timout = 3"), "[training] takes no 'stage_timout'"),
        (("[workers]", "[worker]"), "no table [worker]"),
        (("interval = 5 ", "intervall = 5 "), "[monitor] takes no 'intervall'"),
        (("[limits]\n", "[limits]\nmax_stake = 9\n"), "[limits] takes no 'max_stake'"),
        (('password_env = "CHAINML_PASSWORD"', "node = 3"), "[node] takes no 'node'"),
    ],
)
def test_an_unknown_table_or_key_is_refused_by_name(
    tmp_path: Path, edit: tuple[str, str], words: str
):
    path = _init(tmp_path)
    text = path.read_text()
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(core.ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        core.NodeConfig.load(path)
