"""A round's public transcript (``RoundTranscript``, its canonical encoding) and its
verification: ``verify_round`` from the masked inputs, ``verify_sum`` from the lattice
commitments, ``unmask`` which the aggregator and every verifier run."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chainml.crypto.errors import CryptoError
from chainml.crypto.hazmat import fixedpoint, lattice
from chainml.crypto.keys import X25519KeyPair
from chainml.training.secagg.errors import AggregateMismatch
from chainml.training.secagg.messages import KeyAdvert, input_commitment, input_hash
from chainml.training.secagg.pairkeys import _pair_mask, _pair_sign, _self_mask
from chainml.training.secagg.params import RoundParams, _sign_ok

TRANSCRIPT_FORMAT = "chainml-secagg-transcript/3"  # /3: attempt, share hashes, partner rule


@dataclass(frozen=True)
class SignedInput:
    input_hash: bytes
    partners: tuple[int, ...]
    signature: bytes  # the trainer's EIP-712 RoundCommitment
    value_commitment: bytes = b""

    @property
    def commitment(self) -> bytes:
        return input_commitment(self.input_hash, self.partners, self.value_commitment)


@dataclass(frozen=True)
class RoundTranscript:
    """What the aggregator publishes so that anyone can check the sum: the signed keys
    (with seed commitments and share roots), each survivor's signed commitment to its
    masked input and partners, the survivor list with its quorum of signatures, the
    survivors' self-mask seeds and the mask keys of the dropped clients they had masked
    with, and the sum over Z_2^32.  It reveals what the aggregator saw, which the protocol
    makes worth only the sum.  Its encoding is specified in ``docs/protocol/secagg.md``."""

    adverts: Mapping[int, KeyAdvert]
    inputs: Mapping[int, SignedInput]
    survivors: tuple[int, ...]
    survivor_signatures: Mapping[int, bytes]
    seeds: Mapping[int, bytes]
    mask_keys: Mapping[int, bytes]
    total: bytes  # little-endian uint32

    def leaves(self, params: RoundParams) -> list[tuple[str, bytes]]:
        """(trainer account, signed commitment) for the round's commitment root."""
        return [(params.roster[i], self.inputs[i].commitment) for i in self.survivors]

    def encode(self) -> bytes:
        """Canonical JSON (sorted keys, no spaces, bytes as lower-case hex)."""
        doc = {
            "format": TRANSCRIPT_FORMAT,
            "adverts": {
                str(j): [
                    a.pk_s.hex(),
                    a.seed_commitment.hex(),
                    a.shares_root.hex(),
                    a.signature.hex(),
                ]
                for j, a in self.adverts.items()
            },
            "inputs": {
                str(i): [
                    s.input_hash.hex(),
                    list(s.partners),
                    s.signature.hex(),
                    s.value_commitment.hex(),
                ]
                for i, s in self.inputs.items()
            },
            "survivors": list(self.survivors),
            "survivor_signatures": {str(i): v.hex() for i, v in self.survivor_signatures.items()},
            "seeds": {str(i): v.hex() for i, v in self.seeds.items()},
            "mask_keys": {str(i): v.hex() for i, v in self.mask_keys.items()},
            "total": self.total.hex(),
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes) -> RoundTranscript:
        """Raises ``AggregateMismatch`` for anything that is not a transcript of this
        format with every field of its size."""
        try:
            d = json.loads(raw)
            if not isinstance(d, dict) or d.get("format") != TRANSCRIPT_FORMAT:
                raise ValueError("unknown format")

            def h(v: Any, size: int | None = None) -> bytes:
                if not isinstance(v, str):
                    raise ValueError("not hex")
                out = bytes.fromhex(v)
                if size is not None and len(out) != size:
                    raise ValueError("wrong size")
                return out

            def ident(v: Any) -> int:
                i = int(v) if isinstance(v, str) and v.isdigit() else v
                if not isinstance(i, int) or isinstance(i, bool) or not 1 <= i <= 65535:
                    raise ValueError("not a client id")
                return i

            inputs = {}
            for i, v in d["inputs"].items():
                if not isinstance(v, list) or len(v) != 4 or not isinstance(v[1], list):
                    raise ValueError("an input is [hash, partners, signature, commitment]")
                inputs[ident(i)] = SignedInput(
                    h(v[0], 32), tuple(ident(x) for x in v[1]), h(v[2], 65), h(v[3])
                )
            adverts = {}
            for j, a in d["adverts"].items():
                if not isinstance(a, list) or len(a) != 4:
                    raise ValueError("an advert is [key, seed commitment, share root, signature]")
                adverts[ident(j)] = KeyAdvert(
                    ident(j), h(a[0], 32), h(a[1], 32), h(a[2], 32), h(a[3], 65)
                )
            transcript = cls(
                adverts=adverts,
                inputs=inputs,
                survivors=tuple(ident(i) for i in d["survivors"]),
                survivor_signatures={
                    ident(i): h(v, 65) for i, v in d["survivor_signatures"].items()
                },
                seeds={ident(i): h(v, 32) for i, v in d["seeds"].items()},
                mask_keys={ident(i): h(v, 32) for i, v in d["mask_keys"].items()},
                total=h(d["total"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
            raise AggregateMismatch("not a secure-aggregation transcript") from exc
        if transcript.encode() != raw:  # one meaning, one encoding: what two parsers agree on
            raise AggregateMismatch("the transcript is not in its canonical encoding")
        return transcript


def unmask(
    params: RoundParams, transcript: RoundTranscript, inputs: Mapping[int, NDArray[np.uint32]]
) -> NDArray[np.uint32]:
    """The sum over Z_2^32 of the survivors' inputs with every mask removed, from the
    transcript's seeds and keys (the aggregator and every verifier run this)."""
    p = params
    total = np.zeros(p.secure_len, dtype=np.uint32)
    for i in transcript.survivors:
        total += inputs[i]
        total -= _self_mask(p, transcript.seeds[i], i)
    survivors = set(transcript.survivors)
    for j, secret in sorted(transcript.mask_keys.items()):
        key = X25519KeyPair.from_private_bytes(secret)
        for i in sorted(survivors):
            if j in transcript.inputs[i].partners:
                pairwise = _pair_mask(p, key.exchange(transcript.adverts[i].pk_s), i, j)
                if _pair_sign(i, j) > 0:
                    total -= pairwise
                else:
                    total += pairwise
    return total


def _check_survivors(p: RoundParams, transcript: RoundTranscript) -> tuple[int, ...]:
    """The survivor list is a sorted subset of the roster with a quorum of signatures, and
    every survivor kept the minimum of partners on it."""
    survivors = transcript.survivors
    if list(survivors) != sorted(set(survivors)) or not set(survivors) <= set(p.roster):
        raise AggregateMismatch("the survivor list is not a sorted subset of the roster")
    if set(transcript.inputs) != set(survivors):
        raise AggregateMismatch("the transcript's inputs are not exactly the survivors'")
    digest = p.survivors_digest(survivors)
    signers = {
        c
        for c, sig in transcript.survivor_signatures.items()
        if c in survivors and _sign_ok(p, digest, sig, c)
    }
    if len(signers) < p.quorum:
        raise AggregateMismatch(
            f"{len(signers)} valid signatures on the survivors, quorum {p.quorum}"
        )
    for i in survivors:
        signed = transcript.inputs.get(i)
        if signed is None or not _sign_ok(
            p, p.input_digest(signed.commitment), signed.signature, i
        ):
            raise AggregateMismatch(f"client {i}'s input commitment is missing or not signed")
        if bool(signed.value_commitment) != p.verifiable:
            raise AggregateMismatch(f"client {i}'s input lacks or adds a value commitment")
        if (
            list(signed.partners) != sorted(set(signed.partners))
            or not set(signed.partners) <= p.neighbours[i]
        ):
            raise AggregateMismatch(f"client {i} claims partners outside its neighbourhood")
        if len(set(signed.partners) & set(survivors)) < p.min_partners:
            raise AggregateMismatch(f"client {i} kept fewer than {p.min_partners} partners")
    return survivors


def _total(p: RoundParams, transcript: RoundTranscript) -> NDArray[np.uint32]:
    if len(transcript.total) != 4 * p.secure_len:
        raise AggregateMismatch("the published sum has the wrong length")
    return np.frombuffer(transcript.total, dtype="<u4").astype(np.uint32)


def verify_sum(params: RoundParams, transcript: RoundTranscript) -> NDArray[np.float64]:
    """Check a verifiable round's published sum against the survivors' signed lattice
    commitments alone — no masked input is needed and none is seen; returns the decoded
    sum.  Raises ``AggregateMismatch`` if a commitment is missing or unsigned, if the
    transcript is malformed, or if the sum (one unit off in one coordinate is enough) does
    not open their total."""
    p = params
    if not p.verifiable:
        raise AggregateMismatch("this round carries no value commitments")
    survivors = _check_survivors(p, transcript)
    commitments = []
    for i in survivors:
        try:
            commitments.append(lattice.Commitment.from_bytes(transcript.inputs[i].value_commitment))
        except lattice.CommitmentError:
            raise AggregateMismatch(f"client {i}'s value commitment is malformed") from None
    total = _total(p, transcript)
    signed_total = total.view(np.int32).astype(np.int64)
    if not p.commitment_key.check_sum(
        commitments, signed_total[: p.vector_len], signed_total[p.vector_len :]
    ):
        raise AggregateMismatch("the sum does not open the survivors' combined commitments")
    return fixedpoint.decode(total[: p.vector_len].copy(), p.frac_bits)


def verify_round(
    params: RoundParams,
    transcript: RoundTranscript,
    fetch_input: Callable[[int], NDArray[np.uint32]],
) -> NDArray[np.float64]:
    """Check a published aggregate from its transcript and the masked inputs (public:
    each is uniformly random on its own); returns the decoded sum.  Raises
    ``AggregateMismatch`` for any signature, hash, seed, key or single unit that is off,
    and for any transcript that is malformed or incomplete."""
    p = params
    survivors = _check_survivors(p, transcript)
    total = _total(p, transcript)
    needed = set(survivors) | set(transcript.mask_keys)
    for j in sorted(needed):
        advert = transcript.adverts.get(j)
        if (
            advert is None
            or advert.sender != j
            or not _sign_ok(p, advert.digest(p), advert.signature, j)
        ):
            raise AggregateMismatch(f"client {j}'s keys are missing or not signed by its account")
    inputs = {}
    for i in survivors:
        signed = transcript.inputs[i]
        vector = fetch_input(i)
        if (
            vector.dtype != np.uint32
            or vector.shape != (p.secure_len,)
            or input_hash(vector) != signed.input_hash
        ):
            raise AggregateMismatch(f"client {i}'s masked input does not match its commitment")
        inputs[i] = vector
        seed = transcript.seeds.get(i, b"")
        if p.seed_commitment(i, seed) != transcript.adverts[i].seed_commitment:
            raise AggregateMismatch(f"client {i}'s revealed seed is not the one it committed to")
    alive = set(survivors)
    for i in survivors:
        for j in transcript.inputs[i].partners:
            if j in alive and i not in transcript.inputs[j].partners:
                raise AggregateMismatch(f"clients {i} and {j} disagree on masking each other")
            if j not in alive and j not in transcript.mask_keys:
                raise AggregateMismatch(f"client {j}'s mask key is missing")
    try:
        for j, secret in transcript.mask_keys.items():
            key = X25519KeyPair.from_private_bytes(secret)
            if j in survivors or key.public_bytes != transcript.adverts[j].pk_s:
                raise AggregateMismatch(f"client {j}'s revealed mask key is not its own")
        unmasked = unmask(p, transcript, inputs)
    except CryptoError as exc:  # a signed low-order key: no pair mask can be agreed with it
        raise AggregateMismatch(f"a mask key in the transcript is unusable: {exc}") from None
    if unmasked.astype("<u4").tobytes() != total.tobytes():
        raise AggregateMismatch("the published sum is not the sum of the committed inputs")
    return fixedpoint.decode(total[: p.vector_len].copy(), p.frac_bits)
