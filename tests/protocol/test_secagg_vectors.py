"""The SecAgg+ test vectors of ``docs/protocol/vectors/secagg-v4.json``, checked twice:

(a) recomputed with chainml, which must give the committed bytes (so a change to any
    derivation, MAC, digest or encoding shows here and needs a new format version);
(b) recomputed with ``independent.py``, written from ``docs/protocol/secagg.md`` without
    chainml, which must give the same bytes (so the specification is enough to build a
    verifier), including the verification of a whole round and the refusal of tampered
    transcripts.
"""

from __future__ import annotations

import ast
import base64
import json
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from chainml.crypto.box import SecretBox
from chainml.crypto.errors import DecryptionFailed
from chainml.crypto.hashing import keccak256, tagged_hash
from chainml.crypto.hazmat import fixedpoint, lattice, prg, shamir
from chainml.crypto.keys import X25519KeyPair, recover_address
from chainml.crypto.merkle import MerkleTree, commitment_leaf
from chainml.crypto.signing import (
    DOMAIN_TYPEHASH,
    ROUND_COMMITMENT_TYPEHASH,
    domain_separator,
)
from chainml.training import secagg, wire
from chainml.training.secagg import (
    KEYS_TYPEHASH,
    SURVIVORS_TYPEHASH,
    AggregateMismatch,
    PairKeys,
    ProtocolViolation,
    RoundParams,
    RoundTranscript,
    input_commitment,
    input_hash,
    pairkeys,
    secure_parameters,
    shares_root,
    verify_round,
    verify_sum,
)
from tests.protocol import independent as ind
from tests.protocol.make_secagg_vectors import identity, params

VECTORS = Path(__file__).resolve().parents[2] / "docs" / "protocol" / "vectors" / "secagg-v4.json"
V: dict[str, Any] = json.loads(VECTORS.read_text())
B = bytes.fromhex


def _round(inputs: dict[str, Any]) -> ind.Round:
    """The independent round parameters from a vector's inputs and the fixed identities
    listed in the file (nothing from chainml)."""
    ids = range(1, inputs["clients"] + 1)
    who = V["identities"]
    return ind.Round(
        chain_id=inputs["chain_id"],
        jobs=inputs["jobs"],
        job_id=inputs["job_id"],
        round_no=inputs["round"],
        attempt=inputs["attempt"],
        roster={i: who[str(i)]["address"] for i in ids},
        keys={i: B(who[str(i)]["x25519_public"]) for i in ids},
        vector_len=inputs["vector_len"],
        clip=inputs["clip"],
        verifiable=inputs["verifiable"],
    )


def _params(inputs: dict[str, Any]) -> RoundParams:
    return params(inputs["clients"], verifiable=inputs["verifiable"])


def test_the_vectors_name_the_formats_chainml_speaks():
    assert V["wire_format"] == wire.FORMAT == "chainml-secagg/4"
    assert V["transcript_format"] == secagg.TRANSCRIPT_FORMAT == "chainml-secagg-transcript/3"


# -- (a) chainml gives the committed bytes ---------------------------------------------------


def test_identities_and_primitives_with_chainml():
    for i, who in V["identities"].items():
        x = identity(int(i))
        assert (x.address, x.x25519.public_bytes.hex()) == (who["address"], who["x25519_public"])
    for v in V["tagged_hash"]:
        assert tagged_hash(B(v["tag"]), B(v["data"])).hex() == v["hash"]
    for v in V["hkdf"]:
        assert prg.derive(B(v["seed"]), B(v["info"])).hex() == v["key"]
    for v in V["prg"]:
        assert prg.mask(B(v["seed"]), B(v["info"]), 8).tolist() == v["words"]
    for v in V["secure_parameters"]:
        degree, t, m = secure_parameters(v["n"])
        assert (degree, t, m, secagg.quorum_for(v["n"], t)) == (
            v["degree"],
            v["threshold"],
            v["min_partners"],
            v["quorum"],
        )


