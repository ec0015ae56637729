"""Intrusion detection: the node's view of attacks on it and on the chain it trusts.

Pure logic with an injected clock; the node feeds it requests, refusals and chain data,
and its alerts go to the log, the API (``/v1/alerts``) and the metrics.

* ``RateLimiter``: token buckets per peer and for the node as a whole; a peer that keeps
  hitting its limit is banned for a while (flooding).
* ``PeerScore``: refusals that only a faulty or hostile peer causes (forged signatures,
  replays, malformed or undecryptable payloads) are counted per peer; past a threshold
  the peer is flagged and banned.
* ``check_endpoints``: several RPC endpoints that disagree on the block hash at one height,
  or one that falls behind the others, mean someone may be feeding the node its own chain
  (eclipse).
* ``check_stake``: one entity — accounts funded from one source count as one — holding more
  than 1/3 (can stall) or 1/2 (can decide) of the stake, many identities funded from one
  source, and bursts of registrations (Sybil, 51 %).
* ``HttpLimits`` and ``peer_of``: how much of the node a peer may hold, and who a request
  is from (an address; each connection of a loopback client; behind a trusted proxy, the
  address in its forwarding header).
* ``ReorgWatch``: a block the node had seen at a depth past its confirmation depth was
  replaced.
"""

from __future__ import annotations

import ipaddress
import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger("chainml.node.ids")

HOSTILE_CAUSES = frozenset({"bad_signature", "replayed", "malformed", "undecryptable"})


@dataclass(frozen=True)
class Alert:
    kind: str
    subject: str
    detail: str
    at: float


class Alerts:
    """The most recent alerts, each logged as it is raised.  With ``once``, a (kind,
    subject) already raised is not raised again (for checks repeated on a timer)."""

    def __init__(self, clock: Callable[[], float], keep: int = 1000, *, once: bool = False) -> None:
        self.clock = clock
        self.once = once
        self.recent: deque[Alert] = deque(maxlen=keep)
        self.counts: Counter[str] = Counter()
        self._seen: set[tuple[str, str]] = set()

    def raise_(self, kind: str, subject: str, detail: str) -> Alert | None:
        if self.once:
            if (kind, subject) in self._seen:
                return None
            self._seen.add((kind, subject))
        alert = Alert(kind, subject, detail, self.clock())
        self.recent.append(alert)
        self.counts[kind] += 1
        log.warning("alert %s %s: %s", kind, subject, detail)
        return alert


def _add(raised: list[Alert], alert: Alert | None) -> None:
    if alert is not None:
        raised.append(alert)


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class RateLimiter:
    """``per_peer`` and ``overall`` requests per second with bursts of as many; a peer
    refused ``ban_after`` times within ``window`` seconds is banned for ``ban_for``."""

    clock: Callable[[], float]
    alerts: Alerts
    per_peer: float = 50.0
    overall: float = 500.0
    ban_after: int = 100
    window: float = 10.0
    ban_for: float = 300.0
    max_peers: int = 10_000  # buckets kept; idle ones are dropped past this (full anyway)
    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _refusals: dict[str, deque[float]] = field(default_factory=dict)
    banned_until: dict[str, float] = field(default_factory=dict)

    def _take(self, key: str, rate: float) -> bool:
        now = self.clock()
        b = self._buckets.get(key)
        if b is None:
            b = self._buckets[key] = _Bucket(rate, now)
        b.tokens = min(rate, b.tokens + (now - b.at) * rate)
        b.at = now
        if b.tokens >= 1:
            b.tokens -= 1
            return True
        return False

    def _forget_idle(self) -> None:
        now = self.clock()
        for key in [k for k, b in self._buckets.items() if now - b.at > self.window]:
            del self._buckets[key]
            self._refusals.pop(key.removeprefix("peer:"), None)

    def is_banned(self, peer: str) -> bool:
        until = self.banned_until.get(peer)
        if until is None:
            return False
        if self.clock() >= until:
            del self.banned_until[peer]
            return False
        return True

    def ban(self, peer: str, why: str) -> None:
        self.banned_until[peer] = self.clock() + self.ban_for
        self.alerts.raise_("peer_banned", peer, why)

    def allow(self, peer: str, *, ignore_ban: bool = False) -> bool:
        """One request from ``peer`` within the rates.  ``ignore_ban``: a banned peer's
        signed request, judged on its signature (the bucket still applies)."""
        if not ignore_ban and self.is_banned(peer):
            return False
        if len(self._buckets) > self.max_peers:
            self._forget_idle()
        if self._take(f"peer:{peer}", self.per_peer) and self._take("all", self.overall):
            return True
        now = self.clock()
        recent = self._refusals.setdefault(peer, deque())
        recent.append(now)
        while recent and recent[0] < now - self.window:
            recent.popleft()
        if len(recent) >= self.ban_after:
            recent.clear()
            self.ban(peer, f"over {self.per_peer:g} requests/s for {self.window:g} s")
        return False


