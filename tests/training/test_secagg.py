"""SecAgg+: the sum is right through dropouts at every stage, a round below threshold
aborts, and a deviating server learns nothing more than the sum."""

from __future__ import annotations

import dataclasses
import itertools
import math
import os

import numpy as np
import pytest
from scipy import stats

from chainml.crypto import Identity
from chainml.crypto.hazmat.shamir import P256
from chainml.crypto.signing import verify_round_commitment
from chainml.training.secagg import (
    AggregateMismatch,
    ForgedKeys,
    InconsistentView,
    MaskedInput,
    NeighbourKeys,
    ProtocolViolation,
    RoundParams,
    RoundTranscript,
    SecAggClient,
    SecAggServer,
    ShareBatch,
    SurvivorList,
    TooFewSurvivors,
    UnmaskRequest,
    UnmaskShares,
    input_commitment,
    input_hash,
    run_in_memory,
    verify_round,
    verify_sum,
)

N, M = 10, 2000
IDENTITIES = {i: Identity.generate() for i in range(1, 41)}


def _params(n: int = N, m: int = M, **kw) -> RoundParams:
    roster = {i: IDENTITIES[i].address for i in range(1, n + 1)}
    args = dict(
        chain_id=31337,
        jobs="0x" + "ab" * 20,
        job_id=7,
        round=3,
        clip=5.0,
        graph_seed=bytes(32),
        threshold=4,
    )
    args.update(kw)
    keys = {i: IDENTITIES[i].x25519.public_bytes for i in roster}
    return RoundParams.create(roster, keys, m, **args)


def _clients(
    p: RoundParams, seed: int = 0
) -> tuple[dict[int, SecAggClient], dict[int, np.ndarray]]:
    rng = np.random.default_rng(seed)
    updates = {i: rng.normal(scale=0.05, size=p.vector_len) for i in p.roster}
    return {i: SecAggClient(p, i, IDENTITIES[i], updates[i]) for i in p.roster}, updates


def _bound(p: RoundParams, k: int) -> float:
    """Stochastic rounding: each input is off by less than one unit of 2^-f per coordinate."""
    return k / 2**p.frac_bits


def test_the_sum_equals_the_plaintext_sum_within_the_quantisation_bound():
    p = _params()
    clients, updates = _clients(p)
    result = run_in_memory(p, clients)
    assert result.survivors == tuple(range(1, N + 1))
    assert np.abs(result.total - sum(updates.values())).max() < _bound(p, N)


def test_clipping_to_the_job_bound():
    p = _params(clip=1.0)
    clients, updates = _clients(p)
    big = {i: u * 1000 for i, u in updates.items()}
    clients = {i: SecAggClient(p, i, IDENTITIES[i], big[i]) for i in p.roster}
    total = run_in_memory(p, clients).total
    clipped = sum(u / np.linalg.norm(u) for u in big.values())
    assert np.abs(total - clipped).max() < _bound(p, N)


@pytest.mark.parametrize("stage", ["keys", "shares", "masked", "consistency", "unmask"])
def test_thirty_percent_drop_at_each_stage(stage: str):
    p = _params()
    clients, updates = _clients(p, seed=1)
    dropped = [2, 5, 9]
    result = run_in_memory(p, clients, drop={stage: dropped})
    expected = sum(updates[i] for i in result.survivors)
    assert np.abs(result.total - expected).max() < _bound(p, N)
    counted = set(result.survivors)
    # inputs that reached the server count even if their senders vanish afterwards
    assert counted.isdisjoint(dropped) == (stage in {"keys", "shares", "masked"})


def test_a_larger_sparse_round_with_dropouts():
    p = _params(n=40, m=500, threshold=None)
    assert p.degree < 39  # a real k-regular graph, not the complete one
    assert all(len(v) == p.degree for v in p.neighbours.values())
    clients, updates = _clients(p, seed=2)
    result = run_in_memory(p, clients, drop={"masked": [3, 11, 17, 25, 33]})
    expected = sum(updates[i] for i in result.survivors)
    assert len(result.dropped) == 5
    assert np.abs(result.total - expected).max() < _bound(p, 40)