def test_round_parameters_and_graph_with_chainml():
    rp = V["round_params"]
    p = _params(rp["inputs"])
    assert p.graph_seed.hex() == rp["graph_seed"]
    assert p.job_domain.hex() == rp["job_domain"]
    assert p.context.hex() == rp["context"]
    assert (p.degree, p.threshold, p.min_partners, p.quorum) == (
        rp["degree"],
        rp["threshold"],
        rp["min_partners"],
        rp["quorum"],
    )
    assert (p.frac_bits, p.secure_len) == (rp["frac_bits"], rp["secure_len"])
    for name, label in rp["labels"].items():
        kind, *ids = name.split("|")
        assert p.label(kind, *map(int, ids)).hex() == label
    for pair, index in rp["share_index"].items():
        dealer, holder = map(int, pair.split("->"))
        assert p.share_index(dealer, holder) == index
    pv = _params(V["round_params_verifiable"]["inputs"])
    assert pv.context.hex() == V["round_params_verifiable"]["context"]
    assert pv.secure_len == V["round_params_verifiable"]["secure_len"]
    g = V["sparse_graph"]
    sparse = _params(g["inputs"])
    assert sparse.context.hex() == g["context"]
    assert (sparse.degree, sparse.threshold, sparse.min_partners, sparse.quorum) == (
        g["degree"],
        g["threshold"],
        g["min_partners"],
        g["quorum"],
    )
    assert {str(i): sorted(s) for i, s in sparse.neighbours.items()} == g["neighbours"]
    assert secagg.shuffle(B(g["ring_seed"]), 40) == g["permutation"]
    for v in V["shuffle"]:
        assert secagg.shuffle(B(v["seed"]), v["n"]) == v["permutation"]


def test_pair_keys_macs_and_share_box_with_chainml():
    p = _params(V["round_params"]["inputs"])
    pv = V["pair"]
    pairs1, pairs2 = PairKeys(identity(1).x25519), PairKeys(identity(2).x25519)
    assert pairs1._secret(p, 1, 2).hex() == pairs2._secret(p, 2, 1).hex() == pv["pair_key"]
    mk = pv["mac_keys"]
    assert pairs1.tag(p, 1, b"keys", 1, 2, B(mk["body"])).hex() == mk["tag"]
    assert pairs2.tag(p, 2, b"keys", 1, 2, B(mk["body"])).hex() == mk["tag"]
    advert = secagg.KeyAdvert(
        1,
        B(mk["advert"]["mask_key"]),
        B(mk["advert"]["seed_commitment"]),
        B(mk["advert"]["shares_root"]),
        b"",
        share_hashes={int(j): B(h) for j, h in mk["advert"]["share_hashes"].items()},
    )
    assert pairkeys._keys_body(p, advert, 2).hex() == mk["body"]
    mp = pv["mac_partners"]
    assert pairkeys._partners_body(p, tuple(mp["partners"])).hex() == mp["body"]
    assert pairs2.tag(p, 2, b"partners", 1, 2, B(mp["body"])).hex() == mp["tag"]
    assert len(B(mk["tag"])) == len(B(mp["tag"])) == 16
    assert "mac_survivors" not in pv  # approvals are signatures since secagg/4

    box = V["share_box"]
    opened = pairs2.box(p, 2, 1, 2).decrypt(B(box["sealed"]), B(box["associated_data"]))
    assert opened.hex() == box["plaintext"]
    assert B(box["associated_data"]) == p.label("share", 1, 2)
    # the other direction's key, or another round's associated data, opens nothing
    with pytest.raises(DecryptionFailed):
        pairs2.box(p, 2, 2, 1).decrypt(B(box["sealed"]), B(box["associated_data"]))
    with pytest.raises(DecryptionFailed):
        SecretBox(B(pv["box_key_1_to_2"])).decrypt(B(box["sealed"]), p.label("share", 2, 1))


