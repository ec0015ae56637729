"""An active adversary around real ``SecAggClient`` objects (a helper, not a test module).

``Adversary`` plays the aggregator of one round, and the ``colluders`` with it, while every
other client is the real state machine of ``chainml.training.secagg``.  The adversary
decides, client by client and stage by stage, what it delivers: whose adverts
(``share``), whose share ciphertexts (``mask``), which survivor list (``sign``: each
client may be sent a different one, or none), and, in the unmask request, every approval
it has for that list (the honest ones it collected plus any its colluders sign) and the
partner entries it chooses (``unmask``).  It keeps everything it is sent; a client that
refuses a message (any ``SecAggError``) is out of the round, and the refusal is recorded.
``fork`` copies the adversary and its clients' states after a common prefix, so a search
over delivery choices does not redo the stages before its branch.

``attempt_reconstruction`` then tries, with all it collected and the colluders' complete
state: it decrypts every share ciphertext a colluder could open, adds every share an
honest client revealed, rebuilds every secret for which it holds ``threshold`` shares
(every subset of that size, up to a bound; a candidate counts only if it opens the
dealer's seed commitment or advertised mask key), strips every mask it can from each
honest masked input, and computes the sets of honest inputs whose sum it learns with every
mask removed: those closed under "an unknown pair mask to a mutual partner" and with every
self mask known.  Each set it claims is checked against the referee's knowledge (the true
encoded inputs, taken from the clients' own secrets and checked against their updates), so
a claim that is wrong fails loudly instead of passing as "nothing learnt".
"""

from __future__ import annotations

import copy
import itertools
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from chainml.crypto import Identity, X25519KeyPair
from chainml.crypto.hazmat import fixedpoint, prg
from chainml.crypto.hazmat.shamir import P256, Share, ShareError, combine
from chainml.training.secagg import (
    SHARE_BYTES,
    KeyAdvert,
    MaskedInput,
    NeighbourKeys,
    PairKeys,
    RoundParams,
    SealedShares,
    SecAggClient,
    SecAggError,
    ShareBatch,
    SurvivorList,
    SurvivorSignature,
    UnmaskRequest,
    UnmaskShares,
    clip_l2,
    decode_share,
)

_TRUTH: dict[bytes, NDArray[np.uint32]] = {}  # the referee's answers, by signed input
MAX_SUBSETS = 512  # t-subsets tried per secret; all shares here are true points, so one does


def fork_client(client: SecAggClient) -> SecAggClient:
    """A copy of ``client``'s state that can go on independently.  The round parameters,
    its long-lived keys and account are shared (immutable, or caches only)."""
    shared = (client.params, client._s, client._pairs, client.account)
    return copy.deepcopy(client, {id(x): x for x in shared})


# the same secrets come back across the rounds of a search: each derived once (read-only)
_MASKS: dict[tuple[bytes, bytes, int], NDArray[np.uint32]] = {}
_SHARES: dict[tuple[bytes, int, int], Share] = {}
_KEYS: dict[bytes, X25519KeyPair] = {}
_OPENED: dict[bytes, bytes] = {}
_AGREED: dict[tuple[bytes, bytes], bytes] = {}


def _mask(secret: bytes, label: bytes, length: int) -> NDArray[np.uint32]:
    slot = (secret, label, length)
    if slot not in _MASKS:
        _MASKS[slot] = prg.mask(secret, label, length)
        _MASKS[slot].setflags(write=False)
    return _MASKS[slot]


def _share(p: RoundParams, raw: bytes, dealer: int, holder: int) -> Share:
    """A share as it travels (its y), placed at its holder's x."""
    slot = (raw, p.share_index(dealer, holder), p.threshold)
    if slot not in _SHARES:
        _SHARES[slot] = decode_share(*slot)
    return _SHARES[slot]


def _key(secret: bytes) -> X25519KeyPair:
    if secret not in _KEYS:
        _KEYS[secret] = X25519KeyPair.from_private_bytes(secret)
    return _KEYS[secret]


