"""Parties on separate network hosts, on one Linux machine: one network namespace each.

``Network(["chain", "aggregator", "trainer-1"])`` creates a bridge with a name of its own
in the machine's namespace, with no address on it (the machine itself is not on the test
network), and for each host a network namespace with loopback up and one veth pair: the
inner end, ``eth0``, holds the host's address on a private /24 (``SUBNET``), the outer end
is a port of the bridge.  There is no default route anywhere: a host reaches the other
hosts on the /24 and its own loopback (each namespace has its own), nothing else.  No
IPv6 address is generated on any of these links, so their byte counters count only what
the hosts send each other.

Running things inside a host
    ``Host.popen(argv)`` starts a process through ``ip netns exec`` with a parent-death
    signal (``PR_SET_PDEATHSIG``, SIGKILL), so that it dies with the process that started
    it (call it from a thread that lives as long as the process: the signal follows the
    thread), and without the caller's proxy variables.  ``Host.call(fn, ...)`` runs ``fn``
    on a thread of this process that entered the host's namespace with ``setns``: sockets
    made there belong to the host (a driver can deploy contracts or probe a port without a
    child process).  The kubo engine and anything else that starts threads of its own
    belongs in a process.

Cleaning up
    ``close()`` (the context manager's exit, and ``atexit`` if the interpreter ends
    first) stops the processes started through ``popen``, kills anything else still inside
    the namespaces, deletes the namespaces, the veth pairs and the bridge.  While a network
    is up, SIGTERM (if it had its default action) raises ``SystemExit`` so that the same
    path runs.  A run killed outright (SIGKILL) leaves its state file in ``STATE_DIR``
    behind with a dead owner: the next ``Network`` to start, or ``sweep()``, removes
    everything named after it.  Names carry a tag per network (``cml-TAG-host``,
    ``cmlb-TAG``, ``cmlv-TAG-N``), so networks of concurrent runs never touch each other.

Everything here needs root (``unavailable()`` says why not, for a test to skip).
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from chainml.errors import ChainmlError

__all__ = [
    "SUBNET",
    "Host",
    "HostsError",
    "HostsUnavailable",
    "LinkBytes",
    "Network",
    "sweep",
    "unavailable",
]

SUBNET = "10.231.7.0/24"
STATE_DIR = Path("/run/chainml-hosts")
NS_PREFIX = "cml-"
LINK_PREFIXES = ("cmlb-", "cmlv-", "cmlp-")
_CLONE_NEWNET = 0x40000000
_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
_TAG = re.compile(r"[0-9a-f]{6}")
_PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")

T = TypeVar("T")


class HostsUnavailable(ChainmlError):
    """Network namespaces cannot be made here (not root, not Linux, no iproute2)."""


class HostsError(ChainmlError):
    """An ``ip`` command failed while building or removing a network."""


def unavailable() -> str | None:
    """Why this machine cannot run a ``Network`` (None: it can)."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces and bridges need root"
    for tool in ("ip", "unshare"):
        if shutil.which(tool) is None:
            return f"the {tool} command is not installed"
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return f"cannot make a network namespace: {probe.stderr.strip()[:200]}"
    return None


