"""Privacy against the strongest coalition SecAgg+ claims to resist: the aggregator's full
view of a round plus the complete state of t − 1 colluding trainers.

A round is run with the real state machines while a recording server keeps every message
it receives and sends.  Afterwards a ``Coalition`` is built from that view and from the
private state of its members only (their X25519 keys, seeds, held shares), and does the
best it can: it decrypts every share ciphertext it has a key for, collects the unmasking
shares it was given, exploits any pair of ciphertexts that reuse a keystream, rebuilds
every secret it can from every subset of the shares it holds (a candidate counts only if
it opens the advertised seed commitment or mask key), and strips from the target's masked
input every mask it can then compute.  What is left must be uniform over Z_2^32 and
uncorrelated with the target's update, while the same analysis run for a coalition of t
trainers, or of all the target's neighbours, recovers the encoded update exactly (the
negative controls: the statistics can fail).  The colluders are honest-but-curious: which
clients collude changes nothing in the run, so one round serves every coalition.

The keystream reuse was real once (both directions of a pair sealed under one key and one
nonce: with it the coalition rebuilt mask keys and seeds it must never see), so each case
where a dropped client's mask key is rebuilt runs twice: without the XOR and with it.
"""

from __future__ import annotations

import os
import secrets
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import stats

from chainml.crypto import X25519KeyPair
from chainml.crypto.hazmat import fixedpoint, prg
from chainml.crypto.hazmat.shamir import P256, Share, interpolate
from chainml.training.secagg import (
    SHARE_BYTES,
    SHARE_HASH_BYTES,
    KeyAdvert,
    MaskedInput,
    NeighbourKeys,
    RoundParams,
    SealedShares,
    SecAggClient,
    SecAggResult,
    SecAggServer,
    ShareBatch,
    SurvivorList,
    SurvivorSignature,
    UnmaskRequest,
    UnmaskShares,
    clip_l2,
    decode_share,
    encode_share,
    run_in_memory,
)
from tests.training.test_secagg import IDENTITIES, _params

pytestmark = pytest.mark.ignore_isolation  # no chain here: titanoboa's per-fixture anchors off

M = 40_000  # enough values for the chi-square tests to see structure at once
ALPHA = 1e-5  # a uniform residual fails one chi-square test this rarely
KIND_FIELD = {"key": slice(0, SHARE_BYTES), "seed": slice(SHARE_BYTES, 2 * SHARE_BYTES)}


def _structured(m: int, kind: str) -> NDArray[np.float64]:
    """Updates a curious coalition would love to spot, all within the clip bound of 5."""
    k = np.arange(m)
    if kind == "sine+spike":
        x = 0.02 * np.sin(k / 50.0)
        x[17] = 1.0
        return x
    if kind == "ramp":
        return 0.02 * ((k % 100) / 100.0 - 0.5)
    if kind == "zeros":
        return np.zeros(m)
    raise ValueError(kind)


# -- a round, recorded as the aggregator sees it ---------------------------------------------


class RecordingServer(SecAggServer):
    """An aggregator that keeps everything it receives and sends.  It follows the protocol,
    except that it may ``omit`` clients whose masked inputs it did receive from the survivor
    list (a deviation no honest client can tell from a dropout)."""

    def __init__(self, params: RoundParams, omit: Iterable[int] = ()) -> None:
        super().__init__(params)
        self.received: list[object] = []
        self.sent: list[object] = []
        self.omit = frozenset(omit)

    def receive(
        self, message: KeyAdvert | SealedShares | MaskedInput | SurvivorSignature | UnmaskShares
    ) -> None:
        self.received.append(message)
        super().receive(message)

    def advance(
        self,
    ) -> list[NeighbourKeys] | list[ShareBatch] | list[SurvivorList] | list[UnmaskRequest]:
        if self.stage == "masked":
            for u in self.omit:  # kept in ``received``: the server still holds them
                del self._inputs[u], self._signed_inputs[u]
        out = super().advance()
        self.sent.extend(out)
        return out