def test_shares_hashes_masks_and_commitments_with_chainml():
    p = _params(V["round_params"]["inputs"])
    sh = V["shamir"]
    assert int(sh["prime"], 16) == shamir.P256 == 2**256 + 297
    shares = [secagg.decode_share(B(s), x, sh["threshold"]) for x, s in enumerate(sh["shares"], 1)]
    assert [secagg.encode_share(s).hex() for s in shares] == sh["shares"]
    picked = [shares[x - 1] for x in sh["combine_from"]]
    assert shamir.combine(picked, prime=shamir.P256).hex() == sh["secret"]
    for v in V["share_hash"]:
        assert p.share_hash(v["dealer"], v["holder"], v["kind"], B(v["share"])).hex() == v["hash"]
    sr = V["shares_root"]
    assert shares_root({int(j): B(h) for j, h in sr["share_hashes"].items()}).hex() == sr["root"]
    sc = V["seed_commitment"]
    assert p.seed_commitment(sc["client"], B(sc["seed"])).hex() == sc["commitment"]
    sm = V["self_mask"]
    assert pairkeys._self_mask(p, B(sm["seed"]), sm["client"]).tolist() == sm["words"]
    pm = V["pair_mask"]
    own = X25519KeyPair.from_private_bytes(B(pm["mask_private_1"]))
    assert own.exchange(B(pm["mask_public_2"])).hex() == pm["secret"]
    assert pairkeys._pair_mask(p, B(pm["secret"]), 2, 1).tolist() == pm["words"]
    assert (pairkeys._pair_sign(1, 2), pairkeys._pair_sign(2, 1)) == (
        pm["sign_of_1"],
        pm["sign_of_2"],
    )


def test_eip712_inputs_fixedpoint_lattice_and_merkle_with_chainml():
    p = _params(V["round_params"]["inputs"])
    e = V["eip712"]
    assert DOMAIN_TYPEHASH.hex() == e["domain_typehash"]
    assert KEYS_TYPEHASH.hex() == e["keys_typehash"]
    assert SURVIVORS_TYPEHASH.hex() == e["survivors_typehash"]
    assert ROUND_COMMITMENT_TYPEHASH.hex() == e["round_commitment_typehash"]
    assert domain_separator(p.chain_id, p.jobs).hex() == e["domain_separator"]
    adv = V["pair"]["mac_keys"]["advert"]
    digest = p.keys_digest(1, B(adv["mask_key"]), B(adv["seed_commitment"]), B(adv["shares_root"]))
    assert digest.hex() == e["keys"]["digest"]
    assert p.survivors_digest(tuple(e["survivors"]["survivors"])).hex() == e["survivors"]["digest"]
    assert (
        p.input_digest(B(e["round_commitment"]["commitment"])).hex()
        == (e["round_commitment"]["digest"])
    )
    for kind in ("keys", "survivors", "round_commitment"):
        assert identity(1).account.sign_digest(B(e[kind]["digest"])).hex() == e[kind]["signature"]
        assert recover_address(B(e[kind]["digest"]), B(e[kind]["signature"])) == e["signer"]

    iv = V["input"]
    vector = np.array(iv["vector"], dtype=np.uint32)
    assert input_hash(vector).hex() == iv["input_hash"]
    assert input_commitment(B(iv["input_hash"]), tuple(iv["partners"])).hex() == iv["commitment"]
    value_commitment = B(V["lattice"]["commitment"])
    assert keccak256(value_commitment).hex() == iv["value_commitment_keccak"]
    assert (
        input_commitment(B(iv["input_hash"]), tuple(iv["partners"]), value_commitment).hex()
        == iv["commitment_verifiable"]
    )

    fp = V["fixedpoint"]
    for v in fp["fraction_bits"]:
        assert fixedpoint.fraction_bits(v["n"], v["bound"]) == v["frac_bits"]

    class Fixed:
        def __init__(self, u: float) -> None:
            self.u = u

        def random(self, shape: tuple[int, ...]) -> np.ndarray:
            return np.full(shape, self.u)

    for v in fp["encode"]:
        word = fixedpoint.encode(np.array([v["x"]]), v["frac_bits"], Fixed(v["u"]))[0]  # type: ignore[arg-type]
        assert int(word) == v["word"]
    for v in fp["decode"]:
        value = fixedpoint.decode(np.array([v["word"]], dtype=np.uint32), v["frac_bits"])[0]
        assert float(value) == v["value"]

    lv = V["lattice"]
    for u in lv["uniform_mod"]:
        values = lattice.uniform_mod(B(u["key"]), u["name"].encode(), u["p"], u["count"])
        assert values.tolist() == u["values"]
    key = lattice.CommitmentKey(B(lv["seed"]), lv["length"])
    assert [keccak256(np.ascontiguousarray(m, dtype="<u4").tobytes()).hex() for m in key._a] == lv[
        "a_keccak"
    ]
    assert [keccak256(np.ascontiguousarray(m, dtype="<u4").tobytes()).hex() for m in key._b] == lv[
        "b_keccak"
    ]
    values = np.array(lv["values"], dtype=np.int64)
    r = np.array([(k * 7) % 5 - 2 for k in range(lattice.RANDOMNESS_LEN)], dtype=np.int64)
    assert key.commit(values, r).to_bytes().hex() == lv["commitment"]

    mv = V["merkle"]
    leaves = [
        commitment_leaf(x["account"], mv["job_id"], mv["round"], B(x["commitment"]))
        for x in mv["leaves"]
    ]
    assert leaves[0].hex() == mv["leaf_data_1"]
    for k, root in mv["roots"].items():
        assert MerkleTree(leaves[: int(k)]).root.hex() == root