@pytest.mark.parametrize("stage", ["keys", "shares", "masked", "consistency"])
def test_below_threshold_the_round_aborts_cleanly(stage: str):
    p = _params()
    clients, _ = _clients(p)
    with pytest.raises(TooFewSurvivors):
        run_in_memory(p, clients, drop={stage: [1, 2, 3, 4]})


def _through_keys(p: RoundParams, clients):
    server = SecAggServer(p)
    adverts = {i: c.advertise() for i, c in clients.items()}
    for advert in adverts.values():
        server.receive(advert)
    server.adverts_sent = adverts  # for tests that replay them
    return server, server.advance()


def _to_masked(p, clients):
    server, out = _through_keys(p, clients)
    for m in out:
        server.receive(clients[m.recipient].handle(m))
    for m in server.advance():
        server.receive(clients[m.recipient].handle(m))
    return server


def _approvals_for(i: int, approved) -> dict[int, bytes]:
    """What the server forwards to client ``i``: every other approver's signature."""
    return {c: a.signature for c, a in approved.items() if c != i}


def test_a_server_listing_a_client_both_alive_and_dropped_learns_nothing():
    """Flower's SecAgg+ leaks client 5's update to this server; here no list reaches a
    quorum of signatures twice, and no client reveals both shares of client 5."""
    p = _params()
    clients, _ = _clients(p)
    _to_masked(p, clients)
    everyone = tuple(range(1, N + 1))
    without_5 = tuple(i for i in everyone if i != 5)
    group_a, group_b = [1, 2, 3, 4, 6], [7, 8, 9, 10]
    approved_a = {i: clients[i].handle(SurvivorList(i, everyone)) for i in group_a}
    approved_b = {i: clients[i].handle(SurvivorList(i, without_5)) for i in group_b}
    revealed = {"self_mask": 0, "mask_key": 0}
    for group, listed, approved in (
        (group_a, everyone, approved_a),
        (group_b, without_5, approved_b),
    ):
        for i in group:
            with pytest.raises(InconsistentView):  # 5 or 4 approvals: below the quorum of 7
                clients[i].handle(UnmaskRequest(i, listed, _approvals_for(i, approved)))
    # mixing both groups' approvals does not help: they approve different lists
    for i in group_b:
        mixed = _approvals_for(i, {**approved_a, **approved_b})
        with pytest.raises(InconsistentView):
            clients[i].handle(UnmaskRequest(i, without_5, mixed))
    for c in clients.values():
        for kind in c.revealed.values():
            revealed[kind] += 1
    assert revealed == {"self_mask": 0, "mask_key": 0}
    # a client asked for a second list refuses to sign it
    with pytest.raises(ProtocolViolation):
        clients[1].handle(SurvivorList(1, without_5))


def test_an_altered_list_or_forged_quorum_is_refused():
    p = _params()
    clients, _ = _clients(p)
    server = _to_masked(p, clients)
    listed = tuple(range(1, N + 1))
    approved = {i: clients[i].handle(SurvivorList(i, listed)) for i in listed}
    shorter = listed[:-1]
    with pytest.raises(InconsistentView):
        clients[1].handle(UnmaskRequest(1, shorter, _approvals_for(1, approved)))
    # client 1's one genuine signature, claimed for everyone; the approvers' own accounts
    # signing another list (what a server holding their keys could make)
    forged = {c: approved[1].signature for c in listed}
    with pytest.raises(InconsistentView):
        clients[2].handle(UnmaskRequest(2, listed, forged))
    other = {c: IDENTITIES[c].account.sign_digest(p.survivors_digest(shorter)) for c in listed}
    with pytest.raises(InconsistentView):
        clients[2].handle(UnmaskRequest(2, listed, other))
    reply = clients[3].handle(UnmaskRequest(3, listed, _approvals_for(3, approved)))
    assert isinstance(reply, UnmaskShares) and not reply.mask_key
    with pytest.raises(ProtocolViolation):  # a replayed request
        clients[3].handle(UnmaskRequest(3, listed, _approvals_for(3, approved)))
    assert server.stage == "masked"  # the server never got past the inputs


