"""The session-level check in ``tests/conftest.py``: a run whose tests leave a process
running fails (and the process is killed); a run that stops what it starts passes."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

CONFTEST = Path(__file__).parent / "conftest.py"

LEAKY = """
import subprocess, sys
from pathlib import Path

def test_starts_a_process_and_forgets_it():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    Path("child.pid").write_text(str(proc.pid))
"""

TIDY = """
import subprocess, sys

def test_starts_a_process_and_stops_it():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    proc.terminate()
    proc.wait(timeout=10)
"""


def _inner_run(tmp_path: Path, body: str, *options: str) -> subprocess.CompletedProcess[str]:
    shutil.copy(CONFTEST, tmp_path / "conftest.py")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_inner.py").write_text(body)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options, str(tmp_path)],
        cwd=tmp_path,
        env=dict(os.environ, CHAINML_TEST_LEAK_GRACE="1"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


# "-n 2": under pytest-xdist the leak happens in a worker, and the run (the controller's
# exit status) must still fail
@pytest.mark.parametrize("options", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_a_process_left_running_fails_the_run_and_is_killed(
    tmp_path: Path, options: tuple[str, ...]
):
    run = _inner_run(tmp_path, LEAKY, *options)
    pid = int((tmp_path / "child.pid").read_text())
    assert run.returncode == 1, run.stdout + run.stderr
    assert "outlived the run" in run.stderr and f"pid {pid}" in run.stderr
    deadline = time.monotonic() + 10
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _running(pid)


@pytest.mark.parametrize("options", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_a_run_that_stops_what_it_starts_passes(tmp_path: Path, options: tuple[str, ...]):
    run = _inner_run(tmp_path, TIDY, *options)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "outlived" not in run.stderr
