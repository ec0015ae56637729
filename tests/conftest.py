"""Fixtures several test packages share."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

import pytest

from chainml.training.data import Dataset, load
from chainml.training.models import MLP


@pytest.fixture(scope="session")
def digits() -> Dataset:
    return load("digits", seed=0)


@pytest.fixture(scope="session")
def x2_mlp(digits: Dataset) -> MLP:
    """The digits MLP 64→32→10 trained with the x² activation from the start, so that the
    model evaluated under CKKS is the trained one."""
    model = MLP(64, 10, (32,), activation="square", seed=0)
    for epoch in range(30):
        model.fit(digits.x_train, digits.y_train, epochs=1, lr=0.02, seed=epoch)
    return model


# -- no process outlives the run ----------------------------------------------------------

# seconds a process may take to exit after its test stopped it
LEAK_GRACE_SECONDS = float(os.environ.get("CHAINML_TEST_LEAK_GRACE", "10"))


def _descendants(root: int) -> dict[int, str]:
    """Live (not zombie) descendants of ``root``: pid -> command line, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # gone meanwhile
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if state != "Z":
            children.setdefault(int(ppid), []).append(int(entry))
    found: dict[int, str] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        found[pid] = cmd.strip()[:200]
        todo.extend(children.get(pid, []))
    return found


# Under pytest-xdist each worker checks its own descendants, and the run's outcome is the
# controller's: a worker that finds a leak writes it here and the controller fails the run.
LEAK_REPORTS = "CHAINML_TEST_LEAK_REPORTS"


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def pytest_configure(config: pytest.Config) -> None:
    if not _is_worker(config):
        os.environ[LEAK_REPORTS] = tempfile.mkdtemp(prefix="chainml-leaks-")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With ``--dist loadgroup`` a test file runs on one worker (its module fixtures, chains
    and nodes are set up once), and every multi-host test on the same worker (they share the
    machine's network namespaces and are the heaviest)."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None:
            path = item.nodeid.split("::")[0]
            group = "hosts" if path.startswith("tests/hosts/") else path
            item.add_marker(pytest.mark.xdist_group(group))


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a process the tests started is still running once every fixture
    is torn down (after a grace period for those on their way out); they are killed."""
    reports = Path(os.environ.get(LEAK_REPORTS, "/nonexistent"))
    if not _is_worker(session.config) and reports.is_dir():
        found = sorted(reports.iterdir())
        for report in found:
            sys.stderr.write(report.read_text())
        shutil.rmtree(reports, ignore_errors=True)
        if found:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if not Path("/proc/self/stat").exists():
        return  # not Linux: nothing to scan
    deadline = time.monotonic() + LEAK_GRACE_SECONDS
    left = _descendants(os.getpid())
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = _descendants(os.getpid())
    if not left:
        return
    for pid in left:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    lines = "\n".join(f"  pid {pid}: {cmd}" for pid, cmd in sorted(left.items()))
    message = f"\nprocesses the tests started outlived the run (killed now):\n{lines}\n"
    sys.stderr.write(message)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if _is_worker(session.config) and reports.is_dir():
        (reports / f"worker-{os.getpid()}.txt").write_text(message)