def pair_mask(p: RoundParams, secret: bytes, i: int, j: int) -> NDArray[np.uint32]:
    """The pairwise mask of ``i`` and ``j`` from their agreed secret, as the spec derives it."""
    return _mask(secret, p.label("pair", min(i, j), max(i, j)), p.secure_len)


def self_mask(p: RoundParams, seed: bytes, i: int) -> NDArray[np.uint32]:
    return _mask(seed, p.label("self", i), p.secure_len)


def signed_pair_mask(p: RoundParams, secret: bytes, i: int, j: int) -> NDArray[np.uint32]:
    """What ``i`` added to its input for partner ``j``."""
    mask = pair_mask(p, secret, i, j)
    return mask if i < j else (np.zeros_like(mask) - mask)


@dataclass
class Adversary:
    """The aggregator plus ``colluders``, driving real clients through one round."""

    params: RoundParams
    clients: dict[int, SecAggClient]
    updates: Mapping[int, NDArray[np.float64]]
    colluders: frozenset[int] = frozenset()
    adverts: dict[int, KeyAdvert] = field(default_factory=dict)  # as each client sent it
    seen_adverts: dict[int, dict[int, KeyAdvert]] = field(default_factory=dict)  # recipient ->
    sealed: dict[int, SealedShares] = field(default_factory=dict)
    inputs: dict[int, MaskedInput] = field(default_factory=dict)
    lists: dict[int, tuple[int, ...]] = field(default_factory=dict)  # approver -> its list
    approvals: dict[int, SurvivorSignature] = field(default_factory=dict)
    revealed: dict[int, UnmaskShares] = field(default_factory=dict)
    refused: dict[int, tuple[str, SecAggError]] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        params: RoundParams,
        identities: Mapping[int, Identity],
        updates: Mapping[int, NDArray[np.float64]],
        *,
        colluders: Iterable[int] = (),
        client_cls: type[SecAggClient] = SecAggClient,
        pairs: Mapping[int, PairKeys] | None = None,
    ) -> Adversary:
        """Make the clients and run stage 0 (every client advertises: nothing to decide)."""
        clients = {
            i: client_cls(
                params,
                i,
                identities[i],
                updates[i],
                pairs=pairs[i] if pairs else None,
                rng=np.random.default_rng(i),
            )
            for i in params.roster
        }
        adversary = cls(params, clients, updates, frozenset(colluders))
        adversary.adverts = {i: c.advertise() for i, c in clients.items()}
        return adversary

    def fork(self) -> Adversary:
        """An independent copy: the clients' states are copied, the records too."""
        twin = copy.copy(self)
        twin.clients = {i: fork_client(c) for i, c in self.clients.items()}
        for name in ("seen_adverts", "sealed", "inputs", "lists", "approvals", "revealed"):
            setattr(twin, name, dict(getattr(self, name)))
        twin.refused = dict(self.refused)
        return twin

    @property
    def honest(self) -> frozenset[int]:
        return frozenset(self.params.roster) - self.colluders

    def active(self) -> list[int]:
        return [i for i in sorted(self.clients) if i not in self.refused]

    def _call(self, stage: str, i: int, message: object) -> object | None:
        try:
            return self.clients[i].handle(message)  # type: ignore[arg-type]
        except SecAggError as exc:
            self.refused[i] = (stage, exc)
            return None

    # -- stage 1: whose adverts each client gets ----------------------------------------------

    def share(self, adverts: Mapping[int, Iterable[int]] | None = None) -> None:
        """Deliver to each client the adverts of the senders ``adverts`` names for it (every
        neighbour by default; a client left out of the mapping gets nothing: it is dropped)."""
        p = self.params
        for i in self.active():
            chosen = sorted(p.neighbours[i]) if adverts is None else adverts.get(i)
            if chosen is None:
                self.refused[i] = ("shares", SecAggError("dropped by the adversary"))
                continue
            given = {j: self.adverts[j].for_recipient(i) for j in sorted(chosen)}
            self.seen_adverts[i] = given
            out = self._call("shares", i, NeighbourKeys(i, tuple(given.values())))
            if isinstance(out, SealedShares):
                self.sealed[i] = out

    # -- stage 2: whose share ciphertexts each client gets ------------------------------------

    def mask(self, ciphertexts: Mapping[int, Iterable[int]] | None = None) -> None:
        """Deliver to each client the ciphertexts addressed to it from the senders named
        (every one it was sent by default) whose adverts it took (it would refuse others
        outright, which only takes it out of the round)."""
        for i in self.active():
            if ciphertexts is not None and i not in ciphertexts:
                self.refused[i] = ("masked", SecAggError("dropped by the adversary"))
                continue
            wanted = set(self.seen_adverts.get(i, ()))  # others it would refuse outright
            if ciphertexts is not None:
                wanted &= set(ciphertexts[i])
            batch = {
                j: s.ciphertexts[i]
                for j, s in sorted(self.sealed.items())
                if i in s.ciphertexts and j in wanted
            }
            out = self._call("masked", i, ShareBatch(i, batch))
            if isinstance(out, MaskedInput):
                self.inputs[i] = out

    # -- stage 3: which survivor list each client sees ----------------------------------------

    def sign(self, lists: Mapping[int, Iterable[int]]) -> None:
        """Send each honest client the list named for it (none if it is not named)."""
        for i in self.active():
            if i in self.colluders:
                continue  # a colluder approves whatever the adversary wants: see ``_approval``
            if i not in lists:
                self.refused[i] = ("consistency", SecAggError("sent no list"))
                continue
            listed = tuple(lists[i])
            out = self._call("consistency", i, SurvivorList(i, listed))
            if isinstance(out, SurvivorSignature):
                self.lists[i], self.approvals[i] = listed, out

    def _approval(self, c: int, listed: tuple[int, ...], recipient: int) -> bytes | None:
        """Approver ``c``'s signature on ``listed`` (the same for every ``recipient``): an
        honest client's only for the list it approved, a colluder's for any list (it holds
        its account key)."""
        if c in self.colluders:
            digest = self.params.survivors_digest(listed)
            return self.clients[c].account.sign_digest(digest)
        if self.lists.get(c) == listed:
            return self.approvals[c].signature
        return None

    # -- stage 4: the unmask request ----------------------------------------------------------

    def unmask(
        self,
        entries: Mapping[int, Iterable[int]] | None = None,
        approvers: Mapping[int, Iterable[int]] | None = None,
    ) -> None:
        """Ask each honest client that approved a list to unmask it, with the approvals of
        that list from the clients ``approvers`` names for it and the partner entries of
        the survivors ``entries`` names for it (by default every approval the adversary
        holds or its colluders can make, and every entry it holds)."""
        for i in sorted(self.lists):
            if i in self.refused:
                continue
            listed = self.lists[i]
            approvals = {}
            chosen = (
                listed if approvers is None else [c for c in approvers.get(i, ()) if c in listed]
            )
            for c in chosen:
                tag = self._approval(c, listed, i) if c != i else None
                if tag is not None:
                    approvals[c] = tag
            wanted = None if entries is None else set(entries.get(i, ()))
            partners = {
                j: (self.inputs[j].partners, self.inputs[j].partner_tags[i])
                for j in listed
                if j in self.inputs
                and i in self.inputs[j].partner_tags
                and (wanted is None or j in wanted)
            }
            out = self._call("unmask", i, UnmaskRequest(i, listed, approvals, partners))
            if isinstance(out, UnmaskShares):
                self.revealed[i] = out

    def run(
        self,
        lists: Mapping[int, Iterable[int]],
        *,
        adverts: Mapping[int, Iterable[int]] | None = None,
        ciphertexts: Mapping[int, Iterable[int]] | None = None,
        entries: Mapping[int, Iterable[int]] | None = None,
    ) -> Adversary:
        self.share(adverts)
        self.mask(ciphertexts)
        self.sign(lists)
        self.unmask(entries)
        return self

    # -- the referee (not the adversary) ------------------------------------------------------

    def encoded(self, i: int) -> NDArray[np.uint32]:
        """Client ``i``'s encoded input, from its own secrets (the referee's knowledge),
        checked against its update: within one quantisation step per value."""
        p, c, sent = self.params, self.clients[i], self.inputs[i]
        if sent.signature in _TRUTH:
            return _TRUTH[sent.signature]
        x = sent.vector - self_mask(p, c._seed, i)
        for j in sent.partners:
            x = x - signed_pair_mask(p, c._secrets[j], i, j)
        expected = clip_l2(self.updates[i], p.clip)
        assert (
            np.abs(fixedpoint.decode(x.copy(), p.frac_bits) - expected).max() <= 2.0**-p.frac_bits
        )
        return x