def _masked_inputs() -> dict[int, bytes]:
    return {int(i): base64.b64decode(b) for i, b in V["round"]["masked_inputs"].items()}


def _fetch_np(i: int) -> np.ndarray:
    return np.frombuffer(_masked_inputs()[i], dtype="<u4").astype(np.uint32)


def test_the_round_verifies_with_chainml_and_its_sum_is_the_survivors():
    rv = V["round"]
    p = _params(rv["inputs"])
    raw = rv["transcript"].encode()
    assert keccak256(raw).hex() == rv["transcript_keccak"]
    transcript = RoundTranscript.decode(raw)
    assert transcript.encode() == raw  # the committed bytes are the canonical encoding
    total = verify_round(p, transcript, _fetch_np)
    assert total.tolist() == rv["decoded_sum"]
    assert list(transcript.survivors) == rv["survivors"]
    assert np.frombuffer(transcript.total, dtype="<u4").tolist() == rv["total_words"]
    # the updates are multiples of 1/16: the sum of the survivors' is exact
    expected = sum(np.array(rv["updates"][str(i)]) for i in rv["survivors"])
    assert total.tolist() == expected.tolist()
    tree = MerkleTree([commitment_leaf(a, p.job_id, p.round, c) for a, c in transcript.leaves(p)])
    assert tree.root.hex() == rv["commitment_root"]
    assert sum(1 << (i - 1) for i in transcript.survivors) == rv["bitmap"]


def test_wire_messages_decode_and_encode_to_the_same_bytes():
    messages = V["round"]["wire_messages"]
    assert set(messages) == {
        "KeyAdvert",
        "NeighbourKeys",
        "SealedShares",
        "ShareBatch",
        "MaskedInput",
        "SurvivorList",
        "SurvivorSignature",
        "UnmaskRequest",
        "UnmaskShares",
    }
    for name, raw in messages.items():
        decoded = wire.decode(raw.encode())
        assert type(decoded).__name__ == name
        assert wire.encode(decoded) == raw.encode()


@pytest.mark.parametrize("index", range(len(V["negative"])))
def test_each_tampered_transcript_is_refused_by_chainml(index: int):
    p = _params(V["round"]["inputs"])
    with pytest.raises(AggregateMismatch):
        verify_round(
            p, RoundTranscript.decode(V["negative"][index]["transcript"].encode()), _fetch_np
        )


def _edited(edit: dict[str, Any]) -> bytes:
    """The verifiable round's transcript with one of ``verifiable_negative``'s edits."""
    doc = json.loads(V["verifiable_round"]["transcript"])
    if edit["edit"] == "total_word":
        words = list(struct.unpack(f"<{len(doc['total']) // 8}I", B(doc["total"])))
        words[edit["word"]] = (words[edit["word"]] + 1) % 2**32
        doc["total"] = struct.pack(f"<{len(words)}I", *words).hex()
    elif edit["edit"] == "swap_value_commitments":
        a, b = doc["inputs"][str(edit["a"])], doc["inputs"][str(edit["b"])]
        a[3], b[3] = b[3], a[3]
    elif edit["edit"] == "cut_value_commitment":
        doc["inputs"][str(edit["a"])][3] = doc["inputs"][str(edit["a"])][3][:-2]
    else:
        raise AssertionError(f"unknown edit {edit['edit']}")
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def test_the_verifiable_round_checks_out_from_its_commitments_with_chainml():
    vr = V["verifiable_round"]
    p = _params(vr["inputs"])
    raw = vr["transcript"].encode()
    assert keccak256(raw).hex() == vr["transcript_keccak"]
    transcript = RoundTranscript.decode(raw)
    assert transcript.encode() == raw
    total = verify_sum(p, transcript)
    assert total.tolist() == vr["decoded_sum"]
    expected = sum(np.array(vr["updates"][str(i)]) for i in vr["survivors"])
    assert total.tolist() == expected.tolist()


