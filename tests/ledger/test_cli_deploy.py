"""`chainml chain deploy`: the contracts on a running chain, recorded for the nodes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from chainml.ledger.bindings import Chainml
from chainml.ledger.client import LedgerClient
from chainml.ledger.deploy import Deployment


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chainml.cli.main", "chain", "deploy", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def test_deploy_records_a_working_deployment(chain_url: str, tmp_path: Path):
    out = tmp_path / "d.json"
    done = _cli("--rpc", chain_url, "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    deployment = Deployment.load(out)
    cm = Chainml.connect(LedgerClient(chain_url), deployment)  # checks code at each address
    assert cm.registry.total_staked() == 0


def test_deploy_refuses_a_missing_key_and_a_dead_chain(tmp_path: Path):
    done = _cli("--key-env", "CHAINML_NO_SUCH_KEY", "--out", str(tmp_path / "x.json"))
    assert done.returncode == 1 and "CHAINML_NO_SUCH_KEY" in done.stdout
    done = _cli("--rpc", "http://127.0.0.1:9", "--out", str(tmp_path / "y.json"))
    assert done.returncode == 1 and "deployment failed" in done.stdout
    assert not (tmp_path / "y.json").exists()