@dataclass
class Findings:
    """What the adversary got out of a round."""

    keys: dict[int, X25519KeyPair]  # mask keys it knows (colluders' and rebuilt)
    seeds: dict[int, bytes]  # self-mask seeds it knows
    shares: dict[tuple[str, int], dict[int, Share]]  # (kind, dealer) -> holder -> share
    sums: list[frozenset[int]]  # minimal sets of honest inputs whose sum it learnt
    learnt: dict[frozenset[int], NDArray[np.uint32]]  # each such set -> the sum it computed
    subsets_tried: int = 0

    @property
    def singles(self) -> set[int]:
        """Honest clients whose input it recovered on its own."""
        return {next(iter(s)) for s in self.sums if len(s) == 1}


def _decrypted_shares(adv: Adversary) -> dict[tuple[str, int], dict[int, Share]]:
    """Every share a colluder can open (delivered or not) and every share an honest client
    revealed, by (kind, dealer) and holder."""
    p, shares = adv.params, defaultdict(dict)
    for dealer, sealed in adv.sealed.items():
        for holder, ciphertext in sealed.ciphertexts.items():
            if holder not in adv.colluders:
                continue
            if ciphertext not in _OPENED:
                box = adv.clients[holder]._pairs.box(p, holder, dealer, holder)
                _OPENED[ciphertext] = box.decrypt(ciphertext, p.label("share", dealer, holder))
            plain = _OPENED[ciphertext]
            shares["key", dealer][holder] = _share(p, plain[:SHARE_BYTES], dealer, holder)
            shares["seed", dealer][holder] = _share(p, plain[SHARE_BYTES:], dealer, holder)
    for holder, revealed in adv.revealed.items():
        for dealer, raw in revealed.self_mask.items():
            shares["seed", dealer][holder] = _share(p, raw, dealer, holder)
        for dealer, raw in revealed.mask_key.items():
            shares["key", dealer][holder] = _share(p, raw, dealer, holder)
    return shares