@dataclass
class PeerScore:
    """Hostile refusals per peer; the ``threshold``-th flags the peer and bans it."""

    limiter: RateLimiter
    threshold: int = 20
    max_peers: int = 10_000
    counts: Counter[str] = field(default_factory=Counter)
    flagged: set[str] = field(default_factory=set)

    def refused(self, peer: str, cause: str) -> None:
        if cause not in HOSTILE_CAUSES:
            return
        if len(self.counts) > self.max_peers:  # many short-lived peers: keep the worst
            self.counts = Counter(dict(self.counts.most_common(self.max_peers // 2)))
        self.counts[peer] += 1
        if self.counts[peer] >= self.threshold and peer not in self.flagged:
            self.flagged.add(peer)
            self.limiter.alerts.raise_(
                "peer_misbehaving", peer, f"{self.counts[peer]} refusals ({cause} the last)"
            )
            self.limiter.ban(peer, "misbehaving")


@dataclass(frozen=True)
class HttpLimits:
    """The ``[http]`` table of node.toml: how much of the node one peer, or all of them,
    may hold at once."""

    header_timeout: float = 10.0  # seconds for a request's line and headers to arrive
    body_timeout: float = 30.0  # seconds for its whole body (64 MiB of HE keys: 2.2 MB/s)
    max_in_flight: int = 64  # requests being read or answered, all peers together
    max_in_flight_per_peer: int = 8
    max_buffered: int = 256 << 20  # request-body bytes held in memory at once, all requests
    workers: int = 1  # threads for parsing, signatures, HPKE (envelopes, key requests): CPU
    # bound under one interpreter lock, more threads only take it from the event loop
    queue: int = 64  # requests waiting for a worker before the answer is 503 busy
    inference_workers: int = 2  # threads for inference requests (CKKS, HPKE)
    trusted_proxies: tuple[str, ...] = ()  # addresses whose forwarding header is believed
    forwarded_header: str = "x-forwarded-for"

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> HttpLimits:
        """From node.toml's ``[http]`` table; raises ``ValueError`` or ``TypeError``."""
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(doc) - known
        if unknown:
            raise ValueError(f"unknown [http] settings: {', '.join(sorted(unknown))}")
        values: dict[str, Any] = {}
        for name, value in doc.items():
            default = getattr(cls, name)
            if isinstance(default, tuple):
                if not isinstance(value, list | tuple):
                    raise TypeError(f"{name} must be a list")
                values[name] = tuple(str(ipaddress.ip_address(str(v))) for v in value)
            elif isinstance(default, str):
                values[name] = str(value).lower()
            else:
                values[name] = type(default)(value)
                if values[name] <= 0:
                    raise ValueError(f"{name} must be positive")
        return cls(**values)


def peer_of(scope: Mapping[str, Any], limits: HttpLimits) -> str:
    """Who a request is from, for limits and bans (see the module's docstring)."""
    client = scope.get("client")
    host, port = (str(client[0]), int(client[1])) if client else ("unknown", 0)
    if host in limits.trusted_proxies:
        wanted = limits.forwarded_header.encode()
        values = [v for k, v in scope.get("headers", ()) if k == wanted]
        hops = [h.strip() for v in values for h in v.decode("latin-1").split(",")]
        for hop in reversed(hops):  # the nearest hop the proxies did not add themselves
            try:
                address = str(ipaddress.ip_address(hop))
            except ValueError:
                break  # a forged or garbled entry: trust nothing beyond it
            if address not in limits.trusted_proxies:
                return address
        return f"{host}:{port}"  # the proxy's own request, or no header: one connection
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    return f"{host}:{port}" if loopback else host


def check_endpoints(
    alerts: Alerts, heads: Mapping[str, int], hash_at: Callable[[str, int], str], max_lag: int
) -> list[Alert]:
    """``heads``: endpoint -> its head block number; ``hash_at(endpoint, n)``: its hash of
    block n.  Alarms when endpoints disagree at the highest height all of them have, or one
    is more than ``max_lag`` blocks behind the highest."""
    raised: list[Alert] = []
    if len(heads) < 2:
        return raised
    top, common = max(heads.values()), min(heads.values())
    for url, head in heads.items():
        if top - head > max_lag:
            _add(raised, alerts.raise_("endpoint_behind", url, f"{top - head} blocks behind"))
    hashes = {url: hash_at(url, common) for url in heads}
    if len(set(hashes.values())) > 1:
        detail = f"block {common}: " + ", ".join(f"{u}={h[:10]}" for u, h in hashes.items())
        _add(raised, alerts.raise_("endpoints_disagree", "chain", detail))
    return raised


@dataclass(frozen=True)
class StakeHolder:
    address: str
    stake: int
    funder: str | None  # who sent the account its first ether, if known
    registered_at: int  # timestamp


def check_stake(
    alerts: Alerts,
    holders: Iterable[StakeHolder],
    *,
    same_funder: int = 3,
    burst: int = 10,
    burst_window: int = 3600,
) -> list[Alert]:
    """Stake concentration per entity, identities sharing a funder, registration bursts."""
    holders = list(holders)
    raised: list[Alert] = []
    entity: Counter[str] = Counter()
    members: dict[str, list[str]] = {}
    for h in holders:
        key = h.funder or h.address
        entity[key] += h.stake
        members.setdefault(key, []).append(h.address)
    total = sum(entity.values())
    for key, stake in entity.items():
        if total and 2 * stake > total:
            _add(raised, alerts.raise_("stake_majority", key, f"{stake}/{total} of the stake"))
        elif total and 3 * stake > total:
            _add(raised, alerts.raise_("stake_over_third", key, f"{stake}/{total} of the stake"))
        if len(members[key]) >= same_funder and key not in members[key]:
            _add(
                raised,
                alerts.raise_("common_funder", key, f"funded {len(members[key])} identities"),
            )
    times = sorted(h.registered_at for h in holders)
    for i in range(len(times)):
        j = i
        while j < len(times) and times[j] - times[i] <= burst_window:
            j += 1
        if j - i >= burst:
            _add(
                raised,
                alerts.raise_("registration_burst", "registry", f"{j - i} in {burst_window} s"),
            )
            break
    return raised


@dataclass
class ReorgWatch:
    """Remembers block hashes; a change at a depth past ``confirmations`` is an alert."""

    alerts: Alerts
    confirmations: int
    seen: dict[int, str] = field(default_factory=dict)

    def observe(self, head: int, hash_at: Callable[[int], str], span: int = 64) -> list[Alert]:
        raised: list[Alert] = []
        for n in range(max(0, head - span), head + 1):
            h = hash_at(n)
            old = self.seen.get(n)
            if old is not None and old != h and head - n >= self.confirmations:
                _add(
                    raised,
                    self.alerts.raise_(
                        "deep_reorg", f"block {n}", f"depth {head - n + 1} > {self.confirmations}"
                    ),
                )
            self.seen[n] = h
        for n in [n for n in self.seen if n < head - span]:
            del self.seen[n]
        return raised
