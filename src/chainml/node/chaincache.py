"""Chain facts cached per block: the node's JSON-RPC client.

A node reads the same few facts over and over — a job, its participants, each party's
X25519 key and endpoint, the latest block — from every worker, every round and every
envelope.  Each read is an ``eth_call`` that the chain node executes in its EVM; on the
embedded dev chain (one Python process serving every node of the machine) those reads,
not the protocol, were what a round across processes waited for.

``CachingLedgerClient`` answers them from memory while the chain has not moved:

- the head (``eth_blockNumber``) is read at most once per ``head_ttl`` seconds, and at
  once after this node's own transaction is mined (its receipt names a later block), so a
  node always reads its own writes;
- ``eth_call`` at ``latest`` and ``eth_getBlockByNumber`` are kept until the head moves
  (but the ``finalized``, ``safe`` and ``pending`` blocks are always asked for);
- calls to the Registry are kept until a block carries a Registry event (every change to
  a party — registration, key rotation, endpoint, stake, slashing — logs one), found with
  one ``eth_getLogs`` per new head;
- calls named ``forever`` (a contract and a function whose answer never changes once set,
  such as ``Jobs.participant_at``) are kept for good once they answer something other
  than zero.

Everything else (sending, receipts, logs, estimates, nonces) goes to the chain as before.
The environment's proxy and CA-bundle settings for the endpoint are read once, when the
client is made, not again for every request as ``requests`` does by default (a scan of
the whole environment that cost a node more CPU than the loopback call itself).
``refresh()`` forgets the head, so the next read asks the chain: a check that failed on
cached facts is retried on fresh ones.

This is the node's acting client: the workers and roles decide what to do from its head
(``block_number``) and send through it.  Given the node's ``settlement`` policy, while the
chain monitor holds the view (an eclipse), ``block_number`` and ``send`` raise
``ViewDistrusted``: every worker loop stops at its first step and logs why, and no
transaction leaves.  Reads that only check facts (an envelope's sender in the Registry)
still answer (``rpc("eth_blockNumber")`` too: the head as a fact), so the node keeps
refusing forgeries and its monitor keeps watching.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import requests

from chainml.ledger.client import Clock, LedgerClient, Receipt, Sleep


class CachingLedgerClient(LedgerClient):
    def __init__(
        self,
        url: str,
        *,
        head_ttl: float = 0.1,
        clock: Clock = time.monotonic,
        sleep: Sleep = time.sleep,
        **kwargs: Any,
    ) -> None:
        super().__init__(url, clock=clock, sleep=sleep, **kwargs)
        environment_once(self._session, url)
        self.head_ttl = head_ttl
        self._cache_lock = threading.RLock()
        self._head = -1
        self._checked = float("-inf")
        self._mined = -1  # the latest block one of this node's transactions was mined in
        self._per_head: dict[str, Any] = {}
        self._per_registry: dict[str, Any] = {}
        self._registry_generation = 0
        self._forever: dict[str, Any] = {}
        self._registry = ""
        self._forever_calls: set[tuple[str, str]] = set()
        self.reads = 0  # eth_call / eth_getBlockByNumber / eth_blockNumber sent to the chain
        self.hits = 0  # answered from memory

    def cache_policy(self, *, registry: str, forever: Iterable[tuple[str, bytes]] = ()) -> None:
        """The Registry's address (its answers are kept until it logs an event) and the
        (contract address, 4-byte selector) pairs whose non-zero answers never change."""
        with self._cache_lock:
            self._registry = registry.lower()
            self._forever_calls = {(a.lower(), "0x" + s.hex()) for a, s in forever}
            self._per_registry.clear()
            self._forever.clear()

    def refresh(self) -> None:
        """Forget the head: the next read asks the chain where it is."""
        with self._cache_lock:
            self._checked = float("-inf")

    def head(self) -> int:
        """The latest block number, at most ``head_ttl`` seconds old (and never older than
        a block this node's own transaction was mined in)."""
        with self._cache_lock:
            if self._clock() - self._checked < self.head_ttl and self._mined <= self._head:
                self.hits += 1
                return self._head
            self.reads += 1
            number = int(str(super().rpc("eth_blockNumber")), 16)
            self._advance(number)
            return number

    def _advance(self, number: int) -> None:
        self._checked = self._clock()
        if number == self._head:
            return
        if number < self._head or self._head < 0 or not self._registry:
            self._per_registry.clear()  # a chain that went back, or no history to read
            self._registry_generation += 1
        else:
            span = {"fromBlock": hex(self._head + 1), "toBlock": hex(number)}
            logs = super().rpc("eth_getLogs", [{"address": self._registry, **span}])
            if logs:
                self._per_registry.clear()
                self._registry_generation += 1
        self._per_head.clear()
        self._head = number

    def block_number(self) -> int:
        """The head a worker acts from (``ViewDistrusted`` while the view is held)."""
        if self.settlement is not None:
            self.settlement.check()
        return super().block_number()

    def wait_for_receipt(self, tx_hash: str, timeout: float | None = None) -> Receipt:
        receipt = super().wait_for_receipt(tx_hash, timeout)
        with self._cache_lock:
            self._mined = max(self._mined, receipt.block_number)
        return receipt

    def rpc(self, method: str, params: Sequence[Any] = ()) -> Any:
        if method == "eth_blockNumber":
            return hex(self.head())
        if method == "eth_chainId":
            return self._cached(self._forever, "chainId", method, params, lambda r: True)
        if method == "eth_getBlockByNumber" and params and params[0] in _MOVING_TAGS:
            return super().rpc(method, params)  # finality moves on its own clock: ask
        if method == "eth_getBlockByNumber":
            head = self.head()
            if params and params[0] == "latest":  # the head's block: one entry for both
                params = [hex(head), *params[1:]]
            return self._cached_per_head(method, params)
        if method == "eth_call" and len(params) == 2 and params[1] == "latest":
            tx = params[0]
            to = str(tx.get("to", "")).lower()
            selector = str(tx.get("data", ""))[:10]
            if (to, selector) in self._forever_calls:
                key = json.dumps([to, tx.get("data")])
                return self._cached(self._forever, key, method, params, _nonzero)
            self.head()
            if to and to == self._registry:
                with self._cache_lock:
                    generation = self._registry_generation
                    key = json.dumps(params, sort_keys=True)
                    if key in self._per_registry:
                        self.hits += 1
                        return self._per_registry[key]
                self.reads += 1
                result = super().rpc(method, params)
                with self._cache_lock:
                    if generation == self._registry_generation:
                        _bounded(self._per_registry)[key] = result
                return result
            return self._cached_per_head(method, params)
        return super().rpc(method, params)

    def _cached_per_head(self, method: str, params: Sequence[Any]) -> Any:
        key = json.dumps([method, params], sort_keys=True)
        with self._cache_lock:
            head = self._head
            if key in self._per_head:
                self.hits += 1
                return self._per_head[key]
        self.reads += 1
        result = super().rpc(method, params)
        with self._cache_lock:
            if head == self._head:  # not a fact of an older block stored as the newer's
                _bounded(self._per_head)[key] = result
        return result

    def _cached(
        self, store: dict[str, Any], key: str, method: str, params: Sequence[Any], keep: Any
    ) -> Any:
        with self._cache_lock:
            if key in store:
                self.hits += 1
                return store[key]
        self.reads += 1
        result = super().rpc(method, params)
        if keep(result):
            with self._cache_lock:
                _bounded(store)[key] = result
        return result


def environment_once(session: requests.Session, url: str) -> None:
    """Have ``session`` use the environment's proxies for ``url`` (``HTTP_PROXY``,
    ``NO_PROXY``, ...) and its CA bundle (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``) as
    they are now, instead of reading the environment again at every request."""
    session.proxies.update(requests.utils.get_environ_proxies(url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False


_MOVING_TAGS = ("finalized", "safe", "pending")
MAX_ENTRIES = 50_000  # per store: lookups of addresses anyone can invent stay bounded


def _bounded(store: dict[str, Any]) -> dict[str, Any]:
    if len(store) >= MAX_ENTRIES:
        store.clear()  # read again what is needed: a cost, never a wrong answer
    return store


def _nonzero(result: Any) -> bool:
    return isinstance(result, str) and result.strip("0x") != ""


__all__ = ["CachingLedgerClient"]