def _ip(*args: str, ns: str | None = None, check: bool = True) -> str:
    argv = ["ip", *(["-n", ns] if ns else []), *args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise HostsError(f"{' '.join(argv)}: {done.stderr.strip()[:300]}")
    return done.stdout


# -- ownership of names, and the sweep of what dead runs left ------------------------------


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _live_tags() -> set[str]:
    live: set[str] = set()
    if not STATE_DIR.is_dir():
        return live
    for path in STATE_DIR.glob("*.json"):
        try:
            owner = json.loads(path.read_text())
            alive = _start_time(int(owner["pid"])) == owner["start"]
        except (OSError, ValueError, KeyError, TypeError):
            alive = False
        if alive:
            live.add(path.stem)
    return live


def _namespaces() -> list[str]:
    return [line.split()[0] for line in _ip("netns", "list").splitlines() if line.strip()]


def _links() -> list[str]:
    names = []
    for line in _ip("-o", "link", "show").splitlines():
        parts = line.split(":", 2)
        if len(parts) > 1:
            names.append(parts[1].strip().split("@")[0])
    return names


def _tag(name: str) -> str | None:
    """The network tag in one of the harness's names (None: not one of them)."""
    parts = name.split("-")
    return parts[1] if len(parts) >= 2 and _TAG.fullmatch(parts[1]) else None


def _kill_inside(ns: str) -> None:
    """SIGKILL every process left inside ``ns`` (only ever started by a network's own
    ``popen``: nothing else enters these namespaces) and wait for them to go."""
    pids = [int(p) for p in _ip("netns", "pids", ns, check=False).split() if p.isdigit()]
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if _start_time(p) is not None and not _zombie(p)]
        time.sleep(0.05)


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def sweep() -> list[str]:
    """Remove the namespaces, links and state files of networks whose owner is dead;
    returns what was removed."""
    live = _live_tags()
    removed: list[str] = []
    for ns in _namespaces():
        if ns.startswith(NS_PREFIX) and _tag(ns) and _tag(ns) not in live:
            _kill_inside(ns)
            _ip("netns", "delete", ns, check=False)
            removed.append(ns)
    for link in _links():
        if link.startswith(LINK_PREFIXES) and _tag(link) and _tag(link) not in live:
            _ip("link", "delete", link, check=False)
            removed.append(link)
    if STATE_DIR.is_dir():
        for path in STATE_DIR.glob("*.json"):
            if path.stem not in live:
                path.unlink(missing_ok=True)
    return removed


# -- hosts ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkBytes:
    """Bytes on a host's link, as the host sees them."""

    sent: int
    received: int

    def __sub__(self, other: LinkBytes) -> LinkBytes:
        return LinkBytes(self.sent - other.sent, self.received - other.received)


_libc = ctypes.CDLL(None, use_errno=True)
_prctl = _libc.prctl  # resolved before any fork: the child only calls it
_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _enter(ns: str) -> None:
    fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
    try:
        if _libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns into {ns}: {os.strerror(err)}")
    finally:
        os.close(fd)


