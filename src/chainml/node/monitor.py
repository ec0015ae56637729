"""The node's chain watch: feeds ``chainml.node.ids`` from the ledger, on a timer.

Each ``tick``: the head of every configured RPC endpoint (eclipse), the primary
endpoint's recent block hashes (reorganisations past the confirmation depth), and the
Registry's parties with their stakes and funders (Sybil and stake concentration).  A
party's funder is whoever sent its account its first ether, found by scanning blocks once,
as they come.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

from chainml.errors import ChainmlError
from chainml.ledger.bindings import Chainml
from chainml.ledger.client import LedgerClient
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
    ) -> None:
        self.cm = cm
        self.client = cm.registry.contract.client
        self.alerts = alerts
        self.endpoints = dict(endpoints or {})
        self.max_lag = max_lag
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

    def tick(self) -> list[Alert]:
        """One round of checks (pass ``Alerts(once=True)`` to raise each alert once)."""
        raised: list[Alert] = []
        if len(self.endpoints) >= 2:
            heads = {url: c.block_number() for url, c in self.endpoints.items()}
            raised += check_endpoints(
                self.alerts, heads, lambda url, n: self._hash(self.endpoints[url], n), self.max_lag
            )
        head = self.client.block_number()
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
