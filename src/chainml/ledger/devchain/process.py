"""Run the embedded chain as its own process: in the foreground, detached, or for a test."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from chainml.ledger.anvil import Supervised, free_port, stop_process
from chainml.ledger.errors import ChainUnavailable

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def serve(
    datadir: Path, host: str, port: int, *, public: bool = False, finality_depth: int = 0
) -> None:
    """Serve until SIGTERM or SIGINT, then close the journal and return.  The ``finalized``
    block is ``finality_depth`` blocks under the head (``DevChain``)."""
    from chainml.ledger.devchain.chain import DevChain
    from chainml.ledger.devchain.server import DevChainHTTPServer

    if host not in LOOPBACK and not public:
        raise ChainUnavailable(f"refusing to serve on {host}: pass --public to leave loopback")
    chain = DevChain(datadir, finality_depth=finality_depth)
    server = DevChainHTTPServer(chain, host, port)

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    print(f"chainml dev chain on http://{host}:{port} (replayed {chain.replayed})", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        chain.close()


def _answers(url: str) -> bool:
    body: dict[str, Any] = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
    try:
        return requests.post(url, json=body, timeout=1).ok
    except requests.RequestException:
        return False


class DevChainProcess(Supervised):
    """``with DevChainProcess(datadir) as chain: chain.url`` — a real server subprocess."""

    def __init__(
        self,
        datadir: Path,
        *,
        port: int | None = None,
        startup_timeout: float = 60.0,
        finality_depth: int = 0,
    ) -> None:
        self.datadir = Path(datadir)
        self.finality_depth = finality_depth
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.startup_timeout = startup_timeout
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> DevChainProcess:
        self.datadir.mkdir(parents=True, exist_ok=True)
        log = (self.datadir / "chain.log").open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "chainml.ledger.devchain",
                "serve",
                "--datadir",
                str(self.datadir),
                "--port",
                str(self.port),
                "--finality-depth",
                str(self.finality_depth),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ChainUnavailable(f"dev chain exited with code {self.proc.returncode}")
            if _answers(self.url):
                return self
            time.sleep(0.05)
        self.kill()
        raise ChainUnavailable("dev chain did not answer in time")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM and wait (SIGKILL if it does not stop in time)."""
        stop_process(self.proc, timeout)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: no chance to clean up, as in a crash."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


# -- detached control for `chainml chain up | down | status` ----------------------------


def pid_file(datadir: Path) -> Path:
    return datadir / "chain.pid"


def running(datadir: Path) -> tuple[int, str] | None:
    """(pid, url) of a live detached chain on ``datadir``, or None."""
    path = pid_file(datadir)
    try:
        pid_text, url = path.read_text().split()
        pid = int(pid_text)
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid, url


def up(datadir: Path, port: int, finality_depth: int = 0) -> str:
    """Start a detached chain (or find the running one); returns its URL.  Its
    ``finalized`` block trails the head by ``finality_depth`` blocks (``safe`` by half)."""
    if found := running(datadir):
        return found[1]
    datadir.mkdir(parents=True, exist_ok=True)
    log = (datadir / "chain.log").open("ab")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "chainml.ledger.devchain",
            "serve",
            "--datadir",
            str(datadir),
            "--port",
            str(port),
            "--finality-depth",
            str(finality_depth),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ChainUnavailable(f"dev chain exited: see {datadir / 'chain.log'}")
        if _answers(url):
            pid_file(datadir).write_text(f"{proc.pid} {url}\n")
            return url
        time.sleep(0.1)
    proc.kill()
    raise ChainUnavailable("dev chain did not answer within 120 s")


def down(datadir: Path) -> bool:
    """Stop the detached chain; False if none was running."""
    found = running(datadir)
    if not found:
        return False
    pid = found[0]
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.1)
    pid_file(datadir).unlink(missing_ok=True)
    return True
