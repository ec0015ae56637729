"""Intrusion detection, each attack staged against the pure logic with a fake clock."""

from __future__ import annotations

import pytest

from chainml.node.ids import (
    Alerts,
    HttpLimits,
    PeerScore,
    RateLimiter,
    ReorgWatch,
    StakeHolder,
    check_endpoints,
    check_stake,
    peer_of,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(**kw):
    clock = Clock()
    alerts = Alerts(clock)
    return clock, alerts, RateLimiter(clock, alerts, **kw)


def test_flooding_peer_is_limited_then_banned_others_are_not():
    clock, alerts, rl = make(per_peer=10, overall=1000, ban_after=20, window=5, ban_for=60)
    assert sum(rl.allow("10.0.0.1") for _ in range(10)) == 10  # the burst
    assert not rl.allow("10.0.0.1")
    for _ in range(19):
        rl.allow("10.0.0.1")
    assert rl.is_banned("10.0.0.1") and alerts.counts["peer_banned"] == 1
    assert rl.allow("10.0.0.2")  # another peer is served
    clock.now += 30
    assert not rl.allow("10.0.0.1")  # still banned, though its bucket refilled
    clock.now += 31
    assert rl.allow("10.0.0.1")  # the ban expired


def test_global_limit_holds_across_peers():
    clock, alerts, rl = make(per_peer=100, overall=20)
    served = sum(rl.allow(f"10.0.1.{i}") for i in range(50))
    assert served == 20
    clock.now += 1
    assert sum(rl.allow(f"10.0.2.{i}") for i in range(50)) == 20  # refills at 20/s


def test_sustained_rate_under_the_limit_is_never_refused():
    clock, alerts, rl = make(per_peer=10, overall=100)
    for _ in range(300):
        clock.now += 0.11
        assert rl.allow("10.0.0.9")
    assert not alerts.recent


def test_forgeries_and_replays_flag_and_ban_the_peer():
    clock, alerts, rl = make()
    score = PeerScore(rl, threshold=5)
    for _ in range(10):
        score.refused("10.0.0.3", "stale")  # a slow clock is not hostile
    assert not score.flagged
    for cause in ["bad_signature", "replayed", "malformed", "undecryptable", "bad_signature"]:
        score.refused("10.0.0.3", cause)
    assert "10.0.0.3" in score.flagged and rl.is_banned("10.0.0.3")
    assert alerts.counts["peer_misbehaving"] == 1
    score.refused("10.0.0.3", "replayed")
    assert alerts.counts["peer_misbehaving"] == 1  # flagged once


def test_eclipse_disagreeing_and_lagging_endpoints():
    clock, alerts, _ = make()
    chains = {"a": ["h0", "h1", "h2", "h3"], "b": ["h0", "h1", "x2", "x3"], "c": ["h0"]}
    heads = {u: len(c) - 1 for u, c in chains.items()}
    raised = check_endpoints(alerts, heads, lambda u, n: chains[u][n], max_lag=2)
    kinds = sorted(a.kind for a in raised)
    assert kinds == ["endpoint_behind"]  # c is 3 behind; at height 0 all agree
    del chains["c"], heads["c"]
    raised = check_endpoints(alerts, heads, lambda u, n: chains[u][n], max_lag=2)
    assert [a.kind for a in raised] == ["endpoints_disagree"] and "block 3" in raised[0].detail
    honest = {"a": ["h0", "h1"], "b": ["h0", "h1"]}
    assert check_endpoints(alerts, {"a": 1, "b": 1}, lambda u, n: honest[u][n], 2) == []


def test_stake_concentration_common_funder_and_registration_burst():
    clock, alerts, _ = make()
    fair = [StakeHolder(f"0x{i}", 10, None, i * 10_000) for i in range(6)]
    assert check_stake(alerts, fair) == []
    sybils = [StakeHolder(f"0xs{i}", 10, "0xwhale", 50_000 + i) for i in range(4)]
    kinds = sorted(a.kind for a in check_stake(alerts, fair + sybils))
    # 40 of 100 from one funder: over a third, and four identities from one source
    assert kinds == ["common_funder", "stake_over_third"]
    big = [StakeHolder(f"0xb{i}", 40, "0xwhale", 90_000 + 5000 * i) for i in range(3)]
    kinds = sorted(a.kind for a in check_stake(alerts, fair + big))
    assert kinds == ["common_funder", "stake_majority"]
    burst = [StakeHolder(f"0xr{i}", 1, None, 200_000 + i) for i in range(12)]
    assert "registration_burst" in [a.kind for a in check_stake(alerts, fair + burst)]


def test_reorg_past_the_confirmation_depth():
    clock, alerts, _ = make()
    watch = ReorgWatch(alerts, confirmations=3)
    chain = [f"a{i}" for i in range(10)]
    assert watch.observe(9, lambda n: chain[n]) == []
    chain[8], chain[9] = "b8", "b9"  # shallow: depth 2 < 3
    assert watch.observe(9, lambda n: chain[n]) == []
    chain[4:] = [f"c{i}" for i in range(4, 10)]  # deep: from block 4, 6 blocks
    raised = watch.observe(9, lambda n: chain[n])
    assert raised and all(a.kind == "deep_reorg" for a in raised)
    assert {a.subject for a in raised} == {f"block {n}" for n in range(4, 7)}


def _scope(host: str, port: int = 40000, **headers: str) -> dict:
    return {
        "client": (host, port),
        "headers": [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()],
    }


def test_who_a_request_is_from():
    plain = HttpLimits()
    # a remote peer is its address, whatever port it comes from
    assert peer_of(_scope("203.0.113.9", 1), plain) == peer_of(_scope("203.0.113.9", 2), plain)
    # a loopback client is each of its connections: local processes do not share a fate
    assert peer_of(_scope("127.0.0.1", 1), plain) == "127.0.0.1:1"
    assert peer_of(_scope("::1", 5), plain) == "::1:5"
    # a forwarding header is believed only from a trusted proxy
    assert peer_of(_scope("127.0.0.1", 7, x_forwarded_for="198.51.100.7"), plain) == "127.0.0.1:7"
    proxied = HttpLimits(trusted_proxies=("127.0.0.1", "10.0.0.2"))
    assert peer_of(_scope("127.0.0.1", 7, x_forwarded_for="198.51.100.7"), proxied) == (
        "198.51.100.7"
    )
    # the nearest hop the proxies did not add; a spoofed first entry changes nothing
    chain = "1.2.3.4, 198.51.100.7, 10.0.0.2"
    assert peer_of(_scope("127.0.0.1", 7, x_forwarded_for=chain), proxied) == "198.51.100.7"
    # garbage in the header: the proxy's connection, not an address anyone chose
    assert peer_of(_scope("127.0.0.1", 7, x_forwarded_for="x, 198.51.100.7, y"), proxied) == (
        "127.0.0.1:7"
    )
    assert peer_of(_scope("127.0.0.1", 8), proxied) == "127.0.0.1:8"


def test_http_limits_from_the_config_table():
    limits = HttpLimits.from_doc({"header_timeout": 3, "trusted_proxies": ["127.0.0.1"]})
    assert limits.header_timeout == 3.0 and limits.trusted_proxies == ("127.0.0.1",)
    for bad in (
        {"header_timeot": 3},
        {"max_in_flight": 0},
        {"trusted_proxies": "127.0.0.1"},
        {"trusted_proxies": ["not an address"]},
        {"body_timeout": "soon"},
    ):
        with pytest.raises((ValueError, TypeError)):
            HttpLimits.from_doc(bad)


def test_a_banned_peer_s_signed_requests_still_pass_the_gate_within_its_rate():
    clock, alerts, rl = make(per_peer=10, overall=1000, ban_after=20, window=5, ban_for=60)
    rl.ban("203.0.113.9", "misbehaving")
    assert not rl.allow("203.0.113.9")
    assert rl.allow("203.0.113.9", ignore_ban=True)  # to be judged on its signature
    assert sum(rl.allow("203.0.113.9", ignore_ban=True) for _ in range(20)) == 9  # the bucket


def test_buckets_of_many_short_lived_peers_are_forgotten():
    clock, alerts, rl = make(per_peer=10, overall=10**9, max_peers=100)
    for port in range(1000):
        rl.allow(f"127.0.0.1:{port}")
        clock.now += 0.1
    assert len(rl._buckets) <= 200
