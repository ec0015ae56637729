"""One node per party: the process (configuration and parts: ``chainml.node.core``).

``chainml node init`` writes a keystore and a ``node.toml``; ``chainml node run --config
node.toml`` serves the API until SIGTERM or SIGINT, then stops cleanly (uvicorn finishes
the requests in flight, the state database is closed).  The keystore password comes from
the environment variable named in the config (``CHAINML_PASSWORD`` by default), never
from the config file or the command line.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import requests
import uvicorn

from chainml.errors import ChainmlError
from chainml.ledger.bindings import Role
from chainml.ledger.client import LedgerClient
from chainml.node.api import Guard, Metrics, create_app, guarded_h11
from chainml.node.core import (
    TEMPLATE,
    ConfigError,
    LedgerPeers,
    Node,
    NodeConfig,
    build,
)
from chainml.node.dashboard import collect, render
from chainml.node.dispatch import Dispatcher
from chainml.node.ids import Alerts
from chainml.node.monitor import ChainMonitor
from chainml.node.plugin import Plugged, Plugin, RoleContext
from chainml.node.roles import PLUGINS, init, load_config
from chainml.node.workers import gated

log = logging.getLogger("chainml.node")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message.  Messages are written by
    chainml's code, which never formats a secret into one."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info and record.exc_info[0] is not None:
            doc["error"] = record.exc_info[0].__name__  # the type only: no traceback text
        return json.dumps(doc)


def run(config: NodeConfig) -> None:
    """Serve until SIGTERM/SIGINT (uvicorn's handlers), then close the state.

    The node's own parts (chain monitor, dashboard, metrics) run whatever its roles; then
    each role in ``roles.PLUGINS`` (the job workers among them) is offered the node and
    plugs in its workers, routes and message handlers (``chainml.node.plugin``)."""
    node = build(config, config.password())
    try:
        store = node.store  # on the main thread: the embedded engine hands SIGTERM back here
    except BaseException:
        node.close()
        raise
    if hasattr(store, "multiaddr"):
        log.info("store: IPFS peer %s", store.multiaddr)
    guard = Guard.create(
        time.time,  # alerts carry wall-clock times, like the chain monitor's
        per_peer=config.rate_per_peer,
        overall=config.rate_overall,
        ban_after_refusals=config.ban_after_refusals,
    )
    chain_alerts = Alerts(time.time, once=True)
    guard.others.append(chain_alerts)
    # heads are compared as the plain client reads them; the rest is read through the cache
    endpoints = {config.rpc_url: node.client} | {url: LedgerClient(url) for url in config.endpoints}
    monitor = ChainMonitor(
        node.cached,
        chain_alerts,
        endpoints=endpoints,
        settlement=node.settlement,
        own=config.rpc_url,
        finality_stall=config.finality_stall,
    )
    stop = threading.Event()
    watcher = threading.Thread(
        target=monitor.run, args=(stop, config.monitor_interval), name="chain-monitor", daemon=True
    )
    watcher.start()
    me = node.identity.address
    roles = node.cm.registry.party(me).roles if node.cm.registry.is_registered(me) else Role(0)
    info = {
        "name": config.name,
        "account": node.identity.address,
        "chain": str(node.client.chain_id),
        "rpc": config.rpc_url,
    }

    def dashboard() -> str:
        measured: dict[int, dict[int, float]] = {}
        spent: dict[int, dict[int, float]] = {}  # DP jobs: ε through each round
        for key, value in node.state.query(
            "SELECT key, value FROM meta WHERE key LIKE 'accuracy:%' OR key LIKE 'epsilon:%'"
        ):
            kind, job_id, round_no = str(key).split(":")
            into = measured if kind == "accuracy" else spent
            into.setdefault(int(job_id), {})[int(round_no)] = float(value)
        verdicts: dict[tuple[int, int], str] = {}  # a validator's audits, by round
        for key, value in node.state.query(
            "SELECT key, value FROM meta WHERE key LIKE 'validate:%' ORDER BY rowid"
        ):
            _, job_id, round_no, _cid = str(key).split(":", 3)
            verdicts[int(job_id), int(round_no)] = str(value)
        accounts = list(monitor.registered)
        snapshot = collect(
            node.cached, info, accounts, guard.all_alerts(), measured, spent, verdicts
        )
        return render(snapshot)

    def on_scrape(metrics: Metrics) -> None:
        metrics.peers.set(len(monitor.registered))

    metrics = Metrics()
    monitor.bind_metrics(metrics.registry)
    context = RoleContext(node, roles, store, metrics, stop, guard.alerts)
    plugged = plug_roles(context)
    dispatcher = Dispatcher.of(plugged)
    for table in (dispatcher.handlers, dispatcher.immediate):  # none acts on a distrusted view
        table.update({p: gated(h, node.settlement, p) for p, h in table.items()})
    threads = [
        threading.Thread(target=loop, args=(stop,), name=name, daemon=True)
        for role in plugged
        for name, loop in role.workers.items()
    ]
    for thread in threads:
        thread.start()
    threading.Thread(target=dispatcher.run, args=(stop,), name="dispatcher", daemon=True).start()
    app = create_app(
        node.receiver,
        limits=config.http,
        guard=guard,
        dashboard=dashboard,
        on_scrape=on_scrape,
        metrics=metrics,
        on_message=dispatcher.put,
        routes=[role.routes for role in plugged if role.routes is not None],
    )
    log.info(
        "node %s (%s) on http://%s:%d as %s",
        config.name,
        node.identity.address,
        config.host,
        config.port,
        ", ".join(role.name for role in plugged),
    )
    # the event loop waits for the interpreter lock while the worker pool parses and
    # verifies: hand it over every 0.2 ms rather than every 5 ms
    sys.setswitchinterval(0.0002)
    limits = config.http
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=config.host,
            port=config.port,
            log_level="warning",
            access_log=False,
            log_config=None,  # uvicorn's records go through the node's JSON lines
            http=guarded_h11(limits.header_timeout, 4 * limits.max_in_flight),
            timeout_keep_alive=5,
            h11_max_incomplete_event_size=16 * 1024,  # request line and headers
        )
    )
    # uvicorn handles SIGTERM/SIGINT while serving, then re-raises the signal to the handler
    # that was in place before: make that one a no-op, so that the process ends normally
    # (state closed, exit status 0) instead of dying by the signal.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: None)
    try:
        server.run()
    finally:
        stop.set()
        # every loop ends at its next look at ``stop``: give them 10 s in all before the
        # state they write is closed
        deadline = time.monotonic() + 10
        for thread in (watcher, *threads):
            thread.join(timeout=max(deadline - time.monotonic(), 0.1))
        node.close()
        log.info("node %s stopped", config.name)


def plug_roles(context: RoleContext, plugins: Sequence[Plugin] = PLUGINS) -> list[Plugged]:
    """The roles this node takes: each plugin offered the node, those that answer kept;
    then each kept role's ``attach`` is shown them all."""
    plugged = [role for plugin in plugins if (role := plugin(context)) is not None]
    for role in plugged:
        if role.attach is not None:
            role.attach(plugged)
    return plugged


def spawn(
    config: Path, password: str, *, quiet: bool = False, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """``chainml node run --config config`` as a child process, the password in its
    environment only; its output in a pipe, discarded (``quiet``) or appended to ``log``
    (which no reader has to keep draining)."""
    argv = [sys.executable, "-m", "chainml.cli.main", "node", "run", "--config", str(config)]
    env = dict(os.environ, CHAINML_PASSWORD=password)
    if log is not None:
        with Path(log).open("ab") as out:
            return subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    pipe = subprocess.DEVNULL if quiet else subprocess.PIPE
    return subprocess.Popen(argv, env=env, stdout=pipe, stderr=subprocess.STDOUT)


def wait_ready(
    url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0, *, address: str = ""
) -> None:
    """Until the node at ``url`` answers (as ``address``, if given: not some other server
    that holds the port); raises ``NodeStartError`` if it exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise NodeStartError(f"node exited with {proc.returncode}: {output[-2000:]}")
        try:
            answer = requests.get(url + "/v1/status", timeout=1)
        except (requests.ConnectionError, requests.Timeout):  # not up, or slow: ask again
            time.sleep(0.1)
            continue
        if not address:
            return
        try:
            if str(answer.json()["address"]).lower() == address.lower():
                return
        except (ValueError, KeyError, TypeError):
            pass
        time.sleep(0.1)  # another server answers there: wait for ours, or for it to exit
    raise NodeStartError(f"node did not answer at {url} within {timeout:g} s")


class NodeStartError(ChainmlError):
    """A node process did not come up."""


__all__ = [
    "TEMPLATE",
    "ConfigError",
    "JsonLogFormatter",
    "LedgerPeers",
    "Node",
    "NodeConfig",
    "NodeStartError",
    "build",
    "init",
    "load_config",
    "plug_roles",
    "run",
    "spawn",
    "wait_ready",
]
