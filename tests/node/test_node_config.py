"""node.toml: every table and key the template writes is one the node reads, a table or key
no part of the node declares (a misspelling) is refused by name instead of left at its
default, and each role parses its own keys, refusing a value of the wrong kind by name."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from chainml.node import core, roles
from chainml.node.roles import aggregator, provider, trainer


def _init(tmp_path: Path) -> Path:
    roles.init(
        tmp_path, "n", "pw", rpc="http://127.0.0.1:1", deployment="d.json", port=1, work=1 << 10
    )
    return tmp_path / "node.toml"


def _escaped(words: str) -> str:
    return words.replace("[", r"\[").replace("]", r"\]")


def test_the_template_uses_only_known_tables_and_keys(tmp_path: Path):
    path = _init(tmp_path)
    doc = tomllib.loads(path.read_text())
    tables = core.known_keys((*core.SECTIONS, *roles.SECTIONS))
    assert set(doc) == set(tables)
    for table, keys in tables.items():
        if keys is not None:  # [http] and [storage] check their own keys
            assert set(doc[table]) <= keys, table
    config = roles.load_config(path)
    assert config.settings(aggregator.SETTINGS).stage_timeout == 10.0
    assert config.settings(aggregator.SETTINGS).jobs_dir == tmp_path / "jobs"
    assert config.settings(trainer.SETTINGS).data is None  # commented out in the template
    assert config.settings(provider.SETTINGS).receipt_batch == 100


def test_each_role_reads_its_own_keys_of_a_shared_table(tmp_path: Path):
    path = _init(tmp_path)
    text = path.read_text().replace('# data = "data.npz"', 'data = "mine.npz"')
    path.write_text(text.replace("stage_timeout = 10 ", "stage_timeout = 2.5 "))
    config = roles.load_config(path)
    assert config.settings(trainer.SETTINGS).data == tmp_path / "mine.npz"
    assert config.settings(aggregator.SETTINGS).stage_timeout == 2.5


def test_a_table_is_known_only_through_a_role_that_declares_it(tmp_path: Path):
    """The check is a loop over the declarations given: without the roles', [training] and
    [inference] are tables no part of the node reads."""
    path = _init(tmp_path)
    with pytest.raises(core.ConfigError, match=_escaped("no table [training]")):
        core.NodeConfig.load(path, ())
    assert core.NodeConfig.load(path, (trainer.SETTINGS, aggregator.SETTINGS, provider.SETTINGS))
    with pytest.raises(core.ConfigError, match=_escaped("no table [inference]")):
        core.NodeConfig.load(path, (trainer.SETTINGS, aggregator.SETTINGS))
    path.write_text(path.read_text().replace('# data = "data.npz"', 'data = "data.npz"'))
    with pytest.raises(core.ConfigError, match=_escaped("[training] takes no 'data'")):
        core.NodeConfig.load(path, (aggregator.SETTINGS, provider.SETTINGS))


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (("stage_timeout = 10", "stage_timout = 3"), "[training] takes no 'stage_timout'"),
        (("[workers]", "[worker]"), "no table [worker]"),
        (("interval = 5 ", "intervall = 5 "), "[monitor] takes no 'intervall'"),
        (("[limits]\n", "[limits]\nmax_stake = 9\n"), "[limits] takes no 'max_stake'"),
        (('password_env = "CHAINML_PASSWORD"', "node = 3"), "[node] takes no 'node'"),
        (("receipt_age = 60", "receipt_ages = 60"), "[inference] takes no 'receipt_ages'"),
    ],
)
def test_an_unknown_table_or_key_is_refused_by_name(
    tmp_path: Path, edit: tuple[str, str], words: str
):
    path = _init(tmp_path)
    text = path.read_text()
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(core.ConfigError, match=_escaped(words)):
        roles.load_config(path)


@pytest.mark.parametrize(
    ("edit", "table", "key"),
    [
        (("stage_timeout = 10 ", 'stage_timeout = "ten" '), "training", "stage_timeout"),
        (("stage_timeout = 10 ", "stage_timeout = 0 "), "training", "stage_timeout"),
        (("stage_timeout = 10 ", "stage_timeout = nan "), "training", "stage_timeout"),
        (('jobs_dir = "jobs"', "jobs_dir = 7"), "training", "jobs_dir"),
        (('jobs_dir = "jobs"', 'jobs_dir = ""'), "training", "jobs_dir"),
        (('# data = "data.npz"', "data = true"), "training", "data"),
        (("price = 1000000000000", "price = -1"), "inference", "price"),
        (("price = 1000000000000", "price = 1.5"), "inference", "price"),
        (("receipt_batch = 100", "receipt_batch = 0"), "inference", "receipt_batch"),
        (("receipt_age = 60", "receipt_age = -1"), "inference", "receipt_age"),
        (("model_version = 0", "model_version = false"), "inference", "model_version"),
    ],
)
def test_a_role_refuses_a_bad_value_naming_its_key(
    tmp_path: Path, edit: tuple[str, str], table: str, key: str
):
    path = _init(tmp_path)
    text = path.read_text()
    assert edit[0] in text
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(core.BadSetting, match=_escaped(f"[{table}] {key}: ")) as caught:
        roles.load_config(path)
    assert (caught.value.table, caught.value.key) == (table, key)
    assert isinstance(caught.value, core.ConfigError)


def test_a_config_loaded_without_a_role_s_section_gives_its_defaults(tmp_path: Path):
    config = roles.load_config(_init(tmp_path))
    bare = core.NodeConfig(**{**config.__dict__, "sections": {}})
    assert bare.settings(provider.SETTINGS) == config.settings(provider.SETTINGS)
    assert bare.settings(aggregator.SETTINGS).stage_timeout == 10.0
