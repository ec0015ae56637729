"""The hosts harness itself: namespaces that reach each other over their bridge and nothing
else, and that are gone afterwards, whether the run ended, failed, was stopped or killed."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import time

import pytest

from chainml.devtools import hosts
from chainml.devtools.hosts import Network


def _checksum(data: bytes) -> int:
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def _ping(address: str, timeout: float = 2.0) -> bool:
    """One ICMP echo to ``address``; whether the reply came."""
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as s:
        s.settimeout(timeout)
        ident, payload = os.getpid() & 0xFFFF, b"chainml hosts!"
        header = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
        packet = struct.pack("!BBHHH", 8, 0, _checksum(header + payload), ident, 1) + payload
        try:
            s.sendto(packet, (address, 0))
        except OSError:
            return False  # no route
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                reply, (source, _) = s.recvfrom(1024)
            except TimeoutError:
                return False
            icmp = reply[(reply[0] & 0x0F) * 4 :]
            if source == address and icmp[0] == 0 and struct.unpack("!H", icmp[4:6])[0] == ident:
                return True
        return False


def _connect(address: str, port: int) -> str:
    try:
        with socket.create_connection((address, port), timeout=2) as c:
            return c.recv(64).decode()
    except OSError as exc:
        return type(exc).__name__


SERVE = "import socket,sys\ns=socket.create_server((sys.argv[1],int(sys.argv[2])))\nprint('up',flush=True)\nwhile True:\n    c,_=s.accept();c.sendall(b'hello from '+sys.argv[1].encode());c.close()"


def test_two_hosts_ping_and_connect_over_the_bridge():
    with Network(["alpha", "beta"]) as net:
        a, b = net["alpha"], net["beta"]
        assert a.address != b.address
        server = b.popen([sys.executable, "-c", SERVE, b.address, "7000"], stdout=subprocess.PIPE)
        assert server.stdout is not None and server.stdout.readline() == b"up\n"
        before = a.link_bytes()
        assert a.call(_ping, b.address)
        assert b.call(_ping, a.address)
        assert a.call(_connect, b.address, 7000) == f"hello from {b.address}"
        moved = a.link_bytes() - before
        assert moved.sent > 0 and moved.received > len(f"hello from {b.address}")
        # beta's own loopback is its own: the server is not on it
        assert b.call(_connect, "127.0.0.1", 7000) == "ConnectionRefusedError"


def test_a_host_cut_off_and_healed():
    with Network(["alpha", "beta"]) as net:
        a, b = net["alpha"], net["beta"]
        assert a.call(_ping, b.address)
        b.cut()
        assert a.call(_ping, b.address, 0.5) is False
        assert b.call(_ping, a.address, 0.5) is False
        b.heal()
        deadline = time.monotonic() + 5
        while not a.call(_ping, b.address, 0.5) and time.monotonic() < deadline:
            pass
        assert a.call(_ping, b.address) and b.call(_ping, a.address)


def _send(address: str, port: int, size: int) -> None:
    with socket.create_connection((address, port), timeout=30) as c:
        c.sendall(b"x" * size)
        c.shutdown(socket.SHUT_WR)
        assert c.recv(16) == str(size).encode()


COUNT = "import socket,sys\ns=socket.create_server((sys.argv[1],int(sys.argv[2])))\nprint('up',flush=True)\nwhile True:\n    c,_=s.accept();n=0\n    while d:=c.recv(65536): n+=len(d)\n    c.sendall(str(n).encode());c.close()"


def test_a_throttled_host_sends_slowly_to_that_port_only():
    with Network(["alpha", "beta"]) as net:
        a, b = net["alpha"], net["beta"]
        for port in ("7000", "7001"):
            server = b.popen([sys.executable, "-c", COUNT, b.address, port], stdout=subprocess.PIPE)
            assert server.stdout is not None and server.stdout.readline() == b"up\n"
        a.throttle(160, b.address, 7000)  # 20 KB a second
        started = time.monotonic()
        a.call(_send, b.address, 7001, 40_000)
        assert time.monotonic() - started < 1.0  # another port: not limited
        started = time.monotonic()
        a.call(_send, b.address, 7000, 40_000)
        assert time.monotonic() - started > 1.0  # 2 s at the rate, less its burst
        a.unthrottle()
        started = time.monotonic()
        a.call(_send, b.address, 7000, 40_000)
        assert time.monotonic() - started < 1.0


@pytest.mark.skipif(
    shutil.which("nft") is None, reason="random loss needs nftables (make test installs it)"
)
def test_a_lossy_host_drops_about_that_share_of_what_it_sends():
    with Network(["alpha", "beta"]) as net:
        a, b = net["alpha"], net["beta"]
        with pytest.raises(ValueError):
            a.lose(100)
        a.lose(30)  # only alpha's packets: an echo comes back 70% of the time
        answered = sum(a.call(_ping, b.address, 0.1) for _ in range(60))
        assert 26 <= answered <= 57  # 42 expected; the bounds are 4 standard deviations off
        a.lossless()
        assert all(a.call(_ping, b.address) for _ in range(10))


def test_a_host_reaches_neither_the_machine_nor_beyond():
    machine = socket.create_server(("127.0.0.1", 0))
    port = machine.getsockname()[1]
    outside = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        outside.connect(("192.0.2.1", 9))  # a documentation address: only picks the route
        machine_address = outside.getsockname()[0]
    except OSError:
        machine_address = None
    finally:
        outside.close()
    try:
        assert _connect("127.0.0.1", port) != "ConnectionRefusedError"  # the machine's service
        with Network(["alpha"]) as net:
            alpha = net["alpha"]
            # its loopback is not the machine's: nothing listens there
            assert alpha.call(_connect, "127.0.0.1", port) == "ConnectionRefusedError"
            assert alpha.call(_ping, "192.0.2.1", 0.5) is False
            if machine_address and machine_address != "127.0.0.1":
                assert alpha.call(_connect, machine_address, port) == "OSError"  # unreachable
            routes = alpha.run(["ip", "route"]).stdout
            assert "default" not in routes and routes.count("\n") == 1, routes
            assert "dev eth0" in routes
    finally:
        machine.close()


def test_close_removes_every_process_namespace_and_link_even_on_failure():
    net = Network(["alpha", "beta"])
    with pytest.raises(RuntimeError), net:
        proc = net["alpha"].popen(["sleep", "600"])
        # two namespaces, two veth ends, one bridge, one process
        assert len(net.leftovers()) == 6 and f"process {proc.pid}" in net.leftovers()
        raise RuntimeError("a test failing half-way")
    assert proc.poll() is not None
    assert net.leftovers() == []
    assert not (hosts.STATE_DIR / f"{net.tag}.json").exists()


CHILD = textwrap.dedent(
    """
    import sys, time
    from chainml.devtools.hosts import Network
    net = Network(["alpha"])
    net.start()
    inner = net["alpha"].popen(["sleep", "600"])
    print(net.tag, inner.pid, flush=True)
    time.sleep(600)
    """
)


def _child_network() -> tuple[subprocess.Popen[str], str, int]:
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL
    )
    assert child.stdout is not None
    tag, pid = child.stdout.readline().split()
    return child, tag, int(pid)


def _gone(pid: int) -> bool:
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def _names(tag: str) -> list[str]:
    listing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return [line for line in (listing + links).splitlines() if f"-{tag}" in line]


def test_a_stopped_run_cleans_up_after_itself():
    child, tag, inner = _child_network()
    assert _names(tag)
    child.send_signal(signal.SIGTERM)
    assert child.wait(30) == 128 + signal.SIGTERM
    assert _names(tag) == []
    assert _gone(inner)


def test_what_a_killed_run_left_is_swept_by_the_next():
    child, tag, inner = _child_network()
    child.kill()
    child.wait(10)
    deadline = time.monotonic() + 5
    while not _gone(inner) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(inner)  # died with its parent (PR_SET_PDEATHSIG)
    assert len(_names(tag)) == 3  # the namespace, the bridge and a veth end stay behind
    with Network(["alpha"]) as net:  # the next network sweeps them at its start
        assert _names(tag) == []
        assert net.leftovers()
    assert (tag + ".json") not in os.listdir(hosts.STATE_DIR)


def test_bad_networks_are_refused():
    with pytest.raises(ValueError, match="private"):
        Network(["alpha"], subnet="8.8.8.0/24")
    with pytest.raises(ValueError, match="distinct"):
        Network(["alpha", "alpha"])
    with pytest.raises(ValueError, match="host name"):
        Network(["Alpha; rm -rf /"])
