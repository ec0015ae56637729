"""A second implementation of the SecAgg+ formats, written from ``docs/protocol/secagg.md``
alone: it imports nothing from chainml, only the standard library, ``cryptography``
(X25519, ChaCha20, ChaCha20-Poly1305), ``eth_abi`` / ``eth_utils`` (ABI encoding,
Keccak-256), ``coincurve`` (secp256k1 recovery) and ``blake3``.  The vector tests check
that it computes the same bytes as chainml, so the specification is shown to be enough
to build a verifier.  Section numbers (§) refer to the specification.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import struct
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction
from typing import Any

from blake3 import blake3
from coincurve import PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from eth_abi import encode as abi
from eth_utils import keccak, to_checksum_address


class Refused(Exception):
    """The independent verifier refuses a transcript."""


# -- §2 hashing and key derivation ----------------------------------------------------------


def keccak256(data: bytes) -> bytes:
    return bytes(keccak(data))


def tagged_hash(tag: bytes, data: bytes) -> bytes:
    return hashlib.sha256(len(tag).to_bytes(2, "big") + tag + data).digest()


def hkdf(seed: bytes, info: bytes) -> bytes:
    prk = hmac.new(bytes(32), seed, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def prg_words(seed: bytes, info: bytes, count: int) -> list[int]:
    key = hkdf(seed, info)
    stream = Cipher(algorithms.ChaCha20(key, bytes(16)), None).encryptor().update(bytes(4 * count))
    return list(struct.unpack(f"<{count}I", stream))


def shuffle(seed: bytes, n: int) -> list[int]:
    """§3.5: Fisher-Yates over a ChaCha20 word stream, unbiased by rejection."""

    def words():  # type: ignore[no-untyped-def]
        block = 0
        while True:
            yield from prg_words(seed, b"chainml/secagg/v3/shuffle|" + str(block).encode(), 256)
            block += 1

    out, draw = list(range(n)), words()
    for i in range(n - 1, 0, -1):
        bound = i + 1
        limit = 2**32 - 2**32 % bound
        w = next(draw)
        while w >= limit:
            w = next(draw)
        j = w % bound
        out[i], out[j] = out[j], out[i]
    return out


# -- §3 round parameters --------------------------------------------------------------------


def quorum(n: int, t: int) -> int:
    return (n + t - 1) // 2 + 1


def secure_parameters(n: int) -> tuple[int, int, int]:
    if n <= 30:
        wanted = (3 * n) // 10  # floor(0.3 n), exact in integers
        t = 2
        while t + 1 <= n - 1 and n - quorum(n, t + 1) >= wanted:
            t += 1
        return n - 1, t, quorum(n, t) - 1
    degree = min(2 * (n - 1).bit_length(), n - 1)  # 2 ceil(log2 n)
    return degree, degree // 4 + 1, degree // 2 + 1


def graph_seed(chain_id: int, jobs: str, job_id: int, round_no: int, attempt: int) -> bytes:
    return tagged_hash(
        b"chainml/secagg/v3/graph",
        abi(
            ["uint256", "address", "uint256", "uint256", "uint256"],
            [chain_id, jobs, job_id, round_no, attempt],
        ),
    )


class Round:
    """The public parameters of one round (§3), all from public data."""

    def __init__(
        self,
        *,
        chain_id: int,
        jobs: str,
        job_id: int,
        round_no: int,
        attempt: int,
        roster: Mapping[int, str],
        keys: Mapping[int, bytes],
        vector_len: int,
        clip: float,
        verifiable: bool = False,
    ) -> None:
        self.chain_id, self.jobs, self.job_id, self.round = chain_id, jobs, job_id, round_no
        self.attempt, self.roster, self.keys = attempt, dict(roster), dict(keys)
        self.vector_len, self.clip, self.verifiable = vector_len, clip, verifiable
        self.n = len(roster)
        self.degree, self.threshold, self.min_partners = secure_parameters(self.n)
        self.quorum = quorum(self.n, self.threshold)
        self.graph_seed = graph_seed(chain_id, jobs, job_id, round_no, attempt)
        self.secure_len = vector_len + (18 * 256 if verifiable else 0)
        self.frac_bits = fraction_bits(self.n, clip)
        self.job_domain = abi(["uint256", "address", "uint256"], [chain_id, jobs, job_id])
        roster_bytes = b"".join(
            i.to_bytes(2, "big") + bytes.fromhex(roster[i][2:]) + keys[i] for i in sorted(roster)
        )
        self.context = tagged_hash(
            b"chainml/secagg/v3",
            abi(
                ["uint256", "address", "uint256", "uint256", "uint256", "bytes32"]
                + ["uint256"] * 4
                + ["bytes32", "bool"],
                [
                    chain_id,
                    jobs,
                    job_id,
                    round_no,
                    attempt,
                    keccak256(roster_bytes),
                    vector_len,
                    self.degree,
                    self.threshold,
                    self.min_partners,
                    self.graph_seed,
                    verifiable,
                ],
            ),
        )
        self.neighbours = self._graph()

    def graph_order(self) -> list[int]:
        return shuffle(tagged_hash(b"chainml/secagg/v3/ring", self.context), self.n)

    def _graph(self) -> dict[int, set[int]]:
        ids = sorted(self.roster)
        if self.degree >= self.n - 1:
            return {i: set(ids) - {i} for i in ids}
        ring = [ids[k] for k in self.graph_order()]
        half = self.degree // 2
        return {
            ring[p]: {ring[(p + d) % self.n] for d in range(-half, half + 1) if d}
            for p in range(self.n)
        }

    def label(self, *parts: object) -> bytes:
        return self.context + b"|" + "|".join(str(p) for p in parts).encode()

    # §4 derivations
    def seed_commitment(self, client: int, seed: bytes) -> bytes:
        return tagged_hash(b"chainml/secagg/seed", self.label("seed", client) + seed)

    def share_hash(self, dealer: int, holder: int, kind: str, share: bytes) -> bytes:
        return tagged_hash(b"chainml/secagg/v4/share", self.label(kind, dealer, holder) + share)[
            :16
        ]

    def share_index(self, dealer: int, holder: int) -> int:
        return sorted(self.neighbours[dealer]).index(holder) + 1

    def self_mask(self, seed: bytes, i: int) -> list[int]:
        return prg_words(seed, self.label("self", i), self.secure_len)

    def pair_mask(self, secret: bytes, i: int, j: int) -> list[int]:
        return prg_words(secret, self.label("pair", min(i, j), max(i, j)), self.secure_len)

    def pair_key(self, me: int, my_private: bytes, peer: int) -> bytes:
        priv = X25519PrivateKey.from_private_bytes(my_private)
        shared = priv.exchange(X25519PublicKey.from_public_bytes(self.keys[peer]))
        lo, hi = sorted((me, peer))
        info = (
            b"chainml/secagg/v1/pair|"
            + self.job_domain
            + lo.to_bytes(2, "big")
            + self.keys[lo]
            + hi.to_bytes(2, "big")
            + self.keys[hi]
        )
        return hkdf(shared, info)

    # §5 EIP-712
    def domain_separator(self) -> bytes:
        return keccak256(
            abi(
                ["bytes32", "bytes32", "bytes32", "uint256", "address"],
                [
                    keccak256(
                        b"EIP712Domain(string name,string version,uint256 chainId,"
                        b"address verifyingContract)"
                    ),
                    keccak256(b"chainml"),
                    keccak256(b"1"),
                    self.chain_id,
                    self.jobs,
                ],
            )
        )

    def _eip712(self, struct_hash: bytes) -> bytes:
        return keccak256(b"\x19\x01" + self.domain_separator() + struct_hash)

    def keys_digest(self, client: int, pk: bytes, seed_c: bytes, root: bytes) -> bytes:
        typehash = keccak256(
            b"SecAggKeys(uint256 jobId,uint256 round,bytes32 context,uint256 client,"
            b"bytes32 maskKey,bytes32 seedCommitment,bytes32 shares)"
        )
        return self._eip712(
            keccak256(
                abi(
                    ["bytes32", "uint256", "uint256", "bytes32", "uint256"] + ["bytes32"] * 3,
                    [typehash, self.job_id, self.round, self.context, client, pk, seed_c, root],
                )
            )
        )

    def survivors_digest(self, survivors: Sequence[int]) -> bytes:
        typehash = keccak256(b"SecAggSurvivors(uint256 jobId,uint256 round,bytes32 survivors)")
        listed = keccak256(self.context + listed_ids(survivors))
        return self._eip712(
            keccak256(
                abi(
                    ["bytes32", "uint256", "uint256", "bytes32"],
                    [typehash, self.job_id, self.round, listed],
                )
            )
        )

    def commitment_digest(self, commitment: bytes) -> bytes:
        typehash = keccak256(b"RoundCommitment(uint256 jobId,uint256 round,bytes32 commitment)")
        return self._eip712(
            keccak256(
                abi(
                    ["bytes32", "uint256", "uint256", "bytes32"],
                    [typehash, self.job_id, self.round, commitment],
                )
            )
        )


def listed_ids(ids: Sequence[int]) -> bytes:
    return b"".join(i.to_bytes(2, "big") for i in ids)


def mac(pair_key: bytes, kind: bytes, sender: int, recipient: int, body: bytes) -> bytes:
    data = kind + sender.to_bytes(2, "big") + recipient.to_bytes(2, "big") + body
    return hashlib.blake2b(data, key=pair_key, digest_size=16, person=b"chainml/secagg/4").digest()


def box_key(pair_key: bytes, sender: int, recipient: int) -> bytes:
    return hkdf(pair_key, b"shares|%d|%d" % (sender, recipient))


def seal_shares(
    rnd: Round, pair_key: bytes, sender: int, recipient: int, nonce: bytes, shares: bytes
) -> bytes:
    plain = shares  # key share y ‖ seed share y, 33 bytes each; the pair is in the AD
    aead = ChaCha20Poly1305(box_key(pair_key, sender, recipient))
    return nonce + aead.encrypt(nonce, plain, rnd.label("share", sender, recipient))


def shares_root(hashes: Mapping[int, bytes]) -> bytes:
    return keccak256(b"".join(j.to_bytes(2, "big") + hashes[j] for j in sorted(hashes)))


def input_hash(vector_le: bytes) -> bytes:
    return blake3(vector_le).digest()


def input_commitment(vhash: bytes, partners: Sequence[int], value_commitment: bytes) -> bytes:
    extra = keccak256(value_commitment) if value_commitment else b""
    return keccak256(vhash + keccak256(listed_ids(partners)) + extra)


# -- §4 Shamir --------------------------------------------------------------------------------

SHAMIR_P = 2**256 + 297  # §2: the smallest prime above 2^256


def share_encode(value: int) -> bytes:
    """§2: a share is its y, 33 bytes big-endian (x, t and the 32-byte length are known)."""
    return value.to_bytes(33, "big")


def share_decode(raw: bytes) -> int:
    value = int.from_bytes(raw, "big")
    if len(raw) != 33 or value >= SHAMIR_P:
        raise Refused("a share is 33 bytes below the prime")
    return value


def shamir_shares(coefficients: Sequence[int], count: int) -> list[tuple[int, int]]:
    return [
        (x, sum(c * x**k for k, c in enumerate(coefficients)) % SHAMIR_P)
        for x in range(1, count + 1)
    ]


def shamir_combine(points: Sequence[tuple[int, bytes]]) -> bytes:
    """The 32-byte secret from (x, encoded share) points, as many as the threshold."""
    parsed = [(x, share_decode(e)) for x, e in points]
    secret = 0
    for i, (xi, yi) in enumerate(parsed):
        num = den = 1
        for j, (xj, _) in enumerate(parsed):
            if i != j:
                num = num * -xj % SHAMIR_P
                den = den * (xi - xj) % SHAMIR_P
        secret = (secret + yi * num * pow(den, -1, SHAMIR_P)) % SHAMIR_P
    if secret >= 2**256:
        raise Refused("the shares do not rebuild a 32-byte secret")
    return secret.to_bytes(32, "big")


# -- §6 fixed point ---------------------------------------------------------------------------


def fraction_bits(n: int, bound: float) -> int:
    """§6: the largest f <= 24 with n (bound 2^f + 1) <= 2^31, exactly."""
    exact = Fraction(bound)
    for f in range(24, 0, -1):
        if n * (exact * 2**f + 1) <= 2**31:
            return f
    raise ValueError("does not fit")


def fp_encode(x: float, frac_bits: int, u: float) -> int:
    return math.floor(x * float(1 << frac_bits) + u) % 2**32


def fp_decode(word: int, frac_bits: int) -> float:
    signed = word - 2**32 if word >= 2**31 else word
    return signed / float(1 << frac_bits)


# -- §7 lattice commitment parameters ----------------------------------------------------------

PRIMES = (2147483137, 2147478017)


def uniform_mod(key: bytes, name: bytes, p: int, count: int) -> list[int]:
    """§7: ``count`` values uniform in [0, p): ChaCha20 words, low 31 bits, kept if < p;
    block b is ``want + want // 64 + 16`` words long, ``want`` the values still missing."""
    out: list[int] = []
    block = 0
    while len(out) < count:
        want = count - len(out)
        info = b"chainml/lattice/v2|" + name + b"|" + str(block).encode()
        kept = [w & 0x7FFFFFFF for w in prg_words(key, info, want + want // 64 + 16)]
        out += [w for w in kept if w < p][:want]
        block += 1
    return out


def lattice_matrices(seed: bytes, length: int) -> list[tuple[list[int], list[int]]]:
    """Per prime: (A flattened K x L x 256, B' flattened K x 10 x 256), in NTT form."""
    blocks = -(-length // 256)
    out = []
    for index, p in enumerate(PRIMES):
        key = hashlib.sha256(b"chainml/lattice/v2" + seed + bytes([index])).digest()
        out.append(
            (uniform_mod(key, b"A", p, 8 * blocks * 256), uniform_mod(key, b"B", p, 8 * 10 * 256))
        )
    return out


def _ntt_tables(p: int) -> list[list[int]]:
    """Row i: the powers psi^((2 brv8(i) + 1) j), j = 0 .. 255 (§7's NTT as evaluation)."""
    g = 10 if p == PRIMES[0] else 3  # the smallest primitive roots (§7)
    psi = pow(g, (p - 1) // 512, p)
    powers = [pow(psi, e, p) for e in range(512)]
    rows = []
    for i in range(256):
        e = 2 * int(f"{i:08b}"[::-1], 2) + 1
        rows.append([powers[(e * j) % 512] for j in range(256)])
    return rows


def ntt(a: Sequence[int], p: int, rows: list[list[int]]) -> list[int]:
    reduced = [x % p for x in a]
    return [sum(x * w for x, w in zip(reduced, row, strict=True)) % p for row in rows]


def lattice_commit(
    seed: bytes, values: Sequence[int], randomness: Sequence[int]
) -> list[list[list[int]]]:
    """§7's commitment, as [prime][row][slot]."""
    blocks = -(-len(values) // 256)
    padded = list(values) + [0] * (blocks * 256 - len(values))
    out = []
    for (a, b), p in zip(lattice_matrices(seed, len(values)), PRIMES, strict=True):
        rows = _ntt_tables(p)
        u_hat = [ntt(padded[256 * k : 256 * k + 256], p, rows) for k in range(blocks)]
        r_hat = [ntt(randomness[256 * e : 256 * e + 256], p, rows) for e in range(18)]
        c = []
        for k in range(8):
            acc = list(r_hat[k])
            for blk in range(blocks):
                base = (k * blocks + blk) * 256
                acc = [(x + a[base + s] * u_hat[blk][s]) % p for s, x in enumerate(acc)]
            for h in range(10):
                base = (k * 10 + h) * 256
                acc = [(x + b[base + s] * r_hat[8 + h][s]) % p for s, x in enumerate(acc)]
            c.append(acc)
        out.append(c)
    return out


def commitment_bytes(c: list[list[list[int]]]) -> bytes:
    return b"".join(struct.pack("<256I", *row) for prime in c for row in prime)


def parse_commitment(raw: bytes) -> list[list[list[int]]]:
    if len(raw) != 16384:
        raise Refused("a value commitment is 16,384 bytes")
    words = struct.unpack("<4096I", raw)
    c = [
        [list(words[2048 * x + 256 * k : 2048 * x + 256 * k + 256]) for k in range(8)]
        for x in (0, 1)
    ]
    if any(v >= PRIMES[x] for x in (0, 1) for row in c[x] for v in row):
        raise Refused("a commitment value is not below its prime")
    return c


# -- §8 Merkle tree of round commitments ----------------------------------------------------------


def commitment_leaf(account: str, job_id: int, round_no: int, commitment: bytes) -> bytes:
    return abi(
        ["address", "uint256", "uint256", "bytes32"], [account, job_id, round_no, commitment]
    )


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    if not leaves:
        return keccak256(b"chainml/merkle/empty/v1")
    level = [keccak256(b"\x00" + leaf) for leaf in leaves]
    while len(level) > 1:
        nxt = [
            keccak256(b"\x01" + min(level[i], level[i + 1]) + max(level[i], level[i + 1]))
            for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


# -- §9 signatures ------------------------------------------------------------------------------

HALF_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141 // 2


def recover(digest: bytes, signature: bytes) -> str | None:
    """The checksummed signer, or None for anything that is not a canonical signature."""
    if len(signature) != 65 or signature[64] not in (27, 28):
        return None
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    if not 0 < s <= HALF_N or not 0 < r < 2 * HALF_N + 1:
        return None
    try:
        public = PublicKey.from_signature_and_message(
            signature[:64] + bytes([signature[64] - 27]), digest, hasher=None
        )
    except (ValueError, TypeError):
        return None
    return str(to_checksum_address(keccak256(public.format(compressed=False)[1:])[12:]))


def signed_by(digest: bytes, signature: bytes, account: str) -> bool:
    who = recover(digest, signature)
    return who is not None and who.lower() == account.lower()


# -- §10 transcript and verification ---------------------------------------------------------------


def parse_transcript(raw: bytes) -> dict[str, Any]:
    """The transcript as the specification reads it (strict: canonical client ids)."""
    try:
        d = json.loads(raw)
        if d["format"] != "chainml-secagg-transcript/3":
            raise Refused("unknown format")

        def ident(v: Any) -> int:
            i = int(v) if isinstance(v, str) and v.isascii() and v.isdigit() else v
            if not isinstance(i, int) or isinstance(i, bool) or not 1 <= i <= 65535:
                raise Refused("not a client id")
            return i

        def hx(v: Any, size: int | None = None) -> bytes:
            out = bytes.fromhex(v)
            if size is not None and len(out) != size:
                raise Refused("wrong size")
            return out

        return {
            "adverts": {
                ident(j): [hx(a[0], 32), hx(a[1], 32), hx(a[2], 32), hx(a[3], 65)]
                for j, a in d["adverts"].items()
            },
            "inputs": {
                ident(i): [hx(v[0], 32), [ident(x) for x in v[1]], hx(v[2], 65), hx(v[3])]
                for i, v in d["inputs"].items()
            },
            "survivors": [ident(i) for i in d["survivors"]],
            "survivor_signatures": {
                ident(i): hx(v, 65) for i, v in d["survivor_signatures"].items()
            },
            "seeds": {ident(i): hx(v, 32) for i, v in d["seeds"].items()},
            "mask_keys": {ident(i): hx(v, 32) for i, v in d["mask_keys"].items()},
            "total": hx(d["total"]),
        }
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise Refused(f"malformed transcript: {exc}") from exc


def canonical(t: dict[str, Any]) -> bytes:
    """§9's canonical encoding of a parsed transcript."""
    doc = {
        "format": "chainml-secagg-transcript/3",
        "adverts": {str(j): [x.hex() for x in a] for j, a in t["adverts"].items()},
        "inputs": {
            str(i): [v[0].hex(), v[1], v[2].hex(), v[3].hex()] for i, v in t["inputs"].items()
        },
        "survivors": t["survivors"],
        "survivor_signatures": {str(i): v.hex() for i, v in t["survivor_signatures"].items()},
        "seeds": {str(i): v.hex() for i, v in t["seeds"].items()},
        "mask_keys": {str(i): v.hex() for i, v in t["mask_keys"].items()},
        "total": t["total"].hex(),
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def check_survivors(rnd: Round, raw: bytes) -> dict[str, Any]:
    """§10.1 steps 0-3: the parsed, canonical transcript whose survivors check out."""
    t = parse_transcript(raw)
    if canonical(t) != raw:
        raise Refused("not the canonical encoding")
    survivors = t["survivors"]
    if survivors != sorted(set(survivors)) or not set(survivors) <= set(rnd.roster):
        raise Refused("survivor list")
    if set(t["inputs"]) != set(survivors):
        raise Refused("inputs are the survivors' (see known issues)")
    sdigest = rnd.survivors_digest(survivors)
    signers = {
        c
        for c, sig in t["survivor_signatures"].items()
        if c in survivors and signed_by(sdigest, sig, rnd.roster[c])
    }
    if len(signers) < rnd.quorum:
        raise Refused("no quorum of approvals")
    for i in survivors:
        vhash, partners, sig, vc = t["inputs"][i]
        commitment = input_commitment(vhash, partners, vc)
        if not signed_by(rnd.commitment_digest(commitment), sig, rnd.roster[i]):
            raise Refused(f"input {i} not signed")
        if partners != sorted(set(partners)) or not set(partners) <= rnd.neighbours[i]:
            raise Refused(f"partners of {i}")
        if len(set(partners) & set(survivors)) < rnd.min_partners:
            raise Refused(f"{i} kept too few partners")
    return t


def verify_sum(rnd: Round, raw: bytes) -> list[int]:
    """§10.2: the sum's words, checked against the survivors' lattice commitments."""
    if not rnd.verifiable:
        raise Refused("not a verifiable round")
    t = check_survivors(rnd, raw)
    commitments = [parse_commitment(t["inputs"][i][3]) for i in t["survivors"]]
    if len(t["total"]) != 4 * rnd.secure_len:
        raise Refused("total length")
    words = struct.unpack(f"<{rnd.secure_len}I", t["total"])
    signed = [w - 2**32 if w >= 2**31 else w for w in words]
    s, r = signed[: rnd.vector_len], signed[rnd.vector_len :]
    if any(abs(x) >= 2**31 for x in s) or any(abs(x) > 2 * len(commitments) for x in r):
        raise Refused("sum or opening out of bounds")
    combined = [
        [
            [sum(c[x][k][slot] for c in commitments) % PRIMES[x] for slot in range(256)]
            for k in range(8)
        ]
        for x in (0, 1)
    ]
    if combined != lattice_commit(rnd.job_domain, s, r):
        raise Refused("the sum does not open the combined commitments")
    return list(words)


def verify_round(rnd: Round, raw: bytes, fetch: Callable[[int], bytes]) -> list[int]:
    """§10.1: the unmasked sum as words over Z_2^32; raises ``Refused``."""
    t = check_survivors(rnd, raw)
    survivors = t["survivors"]
    if len(t["total"]) != 4 * rnd.secure_len:
        raise Refused("total length")
    for j in sorted(set(survivors) | set(t["mask_keys"])):
        a = t["adverts"].get(j)
        if a is None or not signed_by(rnd.keys_digest(j, a[0], a[1], a[2]), a[3], rnd.roster[j]):
            raise Refused(f"advert {j}")
    inputs = {}
    for i in survivors:
        blob = fetch(i)
        if len(blob) != 4 * rnd.secure_len or input_hash(blob) != t["inputs"][i][0]:
            raise Refused(f"masked input {i}")
        inputs[i] = struct.unpack(f"<{rnd.secure_len}I", blob)
        seed = t["seeds"].get(i, b"")
        if rnd.seed_commitment(i, seed) != t["adverts"][i][1]:
            raise Refused(f"seed {i}")
    for i in survivors:
        for j in t["inputs"][i][1]:
            if j in survivors and i not in t["inputs"][j][1]:
                raise Refused("asymmetric partners")
            if j not in survivors and j not in t["mask_keys"]:
                raise Refused(f"mask key {j} missing")
    for j, secret in t["mask_keys"].items():
        public = X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes_raw()
        if j in survivors or public != t["adverts"][j][0]:
            raise Refused(f"mask key {j}")
    total = [0] * rnd.secure_len
    for i in survivors:
        mask = rnd.self_mask(t["seeds"][i], i)
        total = [(a + b - c) % 2**32 for a, b, c in zip(total, inputs[i], mask, strict=True)]
    for j, secret in sorted(t["mask_keys"].items()):
        priv = X25519PrivateKey.from_private_bytes(secret)
        for i in survivors:
            if j in t["inputs"][i][1]:
                try:
                    shared = priv.exchange(X25519PublicKey.from_public_bytes(t["adverts"][i][0]))
                except ValueError:  # an all-zero shared secret: a low-order key
                    raise Refused(f"client {i}'s mask key is a low-order point") from None
                mask = rnd.pair_mask(shared, i, j)
                sign = -1 if i < j else 1  # i added +mask if i < j: remove it
                total = [(a + sign * m) % 2**32 for a, m in zip(total, mask, strict=True)]
    if struct.pack(f"<{rnd.secure_len}I", *total) != t["total"]:
        raise Refused("the published sum is not the unmasked sum")
    return total


# -- §8.3 messages, strictly -------------------------------------------------------------------

FIELDS = {
    "KeyAdvert": ["advert"],
    "NeighbourKeys": ["recipient", "adverts"],
    "SealedShares": ["sender", "ciphertexts"],
    "ShareBatch": ["recipient", "ciphertexts"],
    "MaskedInput": [
        "sender",
        "vector",
        "partners",
        "signature",
        "value_commitment",
        "partner_tags",
    ],
    "SurvivorList": ["recipient", "survivors"],
    "SurvivorSignature": ["sender", "signature"],
    "UnmaskRequest": ["recipient", "survivors", "approvals", "partners"],
    "UnmaskShares": ["sender", "self_mask", "mask_key"],
}
HEX = frozenset("0123456789abcdef")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise Refused("a duplicate key")
    return dict(pairs)


def _int32(v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v < 2**32:
        raise Refused("not an integer in [0, 2^32)")
    return v


def _hex(v: Any, size: int | None) -> bytes:
    if not isinstance(v, str) or len(v) % 2 or not set(v) <= HEX:
        raise Refused("not lower-case hex")
    out = bytes.fromhex(v)
    if size is not None and len(out) != size:
        raise Refused("wrong size")
    return out


def _id_map(v: Any, size: int | None) -> dict[int, bytes]:
    if not isinstance(v, dict):
        raise Refused("not an object")
    out = {}
    for k, x in v.items():
        if not (k == "0" or (k[:1] in "123456789" and k.isascii() and k.isdigit())):
            raise Refused("a map key is not a decimal id")
        out[_int32(int(k))] = _hex(x, size)
    return out


def _ids_list(v: Any) -> list[int]:
    if not isinstance(v, list):
        raise Refused("not a list")
    return [_int32(x) for x in v]


def _advert(v: Any) -> None:
    if not isinstance(v, list) or len(v) != 7:
        raise Refused("an advert is 7 fields")
    _int32(v[0])
    for x, size in zip(v[1:5], (32, 32, 32, 65), strict=True):
        _hex(x, size)
    _id_map(v[5], 16)
    _id_map(v[6], 32)


def parse_message(raw: bytes) -> dict[str, Any]:
    """A ``chainml-secagg/4`` message as §8.3 writes it, or ``Refused``: fields in their
    order, no whitespace, lower-case hex of the stated sizes, decimal ids, no duplicates."""
    try:
        d = json.loads(raw, object_pairs_hook=_no_duplicates)
    except ValueError as exc:
        raise Refused("not JSON") from exc
    if not isinstance(d, dict) or d.get("format") != "chainml-secagg/4":
        raise Refused("unknown format")
    kind = d.get("type")
    if kind not in FIELDS or list(d) != [*FIELDS[kind], "type", "format"]:
        raise Refused("unknown type, or fields missing or out of order")
    if json.dumps(d, separators=(",", ":")).encode() != raw:
        raise Refused("not the one encoding (whitespace or escapes)")
    if "sender" in d:
        _int32(d["sender"])
    if "recipient" in d:
        _int32(d["recipient"])
    if kind == "KeyAdvert":
        _advert(d["advert"])
    elif kind == "NeighbourKeys":
        if not isinstance(d["adverts"], list):
            raise Refused("adverts are a list")
        for a in d["adverts"]:
            _advert(a)
    elif kind in ("SealedShares", "ShareBatch"):
        _id_map(d["ciphertexts"], None)
    elif kind == "MaskedInput":
        try:
            blob = base64.b64decode(d["vector"], validate=True)
        except (ValueError, TypeError) as exc:
            raise Refused("vector is not base64") from exc
        if len(blob) % 4 or len(blob) > 4 << 26 or base64.b64encode(blob).decode() != d["vector"]:
            raise Refused("vector is not whole words in canonical base64")
        _ids_list(d["partners"])
        _hex(d["signature"], 65)
        if len(_hex(d["value_commitment"], None)) not in (0, 16384):
            raise Refused("a value commitment is 16,384 bytes")
        _id_map(d["partner_tags"], 16)
    elif kind == "SurvivorList":
        _ids_list(d["survivors"])
    elif kind == "SurvivorSignature":
        _hex(d["signature"], 65)
    elif kind == "UnmaskRequest":
        _ids_list(d["survivors"])
        _id_map(d["approvals"], 65)
        if not isinstance(d["partners"], dict):
            raise Refused("partners is an object")
        for k, entry in d["partners"].items():
            _id_map({k: "00"}, 1)
            if not isinstance(entry, list) or len(entry) != 2:
                raise Refused("a partner entry is [ids, tag]")
            _ids_list(entry[0])
            _hex(entry[1], 16)
    else:
        _id_map(d["self_mask"], 33)
        _id_map(d["mask_key"], 33)
    return d
