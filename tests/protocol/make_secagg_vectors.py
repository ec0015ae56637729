"""Writes ``docs/protocol/vectors/secagg-v4.json`` from chainml (run once per format change):

    .venv/bin/python -m tests.protocol.make_secagg_vectors

Every input is fixed bytes (keys and seeds are SHA-256 of a label), so the derivation
vectors are the same on every run.  The full round needs randomness chainml draws itself
(mask keys, seeds, Shamir coefficients, box nonces); here those draws are replaced by a
fixed stream, so this script rewrites the same file byte for byte.  The tests never run
this script: they recompute each derivation with chainml and with the independent
implementation, and verify the committed round as an auditor would.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np

from chainml.crypto.box import SecretBox
from chainml.crypto.hashing import keccak256, tagged_hash
from chainml.crypto.hazmat import fixedpoint, lattice, prg, shamir
from chainml.crypto.keys import AccountKey, Identity, X25519KeyPair
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
    PairKeys,
    RoundParams,
    RoundTranscript,
    SecAggClient,
    SecAggServer,
    SignedInput,
    input_commitment,
    input_hash,
    messages,
    pairkeys,
    secure_parameters,
    shares_root,
)

OUT = Path(__file__).resolve().parents[2] / "docs" / "protocol" / "vectors" / "secagg-v4.json"

CHAIN_ID = 31337
JOBS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
JOB_ID, ROUND, ATTEMPT = 7, 3, 1
VECTOR_LEN, CLIP = 8, 2.0


def fixed(label: str) -> bytes:
    """32 fixed bytes: SHA-256 of ``chainml/vectors/`` + label."""
    return hashlib.sha256(b"chainml/vectors/" + label.encode()).digest()


def identity(i: int) -> Identity:
    return Identity(
        AccountKey.from_bytes(fixed(f"account/{i}")),
        X25519KeyPair.from_private_bytes(fixed(f"x25519/{i}")),
    )


def params(n: int, *, verifiable: bool = False, vector_len: int = VECTOR_LEN) -> RoundParams:
    ids = {i: identity(i) for i in range(1, n + 1)}
    return RoundParams.derive(
        {i: x.address for i, x in ids.items()},
        {i: x.x25519.public_bytes for i, x in ids.items()},
        vector_len,
        chain_id=CHAIN_ID,
        jobs=JOBS,
        job_id=JOB_ID,
        round=ROUND,
        attempt=ATTEMPT,
        clip=CLIP,
        verifiable=verifiable,
    )


def round_inputs(n: int) -> dict[str, Any]:
    return {
        "chain_id": CHAIN_ID,
        "jobs": JOBS,
        "job_id": JOB_ID,
        "round": ROUND,
        "attempt": ATTEMPT,
        "vector_len": VECTOR_LEN,
        "clip": CLIP,
        "verifiable": False,
        "clients": n,
    }


def _words(v: np.ndarray) -> list[int]:
    return [int(x) for x in v]


def static_vectors() -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["identities"] = {
        str(i): {
            "account_key": fixed(f"account/{i}").hex(),
            "x25519_key": fixed(f"x25519/{i}").hex(),
            "address": identity(i).address,
            "x25519_public": identity(i).x25519.public_bytes.hex(),
        }
        for i in range(1, 41)
    }
    out["tagged_hash"] = [
        {"tag": t.hex(), "data": d.hex(), "hash": tagged_hash(t, d).hex()}
        for t, d in [(b"graph", b""), (b"chainml/secagg/seed", b"abc"), (b"x", fixed("data"))]
    ]
    out["hkdf"] = [
        {"seed": fixed(s).hex(), "info": info.hex(), "key": prg.derive(fixed(s), info).hex()}
        for s, info in [("seed/1", b"shares|1|2"), ("seed/2", b"chainml/secagg/v1/pair|x")]
    ]
    out["prg"] = [
        {
            "seed": fixed(s).hex(),
            "info": info.hex(),
            "words": _words(prg.mask(fixed(s), info, 8)),
        }
        for s, info in [("seed/1", b"label"), ("seed/3", b"\x00" * 40)]
    ]
    out["secure_parameters"] = [
        {
            "n": n,
            "degree": (r := secure_parameters(n))[0],
            "threshold": r[1],
            "min_partners": r[2],
            "quorum": secagg.quorum_for(n, r[1]),
        }
        for n in [*range(3, 41), 50, 63, 64, 65, 100, 255, 256]
    ]

    p = params(5)
    out["round_params"] = {
        "inputs": round_inputs(5),
        "graph_seed": p.graph_seed.hex(),
        "job_domain": p.job_domain.hex(),
        "roster_hash": keccak256(
            b"".join(
                i.to_bytes(2, "big") + bytes.fromhex(a[2:]) + p.keys[i]
                for i, a in sorted(p.roster.items())
            )
        ).hex(),
        "context": p.context.hex(),
        "degree": p.degree,
        "threshold": p.threshold,
        "min_partners": p.min_partners,
        "quorum": p.quorum,
        "frac_bits": p.frac_bits,
        "secure_len": p.secure_len,
        "share_index": {
            f"{d}->{h}": p.share_index(d, h) for d in (1, 3) for h in sorted(p.neighbours[d])
        },
        "labels": {
            "share|1|2": p.label("share", 1, 2).hex(),
            "pair|1|2": p.label("pair", 1, 2).hex(),
            "self|1": p.label("self", 1).hex(),
        },
    }
    pv = params(5, verifiable=True)
    out["round_params_verifiable"] = {
        "inputs": {**round_inputs(5), "verifiable": True},
        "context": pv.context.hex(),
        "secure_len": pv.secure_len,
    }
    sparse = params(40)
    ring_seed = tagged_hash(b"chainml/secagg/v3/ring", sparse.context)
    out["sparse_graph"] = {
        "inputs": round_inputs(40),
        "context": sparse.context.hex(),
        "degree": sparse.degree,
        "threshold": sparse.threshold,
        "min_partners": sparse.min_partners,
        "quorum": sparse.quorum,
        "ring_seed": ring_seed.hex(),
        "permutation": secagg.shuffle(ring_seed, 40),
        "neighbours": {str(i): sorted(sparse.neighbours[i]) for i in sorted(sparse.roster)},
    }

    out["shuffle"] = [
        {
            "seed": fixed(f"shuffle/{n}").hex(),
            "n": n,
            "permutation": secagg.shuffle(fixed(f"shuffle/{n}"), n),
        }
        for n in (1, 2, 3, 40, 300)
    ]

    # pair keys, MACs and the share box between clients 1 and 2 of the five-client round
    one, two = identity(1), identity(2)
    pairs1 = PairKeys(one.x25519)
    mask1 = X25519KeyPair.from_private_bytes(fixed("mask/1"))
    mask2 = X25519KeyPair.from_private_bytes(fixed("mask/2"))
    seed1 = fixed("seed/1")
    holders = sorted(p.neighbours[1])
    h = secagg.SHARE_HASH_BYTES
    share_hashes = {
        j: fixed(f"hash-key/1/{j}")[:h] + fixed(f"hash-seed/1/{j}")[:h] for j in holders
    }
    root = shares_root(share_hashes)
    commitment1 = p.seed_commitment(1, seed1)
    body_keys = p.context + mask1.public_bytes + commitment1 + root + share_hashes[2]
    partners = (2, 3, 4)
    survivors = (1, 2, 3, 4)  # for the EIP-712 vectors below
    out["pair"] = {
        "between": [1, 2],
        "shared_secret": one.x25519.exchange(two.x25519.public_bytes).hex(),
        "pair_key": pairs1._secret(p, 1, 2).hex(),
        "box_key_1_to_2": prg.derive(pairs1._secret(p, 1, 2), b"shares|1|2").hex(),
        "box_key_2_to_1": prg.derive(pairs1._secret(p, 1, 2), b"shares|2|1").hex(),
        "mac_keys": {
            "sender": 1,
            "recipient": 2,
            "advert": {
                "mask_key": mask1.public_bytes.hex(),
                "seed": seed1.hex(),
                "seed_commitment": commitment1.hex(),
                "share_hashes": {str(j): h.hex() for j, h in share_hashes.items()},
                "shares_root": root.hex(),
            },
            "body": body_keys.hex(),
            "tag": pairs1.tag(p, 1, b"keys", 1, 2, body_keys).hex(),
        },
        "mac_partners": {
            "sender": 1,
            "recipient": 2,
            "partners": list(partners),
            "body": pairkeys._partners_body(p, partners).hex(),
            "tag": pairs1.tag(p, 1, b"partners", 1, 2, pairkeys._partners_body(p, partners)).hex(),
        },
    }

    # Shamir: a fixed polynomial (split draws its coefficients from the OS)
    secret = seed1
    coefficients = [int.from_bytes(secret, "big")] + [
        int.from_bytes(fixed(f"coefficient/{k}") * 2, "big") % shamir.P256 for k in (1, 2)
    ]
    shares = [
        shamir.Share(x, 3, 32, shamir._eval(coefficients, x, shamir.P256)) for x in range(1, 5)
    ]
    assert shamir.combine(shares[1:], prime=shamir.P256) == secret
    out["shamir"] = {
        "prime": hex(shamir.P256),
        "secret": secret.hex(),
        "threshold": 3,
        "coefficients": [hex(c) for c in coefficients],
        "shares": [secagg.encode_share(s).hex() for s in shares],  # x = 1, 2, 3, 4
        "combine_from": [2, 3, 4],
    }
    key_share, seed_share = secagg.encode_share(shares[1]), secagg.encode_share(shares[2])
    nonce = fixed("nonce")[:12]
    plain = key_share + seed_share
    box = SecretBox(prg.derive(pairs1._secret(p, 1, 2), b"shares|1|2"))
    with mock.patch("chainml.crypto.box.os.urandom", lambda k: nonce[:k]):
        sealed = box.encrypt(plain, p.label("share", 1, 2))
    out["share_box"] = {
        "sender": 1,
        "recipient": 2,
        "nonce": nonce.hex(),
        "key_share": key_share.hex(),
        "seed_share": seed_share.hex(),
        "associated_data": p.label("share", 1, 2).hex(),
        "plaintext": plain.hex(),
        "sealed": sealed.hex(),
    }
    out["share_hash"] = [
        {
            "dealer": 1,
            "holder": 2,
            "kind": kind,
            "share": s.hex(),
            "hash": p.share_hash(1, 2, kind, s).hex(),
        }
        for kind, s in (("key", key_share), ("seed", seed_share))
    ]
    out["shares_root"] = {
        "share_hashes": {str(j): h.hex() for j, h in share_hashes.items()},
        "root": root.hex(),
    }
    out["seed_commitment"] = {"client": 1, "seed": seed1.hex(), "commitment": commitment1.hex()}
    out["self_mask"] = {
        "client": 1,
        "seed": seed1.hex(),
        "words": _words(pairkeys._self_mask(p, seed1, 1)),
    }
    pair_secret = mask1.exchange(mask2.public_bytes)
    out["pair_mask"] = {
        "mask_private_1": fixed("mask/1").hex(),
        "mask_private_2": fixed("mask/2").hex(),
        "mask_public_2": mask2.public_bytes.hex(),
        "secret": pair_secret.hex(),
        "words": _words(pairkeys._pair_mask(p, pair_secret, 1, 2)),
        "sign_of_1": pairkeys._pair_sign(1, 2),
        "sign_of_2": pairkeys._pair_sign(2, 1),
    }

    # EIP-712
    commitment = fixed("commitment")
    keys_digest = p.keys_digest(1, mask1.public_bytes, commitment1, root)
    survivors_digest = p.survivors_digest(survivors)
    commitment_digest = p.input_digest(commitment)
    out["eip712"] = {
        "domain_typehash": DOMAIN_TYPEHASH.hex(),
        "keys_typehash": KEYS_TYPEHASH.hex(),
        "survivors_typehash": SURVIVORS_TYPEHASH.hex(),
        "round_commitment_typehash": ROUND_COMMITMENT_TYPEHASH.hex(),
        "domain_separator": domain_separator(CHAIN_ID, JOBS).hex(),
        "keys": {
            "client": 1,
            "digest": keys_digest.hex(),
            "signature": one.account.sign_digest(keys_digest).hex(),
        },
        "survivors": {
            "survivors": list(survivors),
            "listed": keccak256(p.context + messages._listed(survivors)).hex(),
            "digest": survivors_digest.hex(),
            "signature": one.account.sign_digest(survivors_digest).hex(),
        },
        "round_commitment": {
            "commitment": commitment.hex(),
            "digest": commitment_digest.hex(),
            "signature": one.account.sign_digest(commitment_digest).hex(),
        },
        "signer": one.address,
    }

    # inputs
    vector = np.arange(1, 9, dtype=np.uint32) * np.uint32(0x01010101)
    lat = lattice_vectors(pv)
    value_commitment = bytes.fromhex(lat["commitment"])
    out["input"] = {
        "vector": _words(vector),
        "input_hash": input_hash(vector).hex(),
        "partners": list(partners),
        "commitment": input_commitment(input_hash(vector), partners).hex(),
        "value_commitment_keccak": keccak256(value_commitment).hex(),
        "commitment_verifiable": input_commitment(
            input_hash(vector), partners, value_commitment
        ).hex(),
    }
    out["fixedpoint"] = {
        "fraction_bits": [
            {"n": n, "bound": b, "frac_bits": fixedpoint.fraction_bits(n, b)}
            for n, b in [
                (5, 2.0),
                (10, 1.0),
                (10, 6.0),
                (3, 0.001),
                (256, 1000.0),
                (1, 1.0),
                (1, 128 - 2**-24),
                (1, 128.0),
                (3, (2**31 - 3) / 3 / 2**20),
                (3, (2**31 - 3) / 3 / 2**20 + 2**-40),
            ]
        ],
        "encode": [
            {"x": x, "frac_bits": 20, "u": u, "word": int(_encode_with(x, 20, u))}
            for x, u in [(0.5, 0.0), (-0.5, 0.999), (1e-7, 0.9), (-1.75, 0.25), (3.0000001, 0.5)]
        ],
        "decode": [
            {
                "word": w,
                "frac_bits": 20,
                "value": float(fixedpoint.decode(np.array([w], np.uint32), 20)[0]),
            }
            for w in [0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFF00000]
        ],
    }
    out["lattice"] = lat
    out["merkle"] = merkle_vectors()
    return out


def _encode_with(x: float, frac_bits: int, u: float) -> np.uint32:
    class Fixed:
        def random(self, shape: tuple[int, ...]) -> np.ndarray:
            return np.full(shape, u)

    return fixedpoint.encode(np.array([x]), frac_bits, Fixed())[0]  # type: ignore[arg-type]


def lattice_vectors(p: RoundParams) -> dict[str, Any]:
    key = p.commitment_key
    values = np.array([3, -1, 0, 2**20, -(2**20), 7, -7, 1], dtype=np.int64)
    randomness = np.array([(k * 7) % 5 - 2 for k in range(lattice.RANDOMNESS_LEN)], dtype=np.int64)
    c = key.commit(values, randomness).to_bytes()
    a = [np.ascontiguousarray(m, dtype="<u4").tobytes() for m in key._a]
    b = [np.ascontiguousarray(m, dtype="<u4").tobytes() for m in key._b]
    uniform = [
        {
            "key": fixed(f"uniform/{count}").hex(),
            "name": name.decode(),
            "p": prime,
            "count": count,
            "values": _words(lattice.uniform_mod(fixed(f"uniform/{count}"), name, prime, count)),
        }
        for name, prime, count in [(b"A", lattice.PRIMES[0], 8), (b"B", 2**30 + 3, 40)]
    ]
    return {
        "uniform_mod": uniform,
        "seed": p.job_domain.hex(),
        "length": p.vector_len,
        "a_first_words": [_words(m.reshape(-1)[:8]) for m in key._a],
        "b_first_words": [_words(m.reshape(-1)[:8]) for m in key._b],
        "a_keccak": [keccak256(x).hex() for x in a],
        "b_keccak": [keccak256(x).hex() for x in b],
        "values": _words(values),
        "randomness_rule": "r[k] = (7 k mod 5) - 2 for k in 0 .. 4607",
        "commitment": c.hex(),
        "commitment_keccak": keccak256(c).hex(),
    }


def merkle_vectors() -> dict[str, Any]:
    leaves = [
        commitment_leaf(identity(i).address, JOB_ID, ROUND, fixed(f"commitment/{i}"))
        for i in range(1, 6)
    ]
    return {
        "job_id": JOB_ID,
        "round": ROUND,
        "leaves": [
            {"account": identity(i).address, "commitment": fixed(f"commitment/{i}").hex()}
            for i in range(1, 6)
        ],
        "leaf_data_1": leaves[0].hex(),
        "roots": {str(k): MerkleTree(leaves[:k]).root.hex() for k in range(0, 6)},
    }


# -- the full round ------------------------------------------------------------------------


def _stream(label: str) -> Iterator[bytes]:
    for k in itertools.count():
        yield fixed(f"{label}/{k}")


def run_round(
    n: int = 5, drop_at_masked: tuple[int, ...] = (3,), *, verifiable: bool = False
) -> dict[str, Any]:
    """A round of ``n`` clients in which ``drop_at_masked`` drop after sharing, with every
    random draw taken from fixed streams; returns the transcript, inputs and the messages
    seen (the five-client round keeps its streams' original names)."""
    p = params(n, verifiable=verifiable)
    prefix = "round" if (n, verifiable) == (5, False) else f"round-{n}-{int(verifiable)}"
    keys = _stream(f"{prefix}-x25519")
    seeds = _stream(f"{prefix}-urandom")
    coeff = _stream(f"{prefix}-shamir")
    nonces = _stream(f"{prefix}-nonce")

    def urandom(k: int) -> bytes:
        return next(seeds)[:k]

    def randbelow(bound: int) -> int:
        return int.from_bytes(next(coeff) * 3, "big") % bound

    def generate() -> X25519KeyPair:
        return X25519KeyPair.from_private_bytes(next(keys))

    seen: dict[str, str] = {}

    def capture(message: Any) -> Any:
        name = type(message).__name__
        if name not in seen:
            seen[name] = wire.encode(message).decode()
        return message

    updates = {
        i: np.array([((i * 7 + k * 3) % 11 - 5) / 16 for k in range(VECTOR_LEN)]) for i in p.roster
    }
    with (
        mock.patch("chainml.training.secagg.client.os.urandom", urandom),
        mock.patch("chainml.crypto.box.os.urandom", lambda k: next(nonces)[:k]),
        mock.patch("chainml.crypto.hazmat.shamir.secrets.randbelow", randbelow),
        mock.patch.object(X25519KeyPair, "generate", staticmethod(generate)),
    ):
        clients = {
            i: SecAggClient(p, i, identity(i), updates[i], rng=np.random.default_rng(1000 + i))
            for i in sorted(p.roster)
        }
        server = SecAggServer(p)
        for i in sorted(clients):
            server.receive(capture(clients[i].advertise()))
        gone: set[int] = set()
        for stage in ("shares", "masked", "consistency", "unmask"):
            if stage == "masked":
                gone |= set(drop_at_masked)
            for message in server.advance():
                capture(message)
                if message.recipient not in gone:
                    server.receive(capture(clients[message.recipient].handle(message)))
        result = server.finish()
    raw = result.transcript.encode()
    inputs = {
        str(i): base64.b64encode(v.astype("<u4").tobytes()).decode()
        for i, v in server.inputs.items()
    }
    leaves = result.transcript.leaves(p)
    tree_leaves = [commitment_leaf(a, JOB_ID, ROUND, c) for a, c in leaves]
    return {
        "inputs": {**round_inputs(n), "verifiable": verifiable},
        "updates": {str(i): [float(x) for x in u] for i, u in updates.items()},
        "dropped_after_sharing": list(drop_at_masked),
        "transcript": raw.decode(),
        "transcript_keccak": keccak256(raw).hex(),
        "masked_inputs": inputs,
        "total_words": _words(np.frombuffer(result.transcript.total, dtype="<u4")),
        "decoded_sum": [float(x) for x in result.total],
        "survivors": list(result.survivors),
        "commitment_root": MerkleTree(tree_leaves).root.hex(),
        "bitmap": sum(1 << (i - 1) for i in result.survivors),
        "wire_messages": seen,
    }


def _tamper(doc: dict[str, Any], path: list[Any], value: Any) -> str:
    d = json.loads(json.dumps(doc))
    target = d
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return json.dumps(d, sort_keys=True, separators=(",", ":"))


def negative_vectors(good: dict[str, Any]) -> list[dict[str, Any]]:
    """Transcripts a verifier must refuse, each one change away from the good one."""
    doc = json.loads(good["transcript"])
    total = bytearray(bytes.fromhex(doc["total"]))
    total[0] = (total[0] + 1) % 256
    swapped_seed = dict(doc["seeds"])
    first, second = sorted(swapped_seed)[:2]
    swapped_seed[first], swapped_seed[second] = swapped_seed[second], swapped_seed[first]
    sig = bytearray(bytes.fromhex(doc["survivor_signatures"]["1"]))
    sig[10] ^= 1
    adverts = dict(doc["adverts"])
    del adverts["2"]
    mask_keys = {k: "00" * 32 for k in doc["mask_keys"]}
    short = doc["survivors"][:-1]
    return [
        {
            "why": "the sum one unit off in its first coordinate",
            "transcript": _tamper(doc, ["total"], total.hex()),
        },
        {
            "why": "two survivors' seeds swapped",
            "transcript": _tamper(doc, ["seeds"], swapped_seed),
        },
        {
            "why": "a survivor's approval signature altered",
            "transcript": _tamper(doc, ["survivor_signatures", "1"], sig.hex()),
        },
        {"why": "a survivor's advert missing", "transcript": _tamper(doc, ["adverts"], adverts)},
        {
            "why": "a dropped client's mask key replaced",
            "transcript": _tamper(doc, ["mask_keys"], mask_keys),
        },
        {
            "why": "the survivor list shortened (its signatures no longer match)",
            "transcript": _tamper(doc, ["survivors"], short),
        },
        {
            "why": "the sum three bytes short",
            "transcript": _tamper(doc, ["total"], doc["total"][:-6]),
        },
        {
            "why": "an unknown format",
            "transcript": _tamper(doc, ["format"], "chainml-secagg-transcript/2"),
        },
    ]


def verifiable_negative(good: dict[str, Any]) -> list[dict[str, Any]]:
    """Edits of the verifiable round's transcript that ``verify_sum`` must refuse (given
    as edits, not whole transcripts, to keep the file small): ``total_word`` adds 1 to word
    ``word`` of ``total``; ``swap_value_commitments`` swaps those of survivors ``a`` and
    ``b``; ``cut_value_commitment`` drops the last byte of survivor ``a``'s."""
    first, second = good["survivors"][:2]
    vector_len = good["inputs"]["vector_len"]
    return [
        {"why": "the sum one unit off in its first coordinate", "edit": "total_word", "word": 0},
        {"why": "the summed randomness one unit off", "edit": "total_word", "word": vector_len},
        {
            "why": "two survivors' value commitments swapped (no longer what each signed)",
            "edit": "swap_value_commitments",
            "a": first,
            "b": second,
        },
        {"why": "a value commitment one byte short", "edit": "cut_value_commitment", "a": first},
    ]


def wire_negative(good: dict[str, Any]) -> list[dict[str, str]]:
    """Other spellings of the round's messages, each of which a decoder must refuse."""
    m = good["wire_messages"]
    survivors = m["SurvivorList"]
    approval = json.loads(m["SurvivorSignature"])
    shares = m["UnmaskShares"]
    first = next(iter(json.loads(shares)["self_mask"]))
    return [
        {"why": "spaces after separators", "message": json.dumps(json.loads(survivors))},
        {
            "why": "upper-case hex",
            "message": m["SurvivorSignature"].replace(
                approval["signature"], approval["signature"].upper()
            ),
        },
        {
            "why": "a duplicate key",
            "message": survivors.replace('{"recipient":', '{"recipient":1,"recipient":', 1),
        },
        {
            "why": "an id with a leading zero",
            "message": shares.replace(f'"{first}":', f'"0{first}":', 1),
        },
        {"why": "an id with a sign", "message": shares.replace(f'"{first}":', f'"+{first}":', 1)},
        {
            "why": "fields out of order",
            "message": survivors.replace('"type":"SurvivorList",', "").replace(
                "{", '{"type":"SurvivorList",', 1
            ),
        },
        {"why": "an unknown type", "message": survivors.replace("SurvivorList", "Survivors")},
        {
            "why": "an earlier format",
            "message": survivors.replace("chainml-secagg/4", "chainml-secagg/3"),
        },
        {
            "why": "a boolean for an id",
            "message": survivors.replace('"recipient":1', '"recipient":true'),
        },
    ]


def transcript_noncanonical(good: dict[str, Any]) -> list[dict[str, str]]:
    """Other spellings of the round's transcript (same values), each to be refused."""
    raw = good["transcript"]
    doc = json.loads(raw)
    total = doc["total"]
    return [
        {"why": "spaces after separators", "transcript": json.dumps(doc, sort_keys=True)},
        {
            "why": "keys not sorted",
            "transcript": json.dumps(dict(reversed(list(doc.items()))), separators=(",", ":")),
        },
        {"why": "upper-case hex", "transcript": raw.replace(total, total.upper())},
        {
            "why": "an id with a leading zero",
            "transcript": raw.replace('"seeds":{"1":', '"seeds":{"01":'),
        },
        {
            "why": "an id in Arabic-Indic digits",
            "transcript": raw.replace('"seeds":{"1":', '"seeds":{"\\u0661":'),
        },
        {
            "why": "a duplicate key",
            "transcript": raw.replace('"total":', f'"total":"{total}","total":', 1),
        },
    ]


def low_order_survivor_key(good: dict[str, Any]) -> dict[str, Any]:
    """A survivor (colluding with the aggregator) whose signed advert carries a low-order
    mask key, with a dropped partner's mask key revealed: removing that pair's mask needs
    an X25519 agreement with the low-order point (spec §15 item 11)."""
    p = params(5)
    doc = json.loads(good["transcript"])
    survivor = next(
        i
        for i in good["survivors"]
        if set(doc["inputs"][str(i)][1]) & {int(j) for j in doc["mask_keys"]}
    )
    advert = doc["adverts"][str(survivor)]
    advert[0] = "00" * 32
    digest = p.keys_digest(survivor, bytes(32), bytes.fromhex(advert[1]), bytes.fromhex(advert[2]))
    advert[3] = identity(survivor).account.sign_digest(digest).hex()
    return {
        "why": f"survivor {survivor}'s signed advert carries a low-order mask key",
        "transcript": json.dumps(doc, sort_keys=True, separators=(",", ":")),
    }


def non_survivor_input(good: dict[str, Any]) -> dict[str, Any]:
    """The dropped client listed in ``inputs`` (with an unsigned entry) and its mask key
    withheld, the published sum still carrying a pair mask (refused since the fix of
    known issue 1 of the specification)."""
    p = params(5)
    t = RoundTranscript.decode(good["transcript"].encode())
    dropped = good["dropped_after_sharing"][0]
    fake = SignedInput(bytes(32), tuple(good["survivors"]), bytes(65))
    forged = dataclasses.replace(t, inputs={**t.inputs, dropped: fake}, mask_keys={})
    inputs = {
        int(i): np.frombuffer(base64.b64decode(b), dtype="<u4").astype(np.uint32)
        for i, b in good["masked_inputs"].items()
    }
    total = secagg.unmask(p, forged, inputs).astype("<u4").tobytes()
    forged = dataclasses.replace(forged, total=total)
    return {
        "why": "a non-survivor listed in inputs, its mask key withheld: the sum keeps a pair mask",
        "transcript": forged.encode().decode(),
    }


def round_start() -> dict[str, Any]:
    """A ``chainml-round-start/2`` message for the five-client roster, and a NaN clip that
    a trainer must refuse (spec §15 item 12)."""
    from chainml.node.rounds import RoundStart
    from chainml.training.job import JobConfig

    config = JobConfig(n_features=4, n_classes=2, hidden=(), epochs=1).encode()
    roster = {i: identity(i).address for i in range(1, 6)}
    raw = RoundStart(config, b"\x00safetensors", roster, 1.5, ATTEMPT).encode().decode()
    return {
        "message": raw,
        "config": config.decode(),
        "roster": {str(i): a for i, a in roster.items()},
        "clip": 1.5,
        "attempt": ATTEMPT,
        "nan_clip": raw.replace('"clip":1.5', '"clip":NaN'),
    }


def build() -> dict[str, Any]:
    out = {
        "format": "chainml-secagg-vectors/1",
        "wire_format": wire.FORMAT,
        "transcript_format": secagg.TRANSCRIPT_FORMAT,
        "specification": "docs/protocol/secagg.md",
        "fixed_bytes": "fixed(label) = SHA-256(b'chainml/vectors/' + label); account key of client i = fixed('account/i'), its X25519 key fixed('x25519/i')",
    }
    out.update(static_vectors())
    out["round_start"] = round_start()
    out["round"] = run_round()
    out["negative"] = negative_vectors(out["round"])
    out["negative"].append(non_survivor_input(out["round"]))
    out["known_issues"] = {"low_order_survivor_key": low_order_survivor_key(out["round"])}
    out["negative_wire"] = wire_negative(out["round"])
    out["negative_encoding"] = transcript_noncanonical(out["round"])
    verifiable = run_round(4, (2,), verifiable=True)
    # verify_sum needs no masked input; the sum is checked through its hash and decoding
    del verifiable["masked_inputs"], verifiable["wire_messages"], verifiable["total_words"]
    out["verifiable_round"] = verifiable
    out["verifiable_negative"] = verifiable_negative(verifiable)
    return out


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(build(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
