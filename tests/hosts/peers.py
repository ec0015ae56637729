"""A blob peer on a test host (``chainml.devtools.hostpeer``), driven from a test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from chainml.devtools.hosts import Host


class HostPeer:
    """The embedded kubo engine in its own process on ``host``, listening on its address."""

    def __init__(self, host: Host, repo: Path, *peers: str) -> None:
        argv = [sys.executable, "-m", "chainml.devtools.hostpeer", str(repo)]
        argv += ["--swarm-address", f"{host.address}/{host.network.prefixlen}"]
        for peer in peers:
            argv += ["--peer", peer]
        self.proc = host.popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.multiaddr = str(self._read()["multiaddr"])

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"the host peer exited with {self.proc.wait(10)}")
        return dict(json.loads(line))

    def ask(self, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command).encode() + b"\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait(30)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
