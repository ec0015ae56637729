"""An eclipse, staged: a JSON-RPC endpoint that serves a chain's stale head.

``python -m chainml.devtools.staleproxy --listen HOST:PORT --upstream URL`` reads the
upstream chain's head once, prints ``{"frozen": N}``, and from then on answers as that
chain would have at block N: ``eth_blockNumber`` is N, ``latest``/``pending``/``safe``/
``finalized`` mean block N, a block above N does not exist (``null``), and a log query
up to ``latest`` stops at N; everything else is passed to the upstream unchanged.  A node
given it as its RPC endpoint sees a chain that stopped; its monitor, with the honest
endpoint on another host among its endpoints, must notice (``endpoint_behind``).
In process, ``StaleProxy.heal()`` ends the eclipse: from then on everything is passed
through.  Stops on SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import urllib.request
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_TAGS = ("latest", "pending", "safe", "finalized")
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class StaleProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, listen: tuple[str, int], upstream: str) -> None:
        super().__init__(listen, _Handler)
        self.upstream = upstream
        self.frozen: int | None = int(
            self.forward({"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber"})["result"], 16
        )

    def heal(self) -> None:
        """Stop lying: pass every request through from now on."""
        self.frozen = None

    def forward(self, request: Any) -> Any:
        data = json.dumps(request).encode()
        req = urllib.request.Request(  # noqa: S310 (the upstream is the test chain's URL)
            self.upstream, data=data, headers={"Content-Type": "application/json"}
        )
        with _NO_PROXY.open(req, timeout=30) as answer:
            return json.loads(answer.read())

    def answer(self, request: Any) -> Any:
        frozen = self.frozen
        if frozen is None or not isinstance(request, dict):
            return self.forward(request)
        method, params = request.get("method"), list(request.get("params") or [])
        rid = request.get("id")
        if method == "eth_blockNumber":
            return {"jsonrpc": "2.0", "id": rid, "result": hex(frozen)}
        if method in ("eth_getBlockByNumber", "eth_getBlockTransactionCountByNumber") and params:
            tag = params[0]
            if tag in _TAGS:
                params[0] = hex(frozen)
            elif isinstance(tag, str) and tag.startswith("0x") and int(tag, 16) > frozen:
                return {"jsonrpc": "2.0", "id": rid, "result": None}
        if method == "eth_getLogs" and params and isinstance(params[0], dict):
            query = dict(params[0])
            if query.get("toBlock", "latest") in _TAGS:
                query["toBlock"] = hex(frozen)
            params[0] = query
        if method in ("eth_call", "eth_getBalance", "eth_getCode", "eth_getTransactionCount"):
            if len(params) >= 2 and params[-1] in _TAGS:
                params[-1] = hex(frozen)
        return self.forward({**request, "params": params})


class _Handler(BaseHTTPRequestHandler):
    server: StaleProxy

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        try:
            request = json.loads(body)
            reply = (
                [self.server.answer(r) for r in request]
                if isinstance(request, list)
                else self.server.answer(request)
            )
            status = 200
        except (ValueError, OSError) as exc:
            reply, status = {"error": type(exc).__name__}, 502
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m chainml.devtools.staleproxy")
    parser.add_argument("--listen", required=True, help="HOST:PORT")
    parser.add_argument("--upstream", required=True, help="the chain's JSON-RPC URL")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    server = StaleProxy((host, int(port)), args.upstream)

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    print(json.dumps({"frozen": server.frozen}), flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