def test_replays_wrong_stages_and_strangers_are_refused():
    p = _params()
    clients, _ = _clients(p)
    server, out = _through_keys(p, clients)
    first = out[0]
    reply = clients[first.recipient].handle(first)
    with pytest.raises(ProtocolViolation):
        clients[first.recipient].handle(first)  # the same stage message again
    with pytest.raises(ProtocolViolation):
        clients[2].handle(dataclasses.replace(out[1], recipient=1))  # someone else's message
    server.receive(reply)
    with pytest.raises(ProtocolViolation):
        server.receive(reply)  # a duplicate to the server
    with pytest.raises(ProtocolViolation):
        server.receive(server.adverts_sent[5])  # a keys message in the shares stage
    with pytest.raises(ProtocolViolation):
        SecAggClient(p, 11, Identity.generate(), np.zeros(M))
    assert len(server.refused) == 2


def test_keys_not_signed_by_the_registered_account():
    p = _params()
    clients, _ = _clients(p)
    server = SecAggServer(p)
    advert = clients[1].advertise()
    forged = dataclasses.replace(advert, pk_s=os.urandom(32))
    with pytest.raises(ProtocolViolation):
        server.receive(forged)
    others = [clients[i].advertise().for_recipient(6) for i in (2, 3, 4, 5)]
    clients[6].advertise()
    with pytest.raises(ForgedKeys):  # and a client refuses it if a server forwards it
        clients[6].handle(NeighbourKeys(6, (forged.for_recipient(6), *others)))


@pytest.mark.parametrize("how", ["swapped key", "another's MAC", "no MAC", "re-signed"])
def test_a_server_cannot_stand_between_two_clients(how: str):
    """The server forwards client 1's advert to client 6 with a key of its own: whatever it
    does with the MAC, or with a signature by 1's account over the new key (a server that
    holds a trainer's account key), client 6 refuses it: the MAC is under their pair key."""
    p = _params()
    clients, _ = _clients(p)
    adverts = {i: clients[i].advertise() for i in (1, 2, 3, 4, 5, 6)}
    mine = adverts[1]
    if how == "swapped key":
        bad = dataclasses.replace(mine, pk_s=os.urandom(32)).for_recipient(6)
    elif how == "another's MAC":
        bad = dataclasses.replace(mine, tags={6: mine.tags[7]})
    elif how == "no MAC":
        bad = dataclasses.replace(mine, tags={})
    else:
        pk = os.urandom(32)
        signature = IDENTITIES[1].account.sign_digest(
            p.keys_digest(1, pk, mine.seed_commitment, mine.shares_root)
        )
        bad = dataclasses.replace(mine, pk_s=pk, signature=signature).for_recipient(6)
    others = tuple(adverts[i].for_recipient(6) for i in (2, 3, 4, 5))
    with pytest.raises(ForgedKeys, match="client 1"):
        clients[6].handle(NeighbourKeys(6, (bad, *others)))


def test_tampered_replayed_or_misdirected_shares_are_refused():
    """Shares travel through the server: a flipped bit, a truncated ciphertext, a share
    from an earlier round, or the shares meant for another client do not open."""
    p = _params()
    clients, _ = _clients(p)
    server, out = _through_keys(p, clients)
    sealed = {m.recipient: clients[m.recipient].handle(m) for m in out}
    meant_for_1 = {i: s.ciphertexts[1] for i, s in sealed.items() if 1 in s.ciphertexts}
    earlier = _params(round=2)
    old_clients, _ = _clients(earlier)
    _, old_out = _through_keys(earlier, old_clients)
    old = {m.recipient: old_clients[m.recipient].handle(m) for m in old_out}
    flipped = bytearray(meant_for_1[2])
    flipped[20] ^= 1
    cases = {
        "flipped": {**meant_for_1, 2: bytes(flipped)},
        "truncated": {**meant_for_1, 2: meant_for_1[2][:20]},
        "earlier round": {**meant_for_1, 2: old[2].ciphertexts[1]},
        "another's": {**meant_for_1, 2: sealed[2].ciphertexts[3]},
    }
    for name, ciphertexts in cases.items():
        fresh, _ = _clients(p)
        fresh_server, fresh_out = _through_keys(p, fresh)
        for m in fresh_out:
            fresh[m.recipient].handle(m)
        with pytest.raises(ProtocolViolation, match="client 2 do not authenticate"):
            fresh[1].handle(ShareBatch(1, ciphertexts))
            pytest.fail(name)