@dataclass
class View:
    """The aggregator's full view of one round."""

    params: RoundParams
    adverts: dict[int, KeyAdvert]
    neighbour_keys: dict[int, NeighbourKeys]
    sealed: dict[int, SealedShares]
    inputs: dict[int, MaskedInput]
    unmask: dict[int, UnmaskShares]
    result: SecAggResult
    received: list[object]

    @classmethod
    def of(cls, server: RecordingServer, result: SecAggResult) -> View:
        def by_sender(kind: type) -> dict[int, Any]:
            return {getattr(m, "sender"): m for m in server.received if isinstance(m, kind)}  # noqa: B009

        return cls(
            params=server.params,
            adverts=by_sender(KeyAdvert),
            neighbour_keys={m.recipient: m for m in server.sent if isinstance(m, NeighbourKeys)},
            sealed=by_sender(SealedShares),
            inputs=by_sender(MaskedInput),
            unmask=by_sender(UnmaskShares),
            result=result,
            received=list(server.received),
        )


@dataclass
class Round:
    params: RoundParams
    clients: dict[int, SecAggClient]
    updates: dict[int, NDArray[np.float64]]
    target: int
    encoded_target: NDArray[np.uint32]  # what the referee (not the coalition) knows
    view: View


def _round(
    n: int,
    target: int,
    update: str,
    *,
    drop: Mapping[str, Iterable[int]] | None = None,
    omit: Iterable[int] = (),
) -> Round:
    p = _params(n=n, m=M, threshold=None)  # RoundParams.create's own degree and threshold
    rng = np.random.default_rng(n)
    updates = {i: rng.normal(scale=0.01, size=M) for i in p.roster}
    updates[target] = _structured(M, update)
    rng_seed = 1234
    clients = {
        i: SecAggClient(
            p,
            i,
            IDENTITIES[i],
            updates[i],
            rng=np.random.default_rng(rng_seed if i == target else None),
        )
        for i in p.roster
    }
    encoded = fixedpoint.encode(
        clip_l2(updates[target], p.clip), p.frac_bits, np.random.default_rng(rng_seed)
    )
    server = RecordingServer(p, omit)
    result = run_in_memory(p, clients, drop=drop, server=server)
    round_ = Round(p, clients, updates, target, encoded, View.of(server, result))
    # a working round: the survivors' sum comes out, within the quantisation bound
    expected = sum(updates[i] for i in result.survivors)
    assert np.abs(result.total - expected).max() < len(result.survivors) / 2**p.frac_bits
    return round_


# -- the coalition ---------------------------------------------------------------------------


def _pair_mask(p: RoundParams, secret: bytes, i: int, j: int) -> NDArray[np.uint32]:
    return prg.mask(secret, p.label("pair", min(i, j), max(i, j)), p.secure_len)


