"""Run Anvil, an independent Ethereum node, as a subprocess on loopback.

chainml's ledger tests and benchmarks run the same code against the embedded dev chain and
against Anvil (installed by ``make test`` from the npm package ``@foundry-rs/anvil``), so
passing on both shows the code does not lean on one implementation's quirks.
"""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Self

import requests

from chainml.ledger.errors import ChainUnavailable

_ROOT = Path(__file__).resolve().parents[3]


_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago and that this process has not
    handed out before (the system may offer a just-released port again: two servers
    started from one process would then race for it)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port


def stop_process(proc: subprocess.Popen[Any] | None, timeout: float) -> None:
    """SIGTERM ``proc`` and wait; SIGKILL it if it has not stopped within ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Supervised:
    """A server subprocess: ``with`` starts it and stops it at the end."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def find_anvil() -> Path:
    """The Anvil binary: $CHAINML_ANVIL, the project's node_modules, or PATH."""
    if env := os.environ.get("CHAINML_ANVIL"):
        return Path(env)
    arch = {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(platform.machine(), "")
    local = _ROOT / "node_modules" / "@foundry-rs" / f"anvil-linux-{arch}" / "bin" / "anvil"
    if local.exists():
        return local
    found = shutil.which("anvil")
    if found:
        return Path(found)
    raise ChainUnavailable("Anvil is not installed: run `make setup` (npm ci)")


class AnvilProcess(Supervised):
    """``with AnvilProcess() as anvil: anvil.url`` — a fresh Anvil chain, killed on exit."""

    def __init__(self, *, port: int | None = None, startup_timeout: float = 20.0) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> AnvilProcess:
        self._proc = subprocess.Popen(
            [str(find_anvil()), "--host", "127.0.0.1", "--port", str(self.port), "--silent"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self._startup_timeout
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise ChainUnavailable(f"anvil exited with code {self._proc.returncode}")
            try:
                if requests.post(self.url, json=body, timeout=1).ok:
                    return self
            except requests.RequestException:
                time.sleep(0.05)
        self.stop()
        raise ChainUnavailable("anvil did not answer in time")

    def stop(self) -> None:
        stop_process(self._proc, timeout=10)
        self._proc = None