@pytest.mark.parametrize("index", range(len(V["verifiable_negative"])))
def test_each_doctored_verifiable_transcript_is_refused_by_chainml(index: int):
    p = _params(V["verifiable_round"]["inputs"])
    with pytest.raises(AggregateMismatch):
        verify_sum(p, RoundTranscript.decode(_edited(V["verifiable_negative"][index])))


def test_a_low_order_survivor_key_is_a_typed_mismatch_with_chainml():
    p = _params(V["round"]["inputs"])
    raw = V["known_issues"]["low_order_survivor_key"]["transcript"].encode()
    with pytest.raises(AggregateMismatch):
        verify_round(p, RoundTranscript.decode(raw), _fetch_np)


# -- (b) the independent implementation gives the same bytes ------------------------------------


def test_primitives_independently():
    for v in V["tagged_hash"]:
        assert ind.tagged_hash(B(v["tag"]), B(v["data"])).hex() == v["hash"]
    for v in V["hkdf"]:
        assert ind.hkdf(B(v["seed"]), B(v["info"])).hex() == v["key"]
    for v in V["prg"]:
        assert ind.prg_words(B(v["seed"]), B(v["info"]), 8) == v["words"]
    for v in V["secure_parameters"]:
        degree, t, m = ind.secure_parameters(v["n"])
        assert (degree, t, m, ind.quorum(v["n"], t)) == (
            v["degree"],
            v["threshold"],
            v["min_partners"],
            v["quorum"],
        )


def test_round_parameters_and_graph_independently():
    rp = V["round_params"]
    r = _round(rp["inputs"])
    assert r.graph_seed.hex() == rp["graph_seed"]
    assert r.job_domain.hex() == rp["job_domain"]
    assert r.context.hex() == rp["context"]
    assert (r.degree, r.threshold, r.min_partners, r.quorum) == (
        rp["degree"],
        rp["threshold"],
        rp["min_partners"],
        rp["quorum"],
    )
    assert (r.frac_bits, r.secure_len) == (rp["frac_bits"], rp["secure_len"])
    for name, label in rp["labels"].items():
        kind, *ids = name.split("|")
        assert r.label(kind, *map(int, ids)).hex() == label
    for pair, index in rp["share_index"].items():
        dealer, holder = map(int, pair.split("->"))
        assert r.share_index(dealer, holder) == index
    rv = _round(V["round_params_verifiable"]["inputs"])
    assert rv.context.hex() == V["round_params_verifiable"]["context"]
    assert rv.secure_len == V["round_params_verifiable"]["secure_len"]
    g = V["sparse_graph"]
    sparse = _round(g["inputs"])
    assert sparse.context.hex() == g["context"]
    assert ind.tagged_hash(b"chainml/secagg/v3/ring", sparse.context).hex() == g["ring_seed"]
    assert sparse.graph_order() == g["permutation"]
    for v in V["shuffle"]:
        assert ind.shuffle(B(v["seed"]), v["n"]) == v["permutation"]
    assert {str(i): sorted(s) for i, s in sparse.neighbours.items()} == g["neighbours"]
    assert (sparse.degree, sparse.threshold, sparse.min_partners, sparse.quorum) == (
        g["degree"],
        g["threshold"],
        g["min_partners"],
        g["quorum"],
    )