@dataclass
class Coalition:
    """What the aggregator plus ``members`` know, and all they can derive from it.

    ``nonce_reuse`` lets it XOR the two ciphertexts a pair of clients send each other: if
    their encryptions share a keystream, that XOR is the XOR of the plaintexts, and a known
    share on one side gives away the share on the other."""

    view: View
    members: frozenset[int]
    clients: Mapping[int, SecAggClient] = field(repr=False)
    nonce_reuse: bool = True
    # (kind, owner) -> holder -> the holder's share of the owner's secret
    shares: dict[tuple[str, int], dict[int, Share]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    updates: dict[int, NDArray[np.float64]] = field(default_factory=dict)  # colluders' own
    keys: dict[int, X25519KeyPair] = field(default_factory=dict)  # mask-agreement keys
    seeds: dict[int, bytes] = field(default_factory=dict)  # self-mask seeds
    subsets_tried: dict[tuple[str, int], int] = field(default_factory=dict)
    derived_by_xor: int = 0
    _searched: dict[tuple[str, int], frozenset[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        v, p = self.view, self.view.params
        t = p.threshold
        for c in self.members:  # a colluder's own secrets: only members' state is read
            self.keys[c] = self.clients[c]._s
            self.seeds[c] = self.clients[c]._seed
            self.updates[c] = self.clients[c]._update
        for a, sealed in v.sealed.items():  # every ciphertext to or from a colluder
            for b, ct in sealed.ciphertexts.items():
                if a not in self.members and b not in self.members:
                    continue
                me, other = (a, b) if a in self.members else (b, a)
                box = self.clients[me]._pairs.box(p, me, a, b)  # the colluder's pair key
                plain = box.decrypt(ct, p.label("share", a, b))
                for kind, where in KIND_FIELD.items():
                    self.shares[kind, a][b] = decode_share(plain[where], self._index(a, b), t)
        for c in self.members:  # the decryption agrees with what the colluders hold
            for j, (key_share, seed_share) in self.clients[c]._held.items():
                assert self.shares["key", j][c] == key_share
                assert self.shares["seed", j][c] == seed_share
        for holder, revealed in v.unmask.items():  # the unmasking shares it was given
            for j, raw in revealed.self_mask.items():
                self.shares["seed", j][holder] = decode_share(raw, self._index(j, holder), t)
            for j, raw in revealed.mask_key.items():
                self.shares["key", j][holder] = decode_share(raw, self._index(j, holder), t)
        self._close()

    # which x each holder's share of ``owner``'s secrets sits at
    def _index(self, owner: int, holder: int) -> int:
        return self.view.params.share_index(owner, holder)

    def _opens(self, kind: str, owner: int, secret: bytes) -> bool:
        advert = self.view.adverts[owner]
        if kind == "seed":
            return self.view.params.seed_commitment(owner, secret) == advert.seed_commitment
        return X25519KeyPair.from_private_bytes(secret).public_bytes == advert.pk_s

    def _known(self, kind: str) -> dict[int, Any]:
        return self.seeds if kind == "seed" else self.keys

    def _search(self, kind: str, owner: int) -> None:
        """Every subset of the held shares, largest first (t of them suffice if held)."""
        held = self.shares[kind, owner]
        if owner in self._known(kind) or self._searched.get((kind, owner)) == frozenset(held):
            return
        self._searched[kind, owner] = frozenset(held)
        t, tried = self.view.params.threshold, 0
        for size in range(min(len(held), t), 0, -1):
            for subset in combinations(sorted(held), size):
                tried += 1
                value = interpolate([(held[h].index, held[h].value) for h in subset], prime=P256)
                if value >= 2**256 or not self._opens(kind, owner, value.to_bytes(32, "big")):
                    continue
                secret = value.to_bytes(32, "big")
                known = self._known(kind)
                known[owner] = X25519KeyPair.from_private_bytes(secret) if kind == "key" else secret
                if size == t:  # the whole polynomial: every holder's share follows
                    points = [(held[h].index, held[h].value) for h in subset]
                    for h in self.view.sealed[owner].ciphertexts:
                        x = self._index(owner, h)
                        held.setdefault(h, Share(x, t, 32, interpolate(points, at=x, prime=P256)))
                return
        self.subsets_tried[kind, owner] = tried

    def _xor(self) -> bool:
        """Shares given away by ciphertexts that share a keystream."""
        sealed, t, grew = self.view.sealed, self.view.params.threshold, False
        for a in sorted(sealed):
            for b in sorted(sealed[a].ciphertexts):
                if a not in sealed or b not in sealed or a not in sealed[b].ciphertexts:
                    continue
                ab, ba = sealed[a].ciphertexts[b], sealed[b].ciphertexts[a]
                pad = bytes(
                    x ^ y for x, y in zip(ab[12:-16], ba[12:-16], strict=True)
                )  # past the nonces
                for kind, where in KIND_FIELD.items():
                    known = self.shares[kind, b].get(a)  # b's share for a: inside ba
                    if known is None or b in self.shares[kind, a]:
                        continue
                    mine = encode_share(known)
                    guess = bytes(x ^ y for x, y in zip(pad[where], mine, strict=True))
                    # a share is 33 bytes of y: the dealer's committed hash tells a true one
                    h = SHARE_HASH_BYTES
                    half = slice(0, h) if kind == "key" else slice(h, 2 * h)
                    committed = self.view.adverts[a].share_hashes[b][half]
                    if self.view.params.share_hash(a, b, kind, guess) == committed:
                        x = self._index(a, b)
                        self.shares[kind, a][b] = decode_share(guess, x, t)
                        self.derived_by_xor += 1
                        grew = True
        return grew

    def _close(self) -> None:
        while True:
            for kind, owner in [(k, o) for k in KIND_FIELD for o in self.view.sealed]:
                self._search(kind, owner)
            if not (self.nonce_reuse and self._xor()):
                return

    def pair_secret(self, i: int, j: int) -> bytes | None:
        pk = self.view.adverts
        if i in self.keys:
            return self.keys[i].exchange(pk[j].pk_s)
        if j in self.keys:
            return self.keys[j].exchange(pk[i].pk_s)
        return None

    def strip(self, u: int) -> tuple[NDArray[np.uint32], list[int]]:
        """``u``'s masked input less every mask the coalition can compute; the partners
        whose pairwise masks it cannot."""
        p, sent = self.view.params, self.view.inputs[u]
        y = sent.vector.copy()
        if u in self.seeds:
            y -= prg.mask(self.seeds[u], p.label("self", u), p.secure_len)
        unknown = []
        for j in sent.partners:
            secret = self.pair_secret(u, j)
            if secret is None:
                unknown.append(j)
            elif u < j:
                y -= _pair_mask(p, secret, u, j)
            else:
                y += _pair_mask(p, secret, u, j)
        return y, unknown


def _uniformity(v: NDArray[np.uint32]) -> tuple[float, float]:
    """Chi-square p-values of the bytes and of the top byte against uniform."""
    as_bytes = np.bincount(np.ascontiguousarray(v, dtype="<u4").view(np.uint8), minlength=256)
    top = np.bincount((v >> 24).astype(np.int64), minlength=256)
    return float(stats.chisquare(as_bytes).pvalue), float(stats.chisquare(top).pvalue)


def _correlation(v: NDArray[np.uint32], encoded: NDArray[np.uint32]) -> float:
    a, b = v.view(np.int32).astype(np.float64), encoded.view(np.int32).astype(np.float64)
    return float(np.corrcoef(a, b)[0, 1])


def _assert_hidden(r: Round, coalition: Coalition) -> None:
    """The coalition cannot rebuild the target's mask key and what it can strip off its
    masked input is uniform and uncorrelated with its update."""
    u, p = r.target, r.params
    assert u not in coalition.members
    assert u not in coalition.keys
    held = coalition.shares["key", u]
    assert len(held) <= p.threshold - 1
    assert coalition.subsets_tried["key", u] == 2 ** len(held) - 1  # every subset, none opens
    assert u in coalition.seeds  # b_u is revealed for a survivor: the protocol allows it
    residual, unknown = coalition.strip(u)
    assert unknown and set(unknown).isdisjoint(coalition.members)
    byte_p, top_p = _uniformity(residual)
    assert byte_p > ALPHA and top_p > ALPHA, (byte_p, top_p)
    assert abs(_correlation(residual, r.encoded_target)) < 5 / np.sqrt(M)
    assert not np.array_equal(residual, r.encoded_target)


def _assert_exposed(r: Round, coalition: Coalition) -> None:
    """Negative control: the same analysis does find the update when it is findable."""
    residual, unknown = coalition.strip(r.target)
    assert unknown == []
    assert np.array_equal(residual, r.encoded_target)
    byte_p, top_p = _uniformity(residual)
    assert byte_p < 1e-10 and top_p < 1e-10
    assert _correlation(residual, r.encoded_target) > 0.999


def _colluders(r: Round, count: int, among: Iterable[int]) -> frozenset[int]:
    chosen = [c for c in among if c != r.target][:count]
    assert len(chosen) == count
    return frozenset(chosen)


# -- the tests -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def complete() -> Round:
    return _round(10, target=4, update="sine+spike")


@pytest.fixture(scope="module")
def sparse() -> Round:
    return _round(40, target=7, update="ramp")  # above COMPLETE_UP_TO: a Harary graph


@pytest.mark.parametrize("name", ["complete", "sparse"])
def test_a_survivor_is_hidden_from_the_server_and_t_minus_1_neighbours(
    name: str, request: pytest.FixtureRequest
) -> None:
    r: Round = request.getfixturevalue(name)
    p, u = r.params, r.target
    assert r.view.result.survivors == tuple(sorted(p.roster))
    if name == "sparse":
        assert p.degree < len(p.roster) - 1
    # the worst t − 1: all of them u's neighbours, so each holds u's shares
    coalition = Coalition(
        r.view, _colluders(r, p.threshold - 1, sorted(p.neighbours[u])), r.clients
    )
    _assert_hidden(r, coalition)
    # the sum less the colluders' own updates is what the protocol gives away: it mixes u
    # with the other honest survivors, never u alone
    honest = set(r.view.result.survivors) - coalition.members
    remainder = r.view.result.total - sum(coalition.updates.values())
    assert len(honest) >= 2 and u in honest
    assert np.abs(remainder - sum(r.updates[i] for i in honest)).max() < 1e-4
    assert np.abs(remainder - r.updates[u]).max() > 0.1
    # and t − 1 others (outside u's neighbourhood where there is one) do no better
    strangers = sorted(set(p.roster) - p.neighbours[u]) + sorted(p.neighbours[u], reverse=True)
    coalition = Coalition(r.view, _colluders(r, p.threshold - 1, strangers), r.clients)
    _assert_hidden(r, coalition)


@pytest.mark.parametrize("name", ["complete", "sparse"])
def test_control_t_colluders_or_all_neighbours_expose_the_update(
    name: str, request: pytest.FixtureRequest
) -> None:
    r: Round = request.getfixturevalue(name)
    p, u = r.params, r.target
    t_of_them = Coalition(r.view, _colluders(r, p.threshold, sorted(p.neighbours[u])), r.clients)
    assert u in t_of_them.keys  # t shares rebuild the mask key, checked against pk_s
    _assert_exposed(r, t_of_them)
    everyone = Coalition(r.view, frozenset(p.neighbours[u]), r.clients)
    _assert_exposed(r, everyone)
    # the t − 1 case on the same round, where it stays hidden, is the test above


@pytest.fixture(scope="module")
def one_dropped() -> Round:
    """Target 4 shares its secrets, then drops before it is sent the shares of others: it
    never computes a masked input, and the server rebuilds its mask key legitimately."""
    return _round(10, target=4, update="zeros", drop={"masked": [4]})


def test_a_client_dropped_before_its_input_sends_nothing_of_its_update(one_dropped: Round) -> None:
    r = one_dropped
    p, u, v = r.params, r.target, r.view
    assert u in v.result.dropped and u not in v.result.survivors and u not in v.inputs
    sent_by_u = [m for m in v.received if getattr(m, "sender", None) == u]
    assert [type(m) for m in sent_by_u] == [KeyAdvert, SealedShares]
    coalition = Coalition(v, _colluders(r, p.threshold - 1, sorted(p.neighbours[u])), r.clients)
    # the mask key is rebuilt, as the server must to strip u's pairwise masks off the others
    assert coalition.keys[u].private_bytes() == v.result.transcript.mask_keys[u]
    assert u not in v.result.transcript.seeds


def test_what_a_client_sends_before_its_input_does_not_depend_on_its_update(
    one_dropped: Round, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The two messages a client sends before its masked input, rerun with the same coins
    for an all-zero and a structured update, are byte for byte the same."""
    r = one_dropped
    p, u = r.params, r.target
    neighbour_keys = r.view.neighbour_keys[u]

    def replay(update: NDArray[np.float64]) -> tuple[KeyAdvert, object]:
        coins = np.random.default_rng(99)
        monkeypatch.setattr(os, "urandom", lambda k: coins.bytes(k))
        monkeypatch.setattr(
            X25519KeyPair,
            "generate",
            classmethod(lambda cls: cls.from_private_bytes(coins.bytes(32))),
        )
        monkeypatch.setattr(secrets, "randbelow", lambda n: int(coins.integers(1, 2**62)))
        client = SecAggClient(p, u, IDENTITIES[u], update)
        return client.advertise(), client.handle(neighbour_keys)

    try:
        quiet, loud = replay(np.zeros(M)), replay(_structured(M, "sine+spike"))
        other_coins = replay(np.zeros(M))
    finally:
        monkeypatch.undo()
    assert isinstance(quiet[1], SealedShares) and quiet == loud
    assert other_coins == quiet  # the same coins: the comparison is of like with like
    assert os.urandom(8) != os.urandom(8)  # the patches are gone


# Both directions of a pair once sealed their shares under one key with a fixed nonce, so
# the XOR of the two ciphertexts was the XOR of the plaintexts and a share known on one side
# gave away the other: the coalition keeps trying that, and must get nothing from it.
XORS = pytest.mark.parametrize("nonce_reuse", [False, True], ids=["decrypts", "xors"])


@XORS
def test_a_dropped_clients_seed_stays_hidden(one_dropped: Round, nonce_reuse: bool) -> None:
    """Never both secrets of one client: with its mask key rebuilt, dropped 4's self-mask
    seed must stay out of reach (t − 1 shares: every subset tried, none opens it).  The
    shared keystream hands the server 4's seed share of each survivor, whose seed
    polynomial it rebuilt when it unmasked it."""
    r = one_dropped
    p, u = r.params, r.target
    members = _colluders(r, p.threshold - 1, sorted(p.neighbours[u]))
    coalition = Coalition(r.view, members, r.clients, nonce_reuse=nonce_reuse)
    assert u in coalition.keys
    assert u not in coalition.seeds, f"{coalition.derived_by_xor} shares derived by XOR"
    assert len(coalition.shares["seed", u]) == p.threshold - 1
    assert coalition.subsets_tried["seed", u] == 2 ** (p.threshold - 1) - 1


@XORS
def test_the_neighbours_of_a_dropped_client_stay_hidden(
    one_dropped: Round, nonce_reuse: bool
) -> None:
    """The server legitimately rebuilds dropped 4's mask key and strips its pairwise masks
    off every survivor; each honest survivor must still be hidden from it and t − 1
    colluders.  With only the shares it can decrypt, it is; the reuse of a keystream
    between a pair's two ciphertexts gives it one more share of each neighbour's mask key:
    with t − 1 colluders that is t."""
    r = one_dropped
    p, v = r.params, r.view
    honest_neighbours = sorted(p.neighbours[r.target] & set(v.result.survivors))
    coalition_size = p.threshold - 1
    for target in honest_neighbours[:3]:
        members = _colluders(r, coalition_size, sorted(set(p.roster) - {target, r.target}))
        coalition = Coalition(v, members, r.clients, nonce_reuse=nonce_reuse)
        assert target not in coalition.keys, f"the coalition rebuilt {target}'s mask key"
        residual, unknown = coalition.strip(target)
        assert unknown and r.target not in unknown
        byte_p, top_p = _uniformity(residual)
        assert byte_p > ALPHA and top_p > ALPHA


@pytest.fixture(scope="module")
def thirty_percent_dropped() -> Round:
    return _round(10, target=1, update="sine+spike", drop={"masked": [2, 5, 9]})


@XORS
def test_the_server_alone_after_thirty_percent_dropouts(
    thirty_percent_dropped: Round, nonce_reuse: bool
) -> None:
    """No colluder at all: t = 3 clients drop before their inputs (the round's tolerated
    30%), and the server must still see each survivor's input as noise."""
    r = thirty_percent_dropped
    assert r.view.result.dropped == (2, 5, 9)
    coalition = Coalition(r.view, frozenset(), r.clients, nonce_reuse=nonce_reuse)
    assert {2, 5, 9} <= set(coalition.keys)  # the dropped clients' keys, legitimately
    assert r.target not in coalition.keys, f"{coalition.derived_by_xor} shares derived by XOR"
    assert set(coalition.keys) == {2, 5, 9}
    residual, _ = coalition.strip(r.target)
    byte_p, top_p = _uniformity(residual)
    assert byte_p > ALPHA and top_p > ALPHA
    assert abs(_correlation(residual, r.encoded_target)) < 5 / np.sqrt(M)


@pytest.fixture(scope="module")
def left_out() -> Round:
    """The server receives client 3's masked input, then lists 3 as dropped: the others
    reveal their shares of 3's mask key, as they must for a client that dropped."""
    return _round(10, target=3, update="sine+spike", omit=[3])


@XORS
def test_a_server_that_lists_a_client_it_heard_from_as_dropped_learns_nothing(
    left_out: Round, nonce_reuse: bool
) -> None:
    """No colluder and no dropout: the server alone holds 3's masked input and, by its
    deviation, 3's mask key, so every pairwise mask comes off; the self mask must not.  The
    shared keystream gives it 3's seed shares too, hence 3's update in the clear."""
    r = left_out
    v = r.view
    assert 3 in v.inputs and 3 not in v.result.survivors and 3 in v.result.dropped
    coalition = Coalition(v, frozenset(), r.clients, nonce_reuse=nonce_reuse)
    assert 3 in coalition.keys  # legitimately, for a client the quorum agreed had dropped
    residual, unknown = coalition.strip(3)
    assert unknown == []
    assert 3 not in coalition.seeds, f"{coalition.derived_by_xor} shares derived by XOR"
    byte_p, top_p = _uniformity(residual)
    assert byte_p > ALPHA and top_p > ALPHA
    assert abs(_correlation(residual, r.encoded_target)) < 5 / np.sqrt(M)
