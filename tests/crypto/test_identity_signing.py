"""Identities, proofs of possession and EIP-712 round commitments."""

from __future__ import annotations

import pkgutil

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

import chainml.crypto as crypto
from chainml.crypto import (
    AccountKey,
    Identity,
    InvalidKey,
    InvalidSignature,
    X25519KeyPair,
    keccak256,
    recover_address,
    round_commitment_digest,
    sign_round_commitment,
    verify_proof_of_possession,
    verify_round_commitment,
)

DEV_KEY = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"
JOBS = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def test_exported_names_are_stable():
    submodules = {m.name for m in pkgutil.iter_modules(crypto.__path__)}
    assert set(crypto.__all__) == {n for n in dir(crypto) if not n.startswith("_")} - submodules


def test_keccak_known_answers():
    assert (
        keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )
    assert keccak256(b"abc").hex() == (
        "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"
    )


def test_dev_account_known_answer_and_repr_hides_secret():
    key = AccountKey.from_bytes(DEV_KEY)
    assert key.address == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    assert DEV_KEY[2:] not in repr(key) and DEV_KEY[2:] not in repr(
        Identity(key, X25519KeyPair.generate())
    )
    with pytest.raises(InvalidKey) as info:
        AccountKey.from_bytes(b"\x00" * 31)
    assert info.value.__cause__ is None


def test_x25519_rfc7748_vector():
    # RFC 7748 section 6.1
    alice = X25519KeyPair.from_private_bytes(
        bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
    )
    bob_public = bytes.fromhex("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f")
    assert alice.public_bytes.hex() == (
        "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
    )
    assert alice.exchange(bob_public).hex() == (
        "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742"
    )
    with pytest.raises(InvalidKey):
        alice.exchange(b"\x00" * 32)  # low-order point
    with pytest.raises(InvalidKey):
        X25519KeyPair.from_private_bytes(b"short")


def test_proof_of_possession_binds_key_account_chain_and_registry():
    ident = Identity.generate()
    registry = "0x" + "22" * 20
    pop = ident.proof_of_possession(1337, registry)
    verify_proof_of_possession(1337, registry, ident.address, ident.x25519.public_bytes, pop)
    other = X25519KeyPair.generate().public_bytes
    for args in [
        (31337, registry, ident.address, ident.x25519.public_bytes),
        (1337, "0x" + "33" * 20, ident.address, ident.x25519.public_bytes),
        (1337, registry, Identity.generate().address, ident.x25519.public_bytes),
        (1337, registry, ident.address, other),
    ]:
        with pytest.raises(InvalidSignature):
            verify_proof_of_possession(*args, pop)


def test_digest_signatures_are_eth_accounts_own():
    """libsecp256k1 signs here; eth-account's signature of the same hash is byte-equal
    (deterministic nonces, low s, v in {27, 28}) over many digests."""
    key = AccountKey.from_bytes(DEV_KEY)
    half_n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141 // 2
    for i in range(64):
        digest = keccak256(i.to_bytes(4, "big"))
        sig = key.sign_digest(digest)
        assert sig == bytes(Account.unsafe_sign_hash(digest, DEV_KEY).signature)
        assert int.from_bytes(sig[32:64], "big") <= half_n and sig[64] in (27, 28)
        assert recover_address(digest, sig) == key.address


def test_malleable_and_malformed_signatures_are_refused():
    key = AccountKey.generate()
    digest = keccak256(b"message")
    sig = key.sign_digest(digest)
    assert recover_address(digest, sig) == key.address
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    s = int.from_bytes(sig[32:64], "big")
    twin = sig[:32] + (n - s).to_bytes(32, "big") + bytes([55 - sig[64]])
    for bad in [twin, sig[:64], sig[:64] + b"\x05", b"\x00" * 65]:
        with pytest.raises(InvalidSignature):
            recover_address(digest, bad)


def test_round_commitment_digest_matches_eth_account_reference():
    commitment = keccak256(b"update")
    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "RoundCommitment": [
                {"name": "jobId", "type": "uint256"},
                {"name": "round", "type": "uint256"},
                {"name": "commitment", "type": "bytes32"},
            ],
        },
        "primaryType": "RoundCommitment",
        "domain": {"name": "chainml", "version": "1", "chainId": 1337, "verifyingContract": JOBS},
        "message": {"jobId": 7, "round": 3, "commitment": commitment},
    }
    reference = Account.sign_message(encode_typed_data(full_message=typed), DEV_KEY)
    ours = round_commitment_digest(1337, JOBS, 7, 3, commitment)
    assert ours == bytes(reference.message_hash)
    key = AccountKey.from_bytes(DEV_KEY)
    sig = sign_round_commitment(key, 1337, JOBS, 7, 3, commitment)
    assert sig == bytes(reference.signature)
    verify_round_commitment(key.address, sig, 1337, JOBS, 7, 3, commitment)
    with pytest.raises(InvalidSignature):
        verify_round_commitment(key.address, sig, 1337, JOBS, 7, 4, commitment)