def test_a_client_needs_its_registered_key():
    p = _params()
    stranger = dataclasses.replace(IDENTITIES[1], x25519=Identity.generate().x25519)
    with pytest.raises(ProtocolViolation, match="X25519"):
        SecAggClient(p, 1, stranger, np.zeros(M))
    with pytest.raises(ValueError, match="registered X25519 key"):
        dataclasses.replace(p, keys={i: k for i, k in p.keys.items() if i != 3})


def test_masked_inputs_look_uniform():
    """What the server sees of one client: an all-zero update after masking is
    indistinguishable from uniform over Z_2^32 (chi-square on bytes and on the top byte)."""
    p = _params(m=40_000)
    rng = np.random.default_rng(5)
    clients = {
        i: SecAggClient(p, i, IDENTITIES[i], np.zeros(p.vector_len), rng=rng) for i in p.roster
    }
    server = SecAggServer(p)
    for c in clients.values():
        server.receive(c.advertise())
    for m in server.advance():
        server.receive(clients[m.recipient].handle(m))
    masked = [clients[m.recipient].handle(m) for m in server.advance()]
    y = masked[0].vector
    counts = np.bincount(y.view(np.uint8), minlength=256)
    assert stats.chisquare(counts).pvalue > 1e-4
    top = np.bincount((y >> 24).astype(np.int64), minlength=256)
    assert stats.chisquare(top).pvalue > 1e-4
    # while an unmasked encoding of the same zeros is anything but uniform
    assert (
        stats.chisquare(np.bincount(np.zeros(40_000, np.uint8), minlength=256) + 1).pvalue < 1e-10
    )
    assert len({bytes(m.vector[:8]) for m in masked}) == len(masked)


def test_parameters_are_checked():
    with pytest.raises(ValueError):
        _params(threshold=1)
    with pytest.raises(ValueError):
        _params(graph_seed=b"short")
    p = _params()
    with pytest.raises(ProtocolViolation):
        SecAggClient(p, 1, IDENTITIES[2], np.zeros(M))


def _verified_round(drop=None):
    p = _params()
    clients, updates = _clients(p, seed=3)
    captured: dict[int, np.ndarray] = {}
    originals = {i: c.handle for i, c in clients.items()}

    def capture(i):
        def handle(message):
            out = originals[i](message)
            if isinstance(out, MaskedInput):
                captured[i] = out.vector
            return out

        return handle

    for i, c in clients.items():
        c.handle = capture(i)
    result = run_in_memory(p, clients, drop=drop)
    return p, result, captured, updates


@pytest.mark.parametrize("drop", [None, {"masked": [2, 5, 9]}])
def test_anyone_can_check_the_published_sum(drop):
    p, result, inputs, updates = _verified_round(drop)
    checked = verify_round(p, result.transcript, inputs.__getitem__)
    assert np.array_equal(checked, result.total)
    assert set(result.transcript.mask_keys) == set(result.dropped)
    for address, commitment in result.transcript.leaves(p):  # slashable if signed twice
        i = next(k for k, a in p.roster.items() if a == address)
        verify_round_commitment(
            address,
            result.transcript.inputs[i].signature,
            p.chain_id,
            p.jobs,
            p.job_id,
            p.round,
            commitment,
        )


