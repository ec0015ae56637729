"""The inference wire vectors of docs/protocol/inference.md, computed from their stated
inputs: the test checks the page's bytes against these and the code's decoders."""

from __future__ import annotations

from chainml.crypto.hashing import keccak256
from chainml.crypto.keys import AccountKey
from chainml.inference.receipts import Receipt
from chainml.inference.service import (
    RESPONSE_MAGIC,
    ZERO32,
    RequestHeader,
    _frame,
    encode_request,
    pack_batch_end,
    pack_part,
    parts_hash,
)

CLIENT_KEY = "4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
PROVIDER_KEY = "8da4ef21b864d2cc526dbdb2a120bd2874c36c9d0a1fb7f8c63d7f7a8b41de8f"
CHAIN_ID, RECEIPTS = 1337, "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB"
BODY = b"a plain body: sealed safetensors in real use"


def request() -> tuple[bytes, bytes]:
    """(the request frame, its request hash)."""
    from chainml.crypto.hashing import keccak256

    client = AccountKey.from_bytes(bytes.fromhex(CLIENT_KEY))
    provider = AccountKey.from_bytes(bytes.fromhex(PROVIDER_KEY))
    header = RequestHeader(
        client=client.address,
        provider=provider.address,
        model_version=3,
        mode="plain",
        key_set=bytes(32),
        reply_key=bytes(range(32)),
        timestamp=1_800_000_000,
        nonce=bytes(range(32, 64)),
        body_hash=keccak256(BODY),
    )
    digest = header.digest(CHAIN_ID, RECEIPTS)
    return encode_request(header, client.sign_digest(digest), BODY), digest


def response() -> tuple[bytes, bytes]:
    """(a response frame carrying the provider's receipt for that request, the receipt's
    digest)."""
    provider = AccountKey.from_bytes(bytes.fromhex(PROVIDER_KEY))
    client = AccountKey.from_bytes(bytes.fromhex(CLIENT_KEY))
    _, request_hash = request()
    receipt = Receipt(
        provider.address,
        client.address,
        3,
        request_hash,
        b"\x42" * 32,
        10**18 + 1,
        7,
    ).signed(provider, CHAIN_ID, RECEIPTS)
    return _frame(RESPONSE_MAGIC, receipt.to_doc(), b"answer"), receipt.digest(CHAIN_ID, RECEIPTS)


def batch_parts() -> dict[str, bytes]:
    """A batch of four features sent in parts: two ``he-part`` bodies (features 0–1, then
    2), the running hash after each, and the ``he-batch-end`` body (feature 3); the
    ciphertexts are stand-ins, the ASCII bytes ``ct-0`` … ``ct-3``."""
    part1 = pack_part(0, [b"ct-0", b"ct-1"])
    hash1 = parts_hash(ZERO32, keccak256(part1))
    part2 = pack_part(2, [b"ct-2"])
    hash2 = parts_hash(hash1, keccak256(part2))
    end = pack_batch_end(hash2, 3, [b"ct-3"])
    return {"part-1": part1, "parts-1": hash1, "part-2": part2, "parts-2": hash2, "end": end}


if __name__ == "__main__":
    raw, digest = request()
    print(repr(raw), digest.hex())
    raw, digest = response()
    print(repr(raw), digest.hex())
    for name, value in batch_parts().items():
        print(name, value.hex())