def _rebuild(
    adv: Adversary, kind: str, dealer: int, held: Mapping[int, Share]
) -> tuple[bytes | None, int]:
    """The dealer's secret from ``threshold`` of ``held``, checked against what it signed;
    (None, tried) if no subset opens it."""
    p, advert, tried = adv.params, adv.adverts[dealer], 0
    for subset in itertools.combinations(sorted(held), p.threshold):
        if tried == MAX_SUBSETS:
            break
        tried += 1
        try:
            secret = combine([held[h] for h in subset], prime=P256)
        except ShareError:
            continue
        if kind == "seed" and p.seed_commitment(dealer, secret) == advert.seed_commitment:
            return secret, tried
        if kind == "key" and _key(secret).public_bytes == advert.pk_s:
            return secret, tried
    return None, tried


def attempt_reconstruction(
    adv: Adversary,
    *,
    known_keys: Mapping[int, bytes] | None = None,
    known_seeds: Mapping[int, bytes] | None = None,
) -> Findings:
    """Everything the adversary can get from the round (``known_keys``/``known_seeds``: mask
    keys and seeds handed to it besides, for controls).  Raises ``AssertionError`` if a sum
    it claims is not the true sum of those inputs."""
    p = adv.params
    keys = {c: adv.clients[c]._s for c in adv.colluders}
    seeds = {c: adv.clients[c]._seed for c in adv.colluders}
    keys.update({i: X25519KeyPair.from_private_bytes(k) for i, k in (known_keys or {}).items()})
    seeds.update(known_seeds or {})
    shares = _decrypted_shares(adv)
    tried = 0
    for (kind, dealer), held in sorted(shares.items()):
        known = seeds if kind == "seed" else keys
        if dealer in known or len(held) < p.threshold:
            continue
        secret, count = _rebuild(adv, kind, dealer, held)
        tried += count
        if secret is not None:
            known[dealer] = _key(secret) if kind == "key" else secret  # type: ignore[assignment]

    def pair_secret(i: int, j: int) -> bytes | None:
        if i not in keys and j not in keys:
            return None
        a, b = (i, j) if i in keys else (j, i)
        slot = (adv.adverts[a].pk_s, adv.adverts[b].pk_s)  # fixes the agreed secret
        if slot not in _AGREED:
            _AGREED[slot] = keys[a].exchange(adv.adverts[b].pk_s)
        return _AGREED[slot]

    # strip what it can off each honest input it holds; note what stays on it
    residual: dict[int, NDArray[np.uint32]] = {}
    blocked: dict[int, set[int]] = {}  # i -> partners whose pair mask it cannot remove
    for i, sent in adv.inputs.items():
        if i in adv.colluders or i not in seeds:
            continue
        y = sent.vector - self_mask(p, seeds[i], i)
        blocked[i] = set()
        for j in sent.partners:
            secret = pair_secret(i, j)
            if secret is None:
                blocked[i].add(j)
            else:
                y = y - signed_pair_mask(p, secret, i, j)
        residual[i] = y
    # an unknown pair mask cancels only inside a sum that holds both ends, each having
    # masked with the other; a client with any other unknown mask is out of every sum
    closed = set(residual)
    while True:
        out = {
            i
            for i in closed
            if any(j not in closed or i not in adv.inputs[j].partners for j in blocked[i])
        }
        if not out:
            break
        closed -= out
    sums, learnt = [], {}
    todo = set(closed)
    while todo:
        component, frontier = set(), [todo.pop()]
        while frontier:
            i = frontier.pop()
            component.add(i)
            for j in blocked[i]:
                if j in todo:
                    todo.discard(j)
                    frontier.append(j)
        members = frozenset(component)
        total = np.sum([residual[i] for i in sorted(members)], axis=0, dtype=np.uint32)
        truth = np.sum([adv.encoded(i) for i in sorted(members)], axis=0, dtype=np.uint32)
        assert np.array_equal(total, truth), f"claimed sum over {sorted(members)} is wrong"
        sums.append(members)
        learnt[members] = total
    return Findings(keys, seeds, dict(shares), sorted(sums, key=sorted), learnt, tried)


def pre_fix_client(params: RoundParams) -> type[SecAggClient]:
    """A client with the rules before the fix: it masks with whoever's shares arrived as
    long as there are ``threshold - 1`` of them, and reveals every survivor's seed share
    whatever its partner list says (a test-only subclass: the regression's baseline)."""
    _ = params.context  # computed now: the copy below keeps it, so MACs and labels agree
    lax = copy.copy(params)
    object.__setattr__(lax, "min_partners", params.threshold - 1)

    class PreFixClient(SecAggClient):
        def _mask(self, message: ShareBatch) -> MaskedInput:
            strict, self.params = self.params, lax
            try:
                return super()._mask(message)
            finally:
                self.params = strict

        def _reveals_seed(
            self, j: int, survived: set[int], entry: tuple[tuple[int, ...], bytes] | None
        ) -> bool:
            return True

    return PreFixClient
