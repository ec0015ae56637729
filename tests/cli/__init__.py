"""Running the ``chainml`` command as a user would: a process of its own."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def chainml(*args: str | Path, password: str | None = None) -> subprocess.CompletedProcess[str]:
    """``chainml ARGS``, with ``CHAINML_PASSWORD`` set only when ``password`` is given (a
    command that needs a keystore without it fails rather than waits at a prompt)."""
    env = {k: v for k, v in os.environ.items() if k != "CHAINML_PASSWORD"}
    if password is not None:
        env["CHAINML_PASSWORD"] = password
    return subprocess.run(
        [sys.executable, "-m", "chainml.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        stdin=subprocess.DEVNULL,
    )
