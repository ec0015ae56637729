"""Fixtures several test packages share."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
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


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a process the tests started is still running once every fixture
    is torn down (after a grace period for those on their way out); they are killed."""
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
    sys.stderr.write(f"\nprocesses the tests started outlived the run (killed now):\n{lines}\n")
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
