"""Latency between hosts without netem: the delay relay adds its delay each way to every
exchange across it and passes every byte unchanged."""

from __future__ import annotations

import json
import random
import signal
import socket
import statistics
import subprocess
import sys
import time

from chainml.devtools.hosts import Network

ECHO = """
import socket, sys, threading
def serve(c):
    with c:
        while data := c.recv(65536):
            c.sendall(data)
s = socket.create_server((sys.argv[1], int(sys.argv[2])))
print("up", flush=True)
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""


def _round_trips(address: str, port: int, n: int = 8) -> list[float]:
    times = []
    with socket.create_connection((address, port), timeout=5) as c:
        c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(n):
            started = time.perf_counter()
            c.sendall(b"ping")
            assert c.recv(16) == b"ping"
            times.append(time.perf_counter() - started)
    return times


def _echo_all(address: str, port: int, data: bytes) -> bytes:
    got = bytearray()
    with socket.create_connection((address, port), timeout=10) as c:
        c.sendall(data)
        c.shutdown(socket.SHUT_WR)
        while piece := c.recv(65536):
            got += piece
    return bytes(got)


def test_the_relay_adds_its_delay_each_way_and_keeps_every_byte():
    with Network(["alpha", "beta"]) as net:
        beta = net["beta"].address
        echo = net["beta"].popen([sys.executable, "-c", ECHO, beta, "7000"], stdout=subprocess.PIPE)
        assert echo.stdout is not None and echo.stdout.readline() == b"up\n"
        relay = net["beta"].popen(
            [
                sys.executable,
                "-m",
                "chainml.devtools.delayrelay",
                "--delay-ms",
                "25",
                "--route",
                f"{beta}:17000={beta}:7000",
            ],
            stdout=subprocess.PIPE,
        )
        assert relay.stdout is not None and json.loads(relay.stdout.readline()) == {"routes": 1}
        alpha = net["alpha"]
        direct = statistics.median(alpha.call(_round_trips, beta, 7000))
        delayed = alpha.call(_round_trips, beta, 17000)
        assert direct < 0.02
        assert min(delayed) >= 0.050 and statistics.median(delayed) < 0.2, delayed
        data = random.Random(5).randbytes(1_000_003)
        assert alpha.call(_echo_all, beta, 17000, data) == data


def test_a_paused_relay_delays_only_from_sigusr1_on():
    with Network(["alpha", "beta"]) as net:
        beta = net["beta"].address
        echo = net["beta"].popen([sys.executable, "-c", ECHO, beta, "7000"], stdout=subprocess.PIPE)
        assert echo.stdout is not None and echo.stdout.readline() == b"up\n"
        argv = [sys.executable, "-m", "chainml.devtools.delayrelay", "--delay-ms", "25"]
        argv += ["--paused", "--route", f"{beta}:17000={beta}:7000"]
        relay = net["beta"].popen(argv, stdout=subprocess.PIPE)
        assert relay.stdout is not None and json.loads(relay.stdout.readline()) == {"routes": 1}
        assert statistics.median(net["alpha"].call(_round_trips, beta, 17000)) < 0.02
        relay.send_signal(signal.SIGUSR1)
        time.sleep(0.2)
        assert min(net["alpha"].call(_round_trips, beta, 17000)) >= 0.050