def test_a_sum_off_by_one_unit_in_one_coordinate_is_caught():
    p, result, inputs, _ = _verified_round()
    t = result.transcript
    total = np.frombuffer(t.total, dtype="<u4").copy()
    total[1234] += 1
    with pytest.raises(AggregateMismatch, match="published sum"):
        verify_round(p, dataclasses.replace(t, total=total.tobytes()), inputs.__getitem__)


def test_every_forgery_in_a_transcript_is_caught():
    p, result, inputs, _ = _verified_round({"masked": [2, 5, 9]})
    t = result.transcript
    tampered = dict(inputs)
    tampered[1] = inputs[1].copy()
    tampered[1][0] ^= 1
    cases = {
        "input": (t, tampered),
        "seed": (dataclasses.replace(t, seeds={**t.seeds, 3: bytes(32)}), inputs),
        "mask key": (dataclasses.replace(t, mask_keys={**t.mask_keys, 5: bytes(32)}), inputs),
        "no mask key": (dataclasses.replace(t, mask_keys={}), inputs),
        "partners": (
            dataclasses.replace(
                t, inputs={**t.inputs, 1: dataclasses.replace(t.inputs[1], partners=(3, 4))}
            ),
            inputs,
        ),
        "quorum": (
            dataclasses.replace(
                t, survivor_signatures=dict(list(t.survivor_signatures.items())[:3])
            ),
            inputs,
        ),
        "survivors": (dataclasses.replace(t, survivors=t.survivors[1:]), inputs),
    }
    for name, (transcript, given) in cases.items():
        with pytest.raises(AggregateMismatch):
            verify_round(p, transcript, given.__getitem__)
            pytest.fail(name)


def test_the_transcript_survives_its_wire_format():
    p, result, inputs, _ = _verified_round({"masked": [2, 5, 9]})
    decoded = RoundTranscript.decode(result.transcript.encode())
    assert decoded == result.transcript
    assert np.array_equal(verify_round(p, decoded, inputs.__getitem__), result.total)
    for bad in (b"{}", b"not json", b'{"format": "chainml-secagg-transcript/1"}'):
        with pytest.raises(AggregateMismatch):
            RoundTranscript.decode(bad)


@pytest.mark.parametrize("drop", [None, {"masked": [2, 5, 9]}, {"shares": [4]}])
def test_a_verifiable_round_is_checked_from_the_commitments_alone(drop):
    p = _params(verifiable=True)
    clients, updates = _clients(p, seed=5)
    result = run_in_memory(p, clients, drop=drop)
    checked = verify_sum(p, result.transcript)  # no masked input needed
    assert np.array_equal(checked, result.total)
    survivors = sum(updates[i] for i in result.survivors)
    assert np.abs(result.total - survivors).max() < _bound(p, len(result.survivors))
    decoded = RoundTranscript.decode(result.transcript.encode())
    assert np.array_equal(verify_sum(p, decoded), result.total)


def test_a_verifiable_sum_off_by_one_unit_or_with_a_swapped_commitment_is_caught():
    p = _params(verifiable=True)
    clients, _ = _clients(p, seed=6)
    t = run_in_memory(p, clients).transcript
    total = np.frombuffer(t.total, dtype="<u4").copy()
    total[777:778] += 1  # array arithmetic: wraps at 2^32 like the sum itself
    with pytest.raises(AggregateMismatch, match="combined commitments"):
        verify_sum(p, dataclasses.replace(t, total=total.tobytes()))
    opening = np.frombuffer(t.total, dtype="<u4").copy()
    opening[p.vector_len + 3 : p.vector_len + 4] += 1  # the aggregate opening, not the sum
    with pytest.raises(AggregateMismatch, match="combined commitments"):
        verify_sum(p, dataclasses.replace(t, total=opening.tobytes()))
    other = t.inputs[2].value_commitment  # 1 claims 2's commitment: its signature breaks
    swapped = {**t.inputs, 1: dataclasses.replace(t.inputs[1], value_commitment=other)}
    with pytest.raises(AggregateMismatch, match="not signed"):
        verify_sum(p, dataclasses.replace(t, inputs=swapped))
    with pytest.raises(AggregateMismatch, match="no value commitments"):
        verify_sum(_params(), t)