@dataclass
class Host:
    """One party's machine: a namespace with one address on the test network."""

    name: str
    netns: str
    address: str
    link: str  # the outer end of its veth pair, in the machine's namespace
    network: Network = field(repr=False)
    _executor: ThreadPoolExecutor | None = field(default=None, repr=False)

    def argv(self, argv: Sequence[str]) -> list[str]:
        """``argv`` as run inside this host."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def popen(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, **kwargs: Any
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside the host; ``close()`` stops it if nobody did."""
        proc: subprocess.Popen[bytes] = subprocess.Popen(
            self.argv(argv), env=_environment(env), preexec_fn=_die_with_parent, **kwargs
        )
        self.network._processes.append(proc)
        return proc

    def run(
        self, argv: Sequence[str], *, timeout: float = 60, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run ``argv`` inside the host to its end (``timeout`` seconds at most)."""
        return subprocess.run(
            self.argv(argv), env=_environment(env), capture_output=True, text=True, timeout=timeout
        )

    def call(self, fn: Callable[..., T], *args: Any, timeout: float = 120, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on this process's thread inside the host's namespace."""
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                1,
                thread_name_prefix=f"host-{self.name}",
                initializer=_enter,
                initargs=(self.netns,),
            )
        return self._executor.submit(fn, *args, **kwargs).result(timeout)

    def link_bytes(self) -> LinkBytes:
        """What the host has sent and received on its link so far (kernel counters of the
        outer veth end: what it receives, the host sent)."""
        stats = Path("/sys/class/net") / self.link / "statistics"
        return LinkBytes(
            int((stats / "rx_bytes").read_text()), int((stats / "tx_bytes").read_text())
        )

    def cut(self) -> None:
        """Cut the host off the network (its link down, at the bridge's end): what it sends
        is lost, nothing reaches it; its processes keep running."""
        _ip("link", "set", self.link, "down")

    def heal(self) -> None:
        """Put the host back on the network after ``cut``."""
        _ip("link", "set", self.link, "up")

    def throttle(self, kbit: int, address: str, port: int) -> None:
        """Limit what the host sends to ``address:port`` to ``kbit`` kilobits a second
        (``tc htb`` on its ``eth0``; everything else it sends stays unlimited)."""
        tc = ["ip", "netns", "exec", self.netns, "tc"]
        for line in (
            "qdisc add dev eth0 root handle 1: htb default 10",
            "class add dev eth0 parent 1: classid 1:10 htb rate 10gbit",
            f"class add dev eth0 parent 1: classid 1:20 htb rate {kbit}kbit ceil {kbit}kbit",
            "filter add dev eth0 protocol ip parent 1: prio 1 u32"
            f" match ip dst {address}/32 match ip dport {int(port)} 0xffff flowid 1:20",
        ):
            done = subprocess.run([*tc, *line.split()], capture_output=True, text=True, timeout=30)
            if done.returncode != 0:
                raise HostsError(f"tc {line}: {done.stderr.strip()[:300]}")

    def unthrottle(self) -> None:
        """Remove what ``throttle`` set."""
        subprocess.run(
            ["ip", "netns", "exec", self.netns, "tc", "qdisc", "del", "dev", "eth0", "root"],
            capture_output=True,
            timeout=30,
        )

    def lose(self, percent: float) -> None:
        """Drop ``percent`` of the packets the host sends on its link, at random (nftables
        in its namespace: ``numgen random``; the kernel here has no netem)."""
        if shutil.which("nft") is None:
            raise HostsError("random loss needs nftables (the nft command)")
        if not 0 < percent < 100:
            raise ValueError("percent: between 0 and 100")
        per_10k = round(percent * 100)
        rules = (
            "add table inet chainml_hosts\n"
            "add chain inet chainml_hosts out { type filter hook output priority 0 ; }\n"
            "add rule inet chainml_hosts out oifname eth0"
            f" numgen random mod 10000 < {per_10k} drop\n"
        )
        done = subprocess.run(
            ["ip", "netns", "exec", self.netns, "nft", "-f", "-"],
            input=rules,
            capture_output=True,
            text=True,
            timeout=30,
        )
        if done.returncode != 0:
            raise HostsError(f"nft: {done.stderr.strip()[:300]}")

    def lossless(self) -> None:
        """Remove what ``lose`` set."""
        subprocess.run(
            ["ip", "netns", "exec", self.netns, "nft", "delete", "table", "inet", "chainml_hosts"],
            capture_output=True,
            timeout=30,
        )

    def wait_port(self, address: str, port: int, timeout: float = 30.0) -> None:
        """Until a TCP connection from this host to ``address:port`` succeeds."""
        deadline = time.monotonic() + timeout

        def probe() -> bool:
            try:
                socket.create_connection((address, port), timeout=1).close()
            except OSError:
                return False
            return True

        while not self.call(probe):
            if time.monotonic() > deadline:
                raise HostsError(f"{self.name}: nothing answers at {address}:{port}")
            time.sleep(0.1)

    def _shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None


def _environment(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.lower() not in _PROXY_VARS}
    env.update(extra or {})
    return env


