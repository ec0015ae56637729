"""The node's chain watch: feeds ``chainml.node.ids`` from the ledger, on a timer.

Each ``tick``: the head of every configured RPC endpoint (eclipse), the primary
endpoint's recent block hashes (reorganisations past the confirmation depth), and the
Registry's parties with their stakes and funders (Sybil and stake concentration).  A
party's funder is whoever sent its account its first ether, found by scanning blocks once,
as they come.

Finality: on a chain that answers the ``finalized`` tag, when the finalized block has
not advanced for ``finality_stall`` seconds while the head did, ``finality_stalled`` is
raised (steps a node settles by finality then wait; see docs/monitoring.md).

The node's own view: when its endpoint (``own``) is more than ``max_lag`` blocks
behind another endpoint, or disagrees with one on the hash of a block both have, the
monitor ``hold``s the node's ``Settlement`` (the node's workers stop acting: no join, no
transaction, no envelope handled) and raises ``acting_stopped``; it releases the hold,
logging so, at the first tick where the endpoints agree again.  An endpoint that cannot be
reached is left out of the comparison; only the node's own one is required.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Gauge

from chainml.errors import ChainmlError
from chainml.ledger.bindings import Chainml
from chainml.ledger.client import LedgerClient
from chainml.ledger.errors import ChainDataError, LedgerError, RpcError
from chainml.ledger.settle import Settlement
from chainml.node.ids import Alert, Alerts, ReorgWatch, StakeHolder, check_endpoints, check_stake

log = logging.getLogger("chainml.node.monitor")


class ChainMonitor:
    def __init__(
        self,
        cm: Chainml,
        alerts: Alerts,
        *,
        endpoints: Mapping[str, LedgerClient] | None = None,
        confirmations: int = 2,
        max_lag: int = 5,
        scan_limit: int = 200_000,
        settlement: Settlement | None = None,
        own: str | None = None,
        finality_stall: float = 900.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cm = cm
        self.client = cm.registry.contract.client
        self.alerts = alerts
        self.endpoints = dict(endpoints or {})
        self.max_lag = max_lag
        # the policy whose view this monitor holds when the node's endpoint is lying
        self.settlement = settlement
        self.own = own  # the node's endpoint among ``endpoints`` (None: the one of cm)
        self.finality_stall = finality_stall
        self.clock = clock
        self._final: tuple[int, float, int] | None = None  # (finalized, since, head then)
        self.finality_lag: int | None = None  # head - finalized at the last tick
        self.finalized_age: float | None = None  # seconds since the finalized head moved
        self._episodes = 0  # times the view was held
        self._gauges: dict[str, Gauge] = {}
        self.scan_limit = scan_limit
        self.reorgs = ReorgWatch(alerts, confirmations)
        self.funders: dict[str, str] = {}
        self.registered: dict[str, int] = {}  # account -> registration timestamp
        self._scanned = -1
        self._logs_from = 0
        self._known: dict[int, str] = {}  # block number -> hash, as last read

    def _hash(self, client: LedgerClient, number: int) -> str:
        return str(client.block(number).get("hash"))

    def _block(self, number: int) -> dict[str, Any]:
        """A block with its transactions: the one read the funder scan and the reorg
        watch share (a node's client keeps it while the head stays)."""
        block = self.client.rpc("eth_getBlockByNumber", [hex(number), True])
        if not isinstance(block, dict):
            raise ChainmlError(f"no block {number}")
        return block

    def _hashes(self, head: int, span: int = 64) -> Callable[[int], str]:
        """Block hashes for the reorganisation watch, reading only what may have changed:
        from the head down to the first block whose parent is the one already known (each
        block names its parent's hash, so everything below that link is as it was)."""
        n = head
        while n >= 0 and head - n <= span:
            block = self._block(n)
            known, parent = self._known.get(n), block.get("parentHash")
            self._known[n] = str(block.get("hash"))
            if known == self._known[n] or (parent is not None and self._known.get(n - 1) == parent):
                break
            n -= 1
        for old in [k for k in self._known if k < head - span]:
            del self._known[old]
        return lambda k: self._known[k] if k in self._known else self._hash(self.client, k)

    def _scan(self, head: int) -> None:
        if head > self.scan_limit:
            return  # a long chain: funders stay unknown rather than scanning it all
        for n in range(self._scanned + 1, head + 1):
            block = self._block(n)
            for tx in block.get("transactions", []):
                to = tx.get("to")
                if to and int(tx.get("value", "0x0"), 16) > 0:
                    self.funders.setdefault(str(to).lower(), str(tx["from"]).lower())
        self._scanned = head

    def _registrations(self, head: int) -> None:
        registry = self.cm.registry.contract
        for event in registry.past_events("Registered", from_block=self._logs_from, to_block=head):
            account = str(event.args["account"])
            stamp = int(self.client.block(event.block_number)["timestamp"], 16)
            self.registered.setdefault(account, stamp)
        self._logs_from = head + 1

    def _own(self) -> str | None:
        if self.own is not None:
            return self.own
        for url, c in self.endpoints.items():
            if c is self.client or c.url == self.client.url:
                return url
        return None

    def _heads(self, own: str | None) -> dict[str, int]:
        heads = {}
        for url, c in self.endpoints.items():
            try:
                heads[url] = c.block_number()
            except LedgerError as exc:
                if url == own:
                    raise
                log.warning("chain monitor: endpoint %s left out: %s", url, type(exc).__name__)
        return heads

    def _distrust(
        self, own: str, heads: Mapping[str, int], hash_at: Callable[[str, int], str]
    ) -> str | None:
        """Why the node's own endpoint is not to be believed, or None."""
        top_url = max(heads, key=lambda u: heads[u])
        lag = heads[top_url] - heads[own]
        if lag > self.max_lag:
            return f"{own} is {lag} blocks behind {top_url}"
        common = min(heads.values())
        mine = hash_at(own, common)
        others = [u for u in heads if u != own and hash_at(u, common) != mine]
        if others:
            return f"{own} disagrees with {', '.join(others)} on block {common}"
        return None

    def _judge(self, heads: Mapping[str, int]) -> list[Alert]:
        """Hold or release the node's view by what its endpoint says against the others."""
        own = self._own()
        if self.settlement is None or own is None or own not in heads or len(heads) < 2:
            return []
        cache: dict[tuple[str, int], str] = {}

        def hash_at(url: str, n: int) -> str:
            if (url, n) not in cache:
                cache[url, n] = self._hash(self.endpoints[url], n)
            return cache[url, n]

        reason = self._distrust(own, heads, hash_at)
        if reason is None:
            self.settlement.release()
            return []
        raised: list[Alert] = []
        if self.settlement.hold(reason):
            self._episodes += 1
            alert = self.alerts.raise_(
                "acting_stopped", f"{own} #{self._episodes}", f"workers stopped: {reason}"
            )
            if alert is not None:
                raised.append(alert)
        return raised

    def _finality(self, head: int) -> list[Alert]:
        """``finality_stalled`` when the finalized block stood still for ``finality_stall``
        seconds while the head advanced; nothing on a chain without the tag."""
        try:
            finalized = int(str(self.client.block("finalized")["number"]), 16)
        except (RpcError, ChainDataError, KeyError, ValueError):
            self.finality_lag = self.finalized_age = None
            return []
        now = self.clock()
        if self._final is None or self._final[0] != finalized:
            self._final = (finalized, now, head)
        since, head_then = self._final[1], self._final[2]
        self.finality_lag, self.finalized_age = head - finalized, now - since
        if head > head_then and now - since >= self.finality_stall:
            alert = self.alerts.raise_(
                "finality_stalled",
                f"finalized {finalized}",
                f"the finalized block {finalized} has not advanced for {now - since:.0f} s"
                f" while the head moved from {head_then} to {head}",
            )
            return [alert] if alert is not None else []
        return []

    def bind_metrics(self, registry: CollectorRegistry) -> None:
        """Export the finality lag, the finalized block's age and whether the node's view is
        held (its workers stopped) on ``registry``, as of the last tick."""
        self._gauges = {
            "lag": Gauge(
                "chainml_chain_finality_lag_blocks",
                "Blocks between the chain head and its finalized block",
                registry=registry,
            ),
            "age": Gauge(
                "chainml_chain_finalized_age_seconds",
                "Seconds since the chain's finalized block last advanced",
                registry=registry,
            ),
            "held": Gauge(
                "chainml_chain_view_held",
                "1 while the node's chain view is distrusted and its workers stop acting",
                registry=registry,
            ),
        }

    def _export(self) -> None:
        if not self._gauges:
            return
        self._gauges["lag"].set(self.finality_lag if self.finality_lag is not None else -1)
        self._gauges["age"].set(self.finalized_age if self.finalized_age is not None else -1)
        held = self.settlement is not None and self.settlement.held is not None
        self._gauges["held"].set(1 if held else 0)

    def tick(self) -> list[Alert]:
        """One round of checks (pass ``Alerts(once=True)`` to raise each alert once)."""
        raised: list[Alert] = []
        if len(self.endpoints) >= 2:
            heads = self._heads(self._own())
            raised += check_endpoints(
                self.alerts, heads, lambda url, n: self._hash(self.endpoints[url], n), self.max_lag
            )
            raised += self._judge(heads)
        # the head as a fact, not as a step to act from: a node's acting client refuses
        # ``block_number`` while this monitor holds its view, and answers this
        head = int(str(self.client.rpc("eth_blockNumber")), 16)
        raised += self._finality(head)
        self._export()
        raised += self.reorgs.observe(head, self._hashes(head))
        self._scan(head)
        if head >= self._logs_from:
            self._registrations(head)
        holders = [
            StakeHolder(
                account,
                self.cm.registry.stake_of(account),
                self.funders.get(account.lower()),
                stamp,
            )
            for account, stamp in self.registered.items()
        ]
        raised += check_stake(self.alerts, holders)
        return raised

    def run(self, stop: threading.Event, interval: float) -> None:
        """Tick now, then every ``interval`` seconds until ``stop`` is set."""
        while True:
            try:
                self.tick()
            except (ChainmlError, OSError, KeyError, ValueError) as exc:
                log.warning("chain monitor: %s", exc)
            if stop.wait(interval):
                return