def test_an_input_without_its_value_commitment_is_refused_and_the_round_goes_on():
    """In a verifiable round, client 3 sends a masked input with no value commitment, signed
    as such: the server refuses it, counts 3 as dropped, and the sum still checks."""
    p = _params(verifiable=True)
    clients, updates = _clients(p, seed=8)
    honest = clients[3].handle

    def strip(message):
        out = honest(message)
        if isinstance(out, MaskedInput):
            bare = input_commitment(input_hash(out.vector), out.partners, b"")
            signature = IDENTITIES[3].account.sign_digest(p.input_digest(bare))
            out = dataclasses.replace(out, value_commitment=b"", signature=signature)
        return out

    clients[3].handle = strip  # type: ignore[method-assign]

    class Tolerant(SecAggServer):  # refuses, logs and goes on, as the node's aggregator does
        def receive(self, message):
            try:
                super().receive(message)
            except ProtocolViolation:
                pass

    server = Tolerant(p)
    result = run_in_memory(p, clients, server=server)
    assert 3 not in result.survivors and any("value commitment" in r for r in server.refused)
    assert np.array_equal(verify_sum(p, result.transcript), result.total)
    survivors = sum(updates[i] for i in result.survivors)
    assert np.abs(result.total - survivors).max() < _bound(p, len(result.survivors))


# -- issue 13: the dropouts the rule tolerates, and what lies beyond them ---------------------

STAGES = ("keys", "shares", "masked", "consistency", "unmask")


def _derived(n: int) -> RoundParams:
    roster = {i: IDENTITIES[i].address for i in range(1, n + 1)}
    keys = {i: IDENTITIES[i].x25519.public_bytes for i in roster}
    return RoundParams.derive(
        roster, keys, 16, chain_id=31337, jobs="0x" + "ab" * 20, job_id=7, round=3,
        attempt=0, clip=5.0,
    )  # fmt: skip


def _schedules(d: int) -> list[tuple[int, ...]]:
    """Every way of spreading ``d`` dropouts over the five stages (how many at each)."""
    return [c for c in itertools.product(range(d + 1), repeat=len(STAGES)) if sum(c) == d]


