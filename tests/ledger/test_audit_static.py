"""The static analyser: each planted flaw is caught, the clean control and the real contracts pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from chainml.ledger.artifacts import CONTRACTS_DIR
from chainml.ledger.audit.static import AnalysisError, analyze, main

FLAWS = Path(__file__).parent / "vyper_flaws"


def found(name: str) -> set[tuple[str, str]]:
    return {(f.check, f.function) for f in analyze([FLAWS / name]).findings}


@pytest.mark.parametrize(
    "contract, expected",
    [
        ("state_after_call.vy", {("state-after-call", "withdraw")}),
        (
            "state_after_call_via_internal.vy",
            {("state-after-call", "withdraw"), ("state-after-call", "pay_all")},
        ),
        ("unguarded_transfer.vy", {("unguarded-value-transfer", "withdraw")}),
        ("unchecked_raw_call.vy", {("unchecked-raw-call", "withdraw")}),
        (
            "missing_access_control.vy",
            {
                ("missing-access-control", "set_fee"),
                ("missing-access-control", "set_owner"),
                ("tx-origin", "set_owner"),
            },
        ),
    ],
)
def test_each_planted_flaw_is_caught_and_nothing_else(contract, expected):
    assert found(contract) == expected


def test_the_clean_control_has_no_finding_and_its_waiver_is_listed():
    report = analyze([FLAWS / "clean.vy"])
    assert report.findings == []
    assert [(w.function, w.reason) for w in report.waivers] == [
        ("tip", "anyone may tip the contract")
    ]


def test_removing_a_waiver_turns_it_into_a_finding(tmp_path):
    source = (
        (FLAWS / "clean.vy")
        .read_text()
        .replace("# @audit permissionless: anyone may tip the contract\n", "")
    )
    (tmp_path / "c.vy").write_text(source)
    assert {(f.check, f.function) for f in analyze([tmp_path / "c.vy"]).findings} == {
        ("missing-access-control", "tip")
    }


def test_the_project_contracts_are_clean(capsys):
    assert main([str(CONTRACTS_DIR)]) == 0
    out = capsys.readouterr().out
    assert "0 finding(s) in 5 contract(s)" in out


def test_the_command_fails_on_findings_and_on_broken_source(tmp_path, capsys):
    assert main([str(FLAWS)]) == 1
    (tmp_path / "broken.vy").write_text("def nope(:\n")
    with pytest.raises(AnalysisError):
        analyze([tmp_path / "broken.vy"])
    assert main([str(tmp_path / "broken.vy")]) == 2
