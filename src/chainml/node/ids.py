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
* ``ReorgWatch``: a block the node had seen at a depth past its confirmation depth was
  replaced.
"""

from __future__ import annotations

import logging
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

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

    def allow(self, peer: str) -> bool:
        if self.is_banned(peer):
            return False
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
    counts: Counter[str] = field(default_factory=Counter)
    flagged: set[str] = field(default_factory=set)

    def refused(self, peer: str, cause: str) -> None:
        if cause not in HOSTILE_CAUSES:
            return
        self.counts[peer] += 1
        if self.counts[peer] >= self.threshold and peer not in self.flagged:
            self.flagged.add(peer)
            self.limiter.alerts.raise_(
                "peer_misbehaving", peer, f"{self.counts[peer]} refusals ({cause} the last)"
            )
            self.limiter.ban(peer, "misbehaving")


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