@pytest.mark.parametrize(
    ("n", "every", "alone"),
    [(5, 1, STAGES), (10, 1, STAGES), (20, 60, STAGES), (30, 10**4, ("masked", "unmask"))],
    ids=["n5", "n10", "n20", "n30"],
)
def test_exact_sums_through_every_tolerated_dropout_schedule(
    n: int, every: int, alone: tuple[str, ...]
) -> None:
    """floor(0.3 n) clients drop, in any combination of stages (every schedule for n = 5
    and 10; for 20 and 30 every ``every``-th, all at one of the stages ``alone`` and spread
    evenly over the five): the round completes
    with the exact sum of the inputs counted.  Who drops is drawn afresh each time."""
    p = _derived(n)
    d = math.floor(0.3 * n)
    assert len(p.roster) - p.quorum >= d  # the rule's promise
    rng = np.random.default_rng(n)
    at_one = {tuple(d if s == stage else 0 for s in STAGES) for stage in alone}
    spread = tuple(d // len(STAGES) + (k < d % len(STAGES)) for k in range(len(STAGES)))
    schedules = sorted(set(_schedules(d)[::every]) | at_one | {spread})
    for counts in schedules:
        clients, updates = _clients(p, seed=int(rng.integers(1 << 30)))
        order = [int(i) for i in rng.permutation(sorted(p.roster))]
        drop, at = {}, 0
        for stage, k in zip(STAGES, counts, strict=True):
            drop[stage], at = order[at : at + k], at + k
        result = run_in_memory(p, clients, drop=drop)
        counted = set(result.survivors)
        late = set(drop["consistency"]) | set(drop["unmask"])
        assert counted.isdisjoint(drop["keys"] + drop["shares"] + drop["masked"])
        assert late <= counted  # their inputs arrived: they count
        expected = sum(updates[i] for i in counted)
        assert np.abs(result.total - expected).max() < _bound(p, n)


@pytest.mark.parametrize("n", [5, 10, 20])
@pytest.mark.parametrize("stage", ["keys", "shares", "masked", "consistency"])
def test_one_dropout_past_the_quorum_aborts_cleanly(n: int, stage: str) -> None:
    """n - quorum + 1 clients drop at one stage: a typed TooFewSurvivors, no sum."""
    p = _derived(n)
    clients, _ = _clients(p)
    with pytest.raises(TooFewSurvivors):
        run_in_memory(p, clients, drop={stage: range(1, len(p.roster) - p.quorum + 2)})


def test_too_few_holders_left_to_unmask_aborts_cleanly() -> None:
    """All sign, then all but t - 1 vanish before unmasking: no secret has t shares."""
    p = _derived(10)
    clients, _ = _clients(p)
    server = SecAggServer(p)
    with pytest.raises(TooFewSurvivors, match="needed"):
        run_in_memory(p, clients, drop={"unmask": range(p.threshold, 11)}, server=server)
    assert server.stage == "aborted"


def _unmasked_with(p: RoundParams, clients, lie) -> SecAggServer:
    """A round up to the unmask stage, each holder's reveal passed through ``lie``."""
    server = _to_masked(p, clients)
    for m in server.advance():
        server.receive(clients[m.recipient].handle(m))
    for m in server.advance():
        server.receive(lie(clients[m.recipient].handle(m)))
    return server


def _shifted(raw: bytes) -> bytes:
    """The same share with y + 1: well formed, one unit off."""
    return ((int.from_bytes(raw, "big") + 1) % P256).to_bytes(len(raw), "big")


@pytest.mark.parametrize("kind", ["self_mask", "mask_key"])
def test_a_holder_revealing_a_false_share_is_named_and_the_sum_stays_right(kind: str) -> None:
    """Holders 2 and 3 shift every share they reveal (of seeds, or of a dropped client's
    key): both are named in ``server.faulty``, their shares set aside, and the sum comes
    out exact from the true shares that remain (at least t)."""
    p = _derived(10)
    clients, updates = _clients(p, seed=3)
    liars = {2, 3}

    def lie(out: UnmaskShares) -> UnmaskShares:
        if out.sender not in liars:
            return out
        bad = {j: _shifted(s) for j, s in getattr(out, kind).items()}
        return dataclasses.replace(out, **{kind: bad})

    if kind == "mask_key":  # client 10 drops after sharing, so its key is rebuilt
        server = SecAggServer(p)
        adverts = {i: c.advertise() for i, c in clients.items()}
        for a in adverts.values():
            server.receive(a)
        for m in server.advance():
            server.receive(clients[m.recipient].handle(m))
        for m in server.advance():
            if m.recipient != 10:
                server.receive(clients[m.recipient].handle(m))
        for m in server.advance():
            server.receive(clients[m.recipient].handle(m))
        for m in server.advance():
            server.receive(lie(clients[m.recipient].handle(m)))
    else:
        server = _unmasked_with(p, clients, lie)
    result = server.finish()
    assert server.faulty == liars
    assert any("is false" in r for r in server.refused)
    assert np.abs(result.total - sum(updates[i] for i in result.survivors)).max() < _bound(p, 10)
    assert (10 in result.dropped) == (kind == "mask_key")


def test_with_fewer_than_t_true_shares_the_round_aborts_and_names_the_liars() -> None:
    """Every holder but t - 1 shifts its seed shares: no seed rebuilds, a typed abort."""
    p = _derived(10)
    clients, _ = _clients(p, seed=4)
    honest = set(range(1, p.threshold))

    def lie(out: UnmaskShares) -> UnmaskShares:
        if out.sender in honest:
            return out
        return dataclasses.replace(
            out, self_mask={j: _shifted(s) for j, s in out.self_mask.items()}
        )

    server = _unmasked_with(p, clients, lie)
    with pytest.raises(TooFewSurvivors, match="true shares"):
        server.finish()
    assert server.faulty and server.faulty.isdisjoint(honest)