def test_pair_keys_macs_and_share_box_independently():
    r = _round(V["round_params"]["inputs"])
    pv = V["pair"]
    who = V["identities"]
    k12 = r.pair_key(1, B(who["1"]["x25519_key"]), 2)
    assert k12 == r.pair_key(2, B(who["2"]["x25519_key"]), 1)
    assert k12.hex() == pv["pair_key"]
    assert ind.box_key(k12, 1, 2).hex() == pv["box_key_1_to_2"]
    assert ind.box_key(k12, 2, 1).hex() == pv["box_key_2_to_1"]
    mk = pv["mac_keys"]
    adv = mk["advert"]
    assert r.seed_commitment(1, B(adv["seed"])).hex() == adv["seed_commitment"]
    body = (
        r.context
        + B(adv["mask_key"])
        + B(adv["seed_commitment"])
        + B(adv["shares_root"])
        + B(adv["share_hashes"]["2"])
    )
    assert body.hex() == mk["body"]
    assert ind.mac(k12, b"keys", mk["sender"], mk["recipient"], body).hex() == mk["tag"]
    mp = pv["mac_partners"]
    body = r.context + ind.keccak256(ind.listed_ids(mp["partners"]))
    assert body.hex() == mp["body"]
    assert ind.mac(k12, b"partners", mp["sender"], mp["recipient"], body).hex() == mp["tag"]
    box = V["share_box"]
    assert r.label("share", 1, 2).hex() == box["associated_data"]
    sealed = ind.seal_shares(
        r, k12, 1, 2, B(box["nonce"]), B(box["key_share"]) + B(box["seed_share"])
    )
    assert sealed.hex() == box["sealed"]
    assert len(sealed) == 12 + 33 + 33 + 16


def test_shares_hashes_masks_and_commitments_independently():
    r = _round(V["round_params"]["inputs"])
    sh = V["shamir"]
    coefficients = [int(c, 16) for c in sh["coefficients"]]
    assert int(sh["prime"], 16) == ind.SHAMIR_P
    points = ind.shamir_shares(coefficients, len(sh["shares"]))
    assert [ind.share_encode(y).hex() for _, y in points] == sh["shares"]
    picked = [(x, B(sh["shares"][x - 1])) for x in sh["combine_from"]]
    assert ind.shamir_combine(picked).hex() == sh["secret"]
    for v in V["share_hash"]:
        assert r.share_hash(v["dealer"], v["holder"], v["kind"], B(v["share"])).hex() == v["hash"]
    sr = V["shares_root"]
    assert (
        ind.shares_root({int(j): B(h) for j, h in sr["share_hashes"].items()}).hex() == sr["root"]
    )
    sc = V["seed_commitment"]
    assert r.seed_commitment(sc["client"], B(sc["seed"])).hex() == sc["commitment"]
    sm = V["self_mask"]
    assert r.self_mask(B(sm["seed"]), sm["client"]) == sm["words"]
    pm = V["pair_mask"]
    assert r.pair_mask(B(pm["secret"]), 1, 2) == pm["words"]


def test_eip712_inputs_fixedpoint_lattice_and_merkle_independently():
    r = _round(V["round_params"]["inputs"])
    e = V["eip712"]
    assert r.domain_separator().hex() == e["domain_separator"]
    adv = V["pair"]["mac_keys"]["advert"]
    digest = r.keys_digest(1, B(adv["mask_key"]), B(adv["seed_commitment"]), B(adv["shares_root"]))
    assert digest.hex() == e["keys"]["digest"]
    survivors = e["survivors"]["survivors"]
    assert ind.keccak256(r.context + ind.listed_ids(survivors)).hex() == e["survivors"]["listed"]
    assert r.survivors_digest(survivors).hex() == e["survivors"]["digest"]
    commitment = B(e["round_commitment"]["commitment"])
    assert r.commitment_digest(commitment).hex() == e["round_commitment"]["digest"]
    for kind in ("keys", "survivors", "round_commitment"):
        assert ind.recover(B(e[kind]["digest"]), B(e[kind]["signature"])) == e["signer"]

    iv = V["input"]
    assert ind.input_hash(struct.pack("<8I", *iv["vector"])).hex() == iv["input_hash"]
    assert ind.input_commitment(B(iv["input_hash"]), iv["partners"], b"").hex() == iv["commitment"]
    assert (
        ind.input_commitment(
            B(iv["input_hash"]), iv["partners"], B(V["lattice"]["commitment"])
        ).hex()
        == iv["commitment_verifiable"]
    )

    fp = V["fixedpoint"]
    for v in fp["fraction_bits"]:
        assert ind.fraction_bits(v["n"], v["bound"]) == v["frac_bits"]
    for v in fp["encode"]:
        assert ind.fp_encode(v["x"], v["frac_bits"], v["u"]) == v["word"]
    for v in fp["decode"]:
        assert ind.fp_decode(v["word"], v["frac_bits"]) == v["value"]

    lv = V["lattice"]
    for u in lv["uniform_mod"]:
        values = ind.uniform_mod(B(u["key"]), u["name"].encode(), u["p"], u["count"])
        assert values == u["values"]
    for index, (a, b) in enumerate(ind.lattice_matrices(B(lv["seed"]), lv["length"])):
        assert a[:8] == lv["a_first_words"][index] and b[:8] == lv["b_first_words"][index]
        assert ind.keccak256(struct.pack(f"<{len(a)}I", *a)).hex() == lv["a_keccak"][index]
        assert ind.keccak256(struct.pack(f"<{len(b)}I", *b)).hex() == lv["b_keccak"][index]
    r = [(k * 7) % 5 - 2 for k in range(18 * 256)]
    c = ind.lattice_commit(B(lv["seed"]), lv["values"], r)
    assert ind.commitment_bytes(c).hex() == lv["commitment"]

    mv = V["merkle"]
    leaves = [
        ind.commitment_leaf(x["account"], mv["job_id"], mv["round"], B(x["commitment"]))
        for x in mv["leaves"]
    ]
    assert leaves[0].hex() == mv["leaf_data_1"]
    for k, root in mv["roots"].items():
        assert ind.merkle_root(leaves[: int(k)]).hex() == root