class Network:
    """A bridge and one namespace per host name; a context manager (see the module)."""

    def __init__(self, names: Sequence[str], *, subnet: str = SUBNET) -> None:
        net = ipaddress.ip_network(subnet)
        if not isinstance(net, ipaddress.IPv4Network) or not net.is_private or net.prefixlen > 28:
            raise ValueError("subnet: a private IPv4 network of at least 16 addresses")
        if len(set(names)) != len(names) or not names:
            raise ValueError("host names must be distinct, and at least one")
        if len(names) > min(net.num_addresses - 3, 99):
            raise ValueError(f"too many hosts for {subnet}")
        for name in names:
            if not _NAME.fullmatch(name):
                raise ValueError(f"host name {name!r}: lower-case letters, digits and '-'")
        self.subnet = net
        self.tag = secrets.token_hex(3)
        self.bridge = f"cmlb-{self.tag}"
        addresses = net.hosts()
        next(addresses)  # .1 stays free, like a gateway's would
        self.hosts: dict[str, Host] = {}
        for i, name in enumerate(names):
            self.hosts[name] = Host(
                name,
                f"{NS_PREFIX}{self.tag}-{name}",
                str(next(addresses)),
                f"cmlv-{self.tag}-{i}",
                self,
            )
        self._processes: list[subprocess.Popen[bytes]] = []
        self._state = STATE_DIR / f"{self.tag}.json"
        self._old_sigterm: Any = None
        self._closed = True

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def __iter__(self) -> Iterator[Host]:
        return iter(self.hosts.values())

    @property
    def prefixlen(self) -> int:
        return self.subnet.prefixlen

    def __enter__(self) -> Network:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        reason = unavailable()
        if reason:
            raise HostsUnavailable(reason)
        sweep()
        STATE_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        me = os.getpid()
        self._state.write_text(json.dumps({"pid": me, "start": _start_time(me)}))
        self._closed = False
        atexit.register(self.close)
        self._trap_sigterm()
        try:
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("link", "set", self.bridge, "addrgenmode", "none")
            _ip("link", "set", self.bridge, "up")
            for i, host in enumerate(self.hosts.values()):
                inner = f"cmlp-{self.tag}-{i}"
                _ip("netns", "add", host.netns)
                _ip("link", "set", "lo", "up", ns=host.netns)
                _ip("link", "add", host.link, "type", "veth", "peer", "name", inner)
                _ip("link", "set", host.link, "addrgenmode", "none")
                _ip("link", "set", inner, "netns", host.netns)
                _ip("link", "set", inner, "name", "eth0", ns=host.netns)
                _ip("link", "set", "eth0", "addrgenmode", "none", ns=host.netns)
                _ip("addr", "add", f"{host.address}/{self.prefixlen}", "dev", "eth0", ns=host.netns)
                _ip("link", "set", "eth0", "up", ns=host.netns)
                _ip("link", "set", host.link, "master", self.bridge)
                _ip("link", "set", host.link, "up")
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Stop every process, remove every namespace and link; idempotent."""
        if self._closed:
            return
        self._closed = True
        for proc in self._processes:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 10
        for proc in self._processes:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        for host in self.hosts.values():
            host._shutdown()
        present = set(_namespaces())
        for host in self.hosts.values():
            if host.netns in present:
                _kill_inside(host.netns)
                _ip("netns", "delete", host.netns, check=False)
        links = set(_links())
        for name in [h.link for h in self.hosts.values()] + [self.bridge]:
            if name in links:
                _ip("link", "delete", name, check=False)
        self._state.unlink(missing_ok=True)
        atexit.unregister(self.close)
        self._restore_sigterm()

    def leftovers(self) -> list[str]:
        """This network's namespaces, links and started processes that still exist
        (empty once closed)."""
        mine = f"-{self.tag}-"
        return (
            [n for n in _namespaces() if mine in n]
            + [n for n in _links() if n == self.bridge or mine in n]
            + [f"process {p.pid}" for p in self._processes if p.poll() is None]
        )

    def _trap_sigterm(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return

        def stop(signum: int, frame: FrameType | None) -> None:
            raise SystemExit(128 + signum)

        self._old_sigterm = signal.signal(signal.SIGTERM, stop)

    def _restore_sigterm(self) -> None:
        if self._old_sigterm is not None and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None
