"""A second implementation of the SecAgg+ formats, written from ``docs/protocol/secagg.md``
alone: it imports nothing from chainml, only the standard library, ``cryptography``
(X25519, ChaCha20, ChaCha20-Poly1305), ``eth_abi`` / ``eth_utils`` (ABI encoding,
Keccak-256), ``coincurve`` (secp256k1 recovery) and ``blake3``.  The vector tests check
that it computes the same bytes as chainml, so the specification is shown to be enough
to build a verifier.  Section numbers (§) refer to the specification.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import struct
from collections.abc import Callable, Mapping, Sequence
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


# -- §3 numpy's PCG64 (the portability wart), from its published algorithm -------------------

M32, M64, M128 = (1 << 32) - 1, (1 << 64) - 1, (1 << 128) - 1


def int_words(n: int) -> list[int]:
    """numpy's SeedSequence coercion of a non-negative integer: 32-bit words, least
    significant first, as few as hold it (one for zero)."""
    out = [n & M32]
    n >>= 32
    while n:
        out.append(n & M32)
        n >>= 32
    return out


def _seed_sequence(entropy: Sequence[int], n64: int) -> list[int]:
    hash_const = 0x43B0D7E5

    def hashmix(value: int) -> int:
        nonlocal hash_const
        value ^= hash_const
        hash_const = (hash_const * 0x931E8875) & M32
        value = (value * hash_const) & M32
        return value ^ (value >> 16)

    def mix(x: int, y: int) -> int:
        r = (0xCA01F9DD * x - 0x4973F715 * y) & M32
        return r ^ (r >> 16)

    pool = [hashmix(entropy[i] if i < len(entropy) else 0) for i in range(4)]
    for src in range(4):
        for dst in range(4):
            if src != dst:
                pool[dst] = mix(pool[dst], hashmix(pool[src]))
    for src in range(4, len(entropy)):
        for dst in range(4):
            pool[dst] = mix(pool[dst], hashmix(entropy[src]))
    hash_b, words = 0x8B51F9DD, []
    for i in range(2 * n64):
        v = pool[i % 4] ^ hash_b
        hash_b = (hash_b * 0x58F38DED) & M32
        v = (v * hash_b) & M32
        words.append(v ^ (v >> 16))
    return [words[2 * k] | words[2 * k + 1] << 32 for k in range(n64)]


class PCG64:
    """numpy.random.Generator(PCG64(SeedSequence(entropy))) for the calls chainml makes."""

    MULT = 0x2360ED051FC65DA44385DF649FCCF645

    def __init__(self, entropy: Sequence[int]) -> None:
        s = _seed_sequence(entropy, 4)
        self.inc = (((s[2] << 64 | s[3]) << 1) | 1) & M128
        self.state = 0
        self._step()
        self.state = (self.state + (s[0] << 64 | s[1])) & M128
        self._step()
        self.half: int | None = None

    def _step(self) -> None:
        self.state = (self.state * self.MULT + self.inc) & M128

    def next64(self) -> int:
        self._step()
        s = self.state
        x, rot = ((s >> 64) ^ s) & M64, s >> 122
        return ((x >> rot) | (x << ((64 - rot) & 63))) & M64

    def next32(self) -> int:
        if self.half is not None:
            out, self.half = self.half, None
            return out
        v = self.next64()
        self.half = v >> 32
        return v & M32

    def interval(self, top: int) -> int:
        """Uniform in [0, top] by masked rejection (numpy's ``random_interval``)."""
        if top == 0:
            return 0
        mask = top
        for shift in (1, 2, 4, 8, 16, 32):
            mask |= mask >> shift
        draw = self.next32 if top <= M32 else self.next64
        while True:
            v = draw() & mask
            if v <= top:
                return v

    def permutation(self, n: int) -> list[int]:
        a = list(range(n))
        for i in range(n - 1, 0, -1):
            j = self.interval(i)
            a[i], a[j] = a[j], a[i]
        return a

    def below(self, bound: int) -> int:
        """Uniform in [0, bound) for bound < 2^32 (Lemire, numpy's ``integers`` for int64
        when the range fits 32 bits)."""
        top = bound - 1
        m = self.next32() * bound
        left = m & M32
        if left < bound:
            threshold = (M32 - top) % bound
            while left < threshold:
                m = self.next32() * bound
                left = m & M32
        return m >> 32


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
        seed = int.from_bytes(tagged_hash(b"graph", self.context), "big")
        return PCG64(int_words(seed)).permutation(self.n)

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
        return tagged_hash(b"chainml/secagg/v3/share", self.label(kind, dealer, holder) + share)

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
    return hashlib.blake2b(data, key=pair_key, digest_size=32, person=b"chainml/secagg/1").digest()


def box_key(pair_key: bytes, sender: int, recipient: int) -> bytes:
    return hkdf(pair_key, b"shares|%d|%d" % (sender, recipient))


def seal_shares(
    rnd: Round, pair_key: bytes, sender: int, recipient: int, nonce: bytes, shares: bytes
) -> bytes:
    plain = sender.to_bytes(2, "big") + recipient.to_bytes(2, "big") + shares
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

P521 = 2**521 - 1


def share_encode(index: int, threshold: int, length: int, value: int) -> bytes:
    return bytes([index, threshold, length]) + value.to_bytes(66, "big")


def shamir_shares(coefficients: Sequence[int], count: int) -> list[tuple[int, int]]:
    return [
        (x, sum(c * x**k for k, c in enumerate(coefficients)) % P521) for x in range(1, count + 1)
    ]


def shamir_combine(encoded: Sequence[bytes]) -> bytes:
    parsed = [(e[0], e[1], e[2], int.from_bytes(e[3:], "big")) for e in encoded]
    threshold, length = parsed[0][1], parsed[0][2]
    points = [(x, y) for x, _, _, y in parsed[:threshold]]
    secret = 0
    for i, (xi, yi) in enumerate(points):
        num = den = 1
        for j, (xj, _) in enumerate(points):
            if i != j:
                num = num * -xj % P521
                den = den * (xi - xj) % P521
        secret = (secret + yi * num * pow(den, -1, P521)) % P521
    return secret.to_bytes(length, "big")


# -- §6 fixed point ---------------------------------------------------------------------------


def fraction_bits(n: int, bound: float) -> int:
    f = math.floor(math.log2((2**31 / n - 1) / bound))
    if f < 1:
        raise ValueError("does not fit")
    return min(f, 24)


def fp_encode(x: float, frac_bits: int, u: float) -> int:
    return math.floor(x * float(1 << frac_bits) + u) % 2**32


def fp_decode(word: int, frac_bits: int) -> float:
    signed = word - 2**32 if word >= 2**31 else word
    return signed / float(1 << frac_bits)


# -- §7 lattice commitment parameters ----------------------------------------------------------

PRIMES = (2147483137, 2147478017)


def lattice_matrices(seed: bytes, length: int) -> list[tuple[list[int], list[int]]]:
    """Per prime: (A flattened K x L x 256, B' flattened K x 10 x 256), in NTT form."""
    blocks = -(-length // 256)
    out = []
    for index, p in enumerate(PRIMES):
        digest = hashlib.sha256(b"chainml/lattice/v1" + seed + bytes([index])).digest()
        entropy: list[int] = []
        for k in range(4):
            entropy += int_words(int.from_bytes(digest[8 * k : 8 * k + 8], "little"))
        g = PCG64(entropy)
        a = [g.below(p) for _ in range(8 * blocks * 256)]
        b = [g.below(p) for _ in range(8 * 10 * 256)]
        out.append((a, b))
    return out


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


def verify_round(rnd: Round, raw: bytes, fetch: Callable[[int], bytes]) -> list[int]:
    """§10's algorithm: the unmasked sum as words over Z_2^32; raises ``Refused``."""
    t = parse_transcript(raw)
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
                shared = priv.exchange(X25519PublicKey.from_public_bytes(t["adverts"][i][0]))
                mask = rnd.pair_mask(shared, i, j)
                sign = -1 if i < j else 1  # i added +mask if i < j: remove it
                total = [(a + sign * m) % 2**32 for a, m in zip(total, mask, strict=True)]
    if struct.pack(f"<{rnd.secure_len}I", *total) != t["total"]:
        raise Refused("the published sum is not the unmasked sum")
    return total