def test_the_round_verifies_independently():
    rv = V["round"]
    r = _round(rv["inputs"])
    inputs = _masked_inputs()
    total = ind.verify_round(r, rv["transcript"].encode(), inputs.__getitem__)
    assert total == rv["total_words"]
    assert [ind.fp_decode(w, r.frac_bits) for w in total] == rv["decoded_sum"]
    t = json.loads(rv["transcript"])
    leaves = [
        ind.commitment_leaf(
            r.roster[i],
            r.job_id,
            r.round,
            ind.input_commitment(
                B(t["inputs"][str(i)][0]), t["inputs"][str(i)][1], B(t["inputs"][str(i)][3])
            ),
        )
        for i in t["survivors"]
    ]
    assert ind.merkle_root(leaves).hex() == rv["commitment_root"]
    # canonical form: sorted keys, no spaces
    assert json.dumps(t, sort_keys=True, separators=(",", ":")) == rv["transcript"]


@pytest.mark.parametrize("index", range(len(V["negative"])))
def test_each_tampered_transcript_is_refused_independently(index: int):
    r = _round(V["round"]["inputs"])
    with pytest.raises(ind.Refused):
        ind.verify_round(
            r, V["negative"][index]["transcript"].encode(), _masked_inputs().__getitem__
        )


def test_the_verifiable_round_checks_out_independently():
    vr = V["verifiable_round"]
    r = _round(vr["inputs"])
    words = ind.verify_sum(r, vr["transcript"].encode())
    assert [ind.fp_decode(w, r.frac_bits) for w in words[: r.vector_len]] == vr["decoded_sum"]


@pytest.mark.parametrize("index", range(len(V["verifiable_negative"])))
def test_each_doctored_verifiable_transcript_is_refused_independently(index: int):
    r = _round(V["verifiable_round"]["inputs"])
    with pytest.raises(ind.Refused):
        ind.verify_sum(r, _edited(V["verifiable_negative"][index]))


def test_a_low_order_survivor_key_is_refused_independently():
    r = _round(V["round"]["inputs"])
    raw = V["known_issues"]["low_order_survivor_key"]["transcript"].encode()
    with pytest.raises(ind.Refused, match="low-order"):
        ind.verify_round(r, raw, _masked_inputs().__getitem__)


