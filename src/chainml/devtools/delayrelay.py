"""Latency between test hosts without ``tc netem``: a TCP relay that delays every byte.

The kernel here has no netem qdisc, so a link's round trip is lengthened in user space:
``python -m chainml.devtools.delayrelay --delay-ms D --route LISTEN=TARGET [...]`` (each
``HOST:PORT``) accepts connections on ``LISTEN``, connects each to ``TARGET`` and passes
the bytes both ways, every piece read held back ``D`` milliseconds before it is written
(order and content unchanged; a half-close is passed on after the same delay).  Put it on
the server's host in front of a service and give clients the relay's port: every
request/response exchange then takes ``2 D`` more.  With ``--paused`` it starts with no
delay and applies ``D`` from the first SIGUSR1 on (a run measures both on one network).
Not delayed: the TCP handshake with the relay (the relay accepts at once) and the
kernel's own ACKs, so TCP's view of the round trip is the relay's, not the link's.
Prints ``{"routes": N}`` once listening; stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import signal
import sys
from collections.abc import Sequence

_PIECE = 64 * 1024


class _Delay:
    seconds = 0.0


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: _Delay) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def pump() -> None:
        while True:
            try:
                data = await reader.read(_PIECE)
            except (ConnectionError, OSError):
                data = b""
            queue.put_nowait((loop.time() + delay.seconds, data))
            if not data:
                return

    async def drain() -> None:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                if writer.can_write_eof():
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    pumping = asyncio.ensure_future(pump())
    try:
        await drain()
    finally:
        pumping.cancel()


async def _serve(routes: list[tuple[str, int, str, int]], seconds: float, paused: bool) -> None:
    delay = _Delay()
    delay.seconds = 0.0 if paused else seconds

    def resume() -> None:
        delay.seconds = seconds

    connections: set[asyncio.Task[None]] = set()

    async def handle(
        c_reader: asyncio.StreamReader, c_writer: asyncio.StreamWriter, host: str, port: int
    ) -> None:
        task = asyncio.current_task()
        assert task is not None
        connections.add(task)
        task.add_done_callback(connections.discard)
        try:
            s_reader, s_writer = await asyncio.open_connection(host, port)
        except OSError:
            c_writer.close()
            return
        try:
            await asyncio.gather(_pipe(c_reader, s_writer, delay), _pipe(s_reader, c_writer, delay))
        except (ConnectionError, OSError):
            pass
        except asyncio.CancelledError:
            # only ever at shutdown; ending normally spares asyncio's stream callback,
            # which asks a cancelled handler for its exception and logs the answer
            pass
        finally:
            for w in (c_writer, s_writer):
                w.close()

    servers = []
    for lhost, lport, thost, tport in routes:
        servers.append(
            await asyncio.start_server(
                functools.partial(handle, host=thost, port=tport), lhost, lport
            )
        )
    print(json.dumps({"routes": len(servers)}), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, resume)
    await stop.wait()
    for server in servers:
        server.close()
    for task in list(connections):
        task.cancel()
    await asyncio.gather(*connections, return_exceptions=True)


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{text!r} is not HOST:PORT")
    return host, int(port)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chainml.devtools.delayrelay")
    parser.add_argument("--delay-ms", type=float, required=True, help="each way")
    parser.add_argument("--route", action="append", required=True, help="LISTEN=TARGET")
    parser.add_argument("--paused", action="store_true", help="no delay until SIGUSR1")
    args = parser.parse_args(argv)
    if not 0 <= args.delay_ms <= 10_000:
        parser.error("--delay-ms: 0..10000")
    routes = []
    for route in args.route:
        listen, _, target = route.partition("=")
        routes.append((*_address(listen), *_address(target)))
    asyncio.run(_serve(routes, args.delay_ms / 1000, args.paused))
    return 0


if __name__ == "__main__":
    sys.exit(main())