def test_wire_messages_check_out_independently():
    """What a client checks on the wire, from the spec: the advert's signature and its
    MAC for a neighbour, the sealed shares against the advert's share hashes, the masked
    input's signed commitment and partner MACs, an approval's signature."""
    r = _round(V["round"]["inputs"])
    who = V["identities"]
    m = {k: json.loads(v) for k, v in V["round"]["wire_messages"].items()}
    for name, d in m.items():
        assert d["format"] == "chainml-secagg/4" and d["type"] == name
    sender, pk, seed_c, root, sig, tags, hashes = m["KeyAdvert"]["advert"]
    assert ind.recover(r.keys_digest(sender, B(pk), B(seed_c), B(root)), B(sig)) == r.roster[sender]
    assert ind.shares_root({int(j): B(h) for j, h in hashes.items()}) == B(root)
    k = {j: r.pair_key(sender, B(who[str(sender)]["x25519_key"]), j) for j in r.neighbours[sender]}
    for j in r.neighbours[sender]:
        body = r.context + B(pk) + B(seed_c) + B(root) + B(hashes[str(j)])
        assert ind.mac(k[j], b"keys", sender, j, body).hex() == tags[str(j)]
    # the sealed shares from this sender open for each neighbour and match the hashes
    sealed = m["SealedShares"]
    assert sealed["sender"] == sender
    for j, ct in sealed["ciphertexts"].items():
        j = int(j)
        raw = B(ct)
        plain = ChaCha20Poly1305(ind.box_key(k[j], sender, j)).decrypt(
            raw[:12], raw[12:], r.label("share", sender, j)
        )
        assert len(raw) == 94 and len(plain) == 66
        key_share, seed_share = plain[:33], plain[33:]
        assert r.share_hash(sender, j, "key", key_share) == B(hashes[str(j)])[:16]
        assert r.share_hash(sender, j, "seed", seed_share) == B(hashes[str(j)])[16:]
        assert max(ind.share_decode(key_share), ind.share_decode(seed_share)) < ind.SHAMIR_P
    mi = m["MaskedInput"]
    vector = base64.b64decode(mi["vector"])
    commitment = ind.input_commitment(
        ind.input_hash(vector), mi["partners"], B(mi["value_commitment"])
    )
    assert (
        ind.recover(r.commitment_digest(commitment), B(mi["signature"])) == r.roster[mi["sender"]]
    )
    body = r.context + ind.keccak256(ind.listed_ids(mi["partners"]))
    for j in mi["partners"]:
        kj = r.pair_key(mi["sender"], B(who[str(mi["sender"])]["x25519_key"]), j)
        assert ind.mac(kj, b"partners", mi["sender"], j, body).hex() == mi["partner_tags"][str(j)]
    ss = m["SurvivorSignature"]
    listed = m["SurvivorList"]["survivors"]
    digest = r.survivors_digest(listed)
    assert ind.recover(digest, B(ss["signature"])) == r.roster[ss["sender"]]
    assert set(ss) == {"sender", "signature", "type", "format"}  # no MACs since secagg/4
    # the request client 1 got: every other approver's signature on the list it approved
    ur = m["UnmaskRequest"]
    assert ur["survivors"] == listed and str(ur["recipient"]) not in ur["approvals"]
    assert len(ur["approvals"]) >= r.quorum - 1
    for c, signature in ur["approvals"].items():
        assert ind.recover(digest, B(signature)) == r.roster[int(c)]


# -- one encoding: other spellings of the same values are refused by both -----------------------


@pytest.mark.parametrize("index", range(len(V["negative_wire"])))
def test_each_other_spelling_of_a_message_is_refused(index: int):
    raw = V["negative_wire"][index]["message"].encode()
    with pytest.raises(ProtocolViolation):
        wire.decode(raw)
    with pytest.raises(ind.Refused):
        ind.parse_message(raw)


@pytest.mark.parametrize("index", range(len(V["negative_encoding"])))
def test_each_other_spelling_of_the_transcript_is_refused(index: int):
    raw = V["negative_encoding"][index]["transcript"].encode()
    with pytest.raises(AggregateMismatch):
        RoundTranscript.decode(raw)
    with pytest.raises(ind.Refused):
        ind.verify_round(_round(V["round"]["inputs"]), raw, _masked_inputs().__getitem__)


def test_the_round_messages_parse_strictly_independently():
    for name, raw in V["round"]["wire_messages"].items():
        assert ind.parse_message(raw.encode())["type"] == name


def test_the_independent_implementation_imports_nothing_from_chainml():
    tree = ast.parse((Path(__file__).parent / "independent.py").read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    } | {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert imported and not any(name.split(".")[0] in ("chainml", "tests") for name in imported)


def test_the_worked_values_on_the_spec_page_are_the_vectors():
    page = (VECTORS.parents[1] / "secagg.md").read_text()
    rows = re.findall(r"^\| `([a-z0-9_.]+)` \| `([0-9a-f]{32,})` \|", page, flags=re.M)
    assert len(rows) == 11
    for path, value in rows:
        node: Any = V
        for key in path.split("."):
            node = node[key]
        assert node == value, path
