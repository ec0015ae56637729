"""Each EIP-712 struct chainml signs (``chainml.crypto.eip712``), hashed by chainml and by
``eth_account.messages.encode_typed_data`` over random values: the same digest; and the
modules that sign use those declarations (their digests equal the struct's)."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account.messages import _hash_eip191_message, encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from chainml.crypto import eip712

addresses = st.binary(min_size=20, max_size=20).map(lambda b: "0x" + b.hex())


def value(kind: str) -> st.SearchStrategy[Any]:
    if kind == "address":
        return addresses
    if kind == "bytes32":
        return st.binary(min_size=32, max_size=32)
    if kind == "string":
        return st.text(max_size=40)
    if kind == "bytes":
        return st.binary(max_size=64)
    if kind == "bool":
        return st.booleans()
    return st.integers(0, (1 << int(kind[4:])) - 1)


@pytest.mark.parametrize("struct", eip712.STRUCTS, ids=lambda s: s.name)
@settings(max_examples=30, deadline=None)
@given(data=st.data(), chain_id=st.integers(1, 2**64), contract=addresses)
def test_each_struct_hashes_as_eth_account_does(
    struct: eip712.Struct, data: st.DataObject, chain_id: int, contract: str
) -> None:
    values = [data.draw(value(kind)) for kind, _ in struct.fields]
    message = {
        "types": {
            "EIP712Domain": [{"name": n, "type": t} for t, n in eip712.DOMAIN.fields],
            struct.name: [{"name": n, "type": t} for t, n in struct.fields],
        },
        "primaryType": struct.name,
        "domain": {
            "name": struct.domain,
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": contract,
        },
        "message": {n: v for (_, n), v in zip(struct.fields, values, strict=True)},
    }
    expected = _hash_eip191_message(encode_typed_data(full_message=message))
    assert struct.digest(chain_id, contract, *values) == expected


@pytest.mark.parametrize(
    ("kind", "bad"),
    [
        ("uint64", 1 << 64),
        ("uint256", -1),
        ("uint256", True),
        ("bytes32", b"\0" * 31),
        ("address", "0x" + "00" * 19),
        ("address", "0xzz" + "00" * 19),
        ("string", b"bytes"),
    ],
)
def test_a_value_out_of_its_type_is_refused(kind: str, bad: object) -> None:
    struct = eip712.Struct("T", ((kind, "x"),))
    with pytest.raises(ValueError, match="x is not"):
        struct.hash(bad)


def test_every_signing_module_uses_the_declarations() -> None:
    """A few call sites computed through their own functions and through the struct."""
    from chainml.crypto.signing import round_commitment_digest
    from chainml.inference.receipts import Receipt

    jobs, provider, client = ("0x" + f"{i:02x}" * 20 for i in (1, 2, 3))
    c = b"\x07" * 32
    assert round_commitment_digest(5, jobs, 3, 2, c) == eip712.ROUND_COMMITMENT.digest(
        5, jobs, 3, 2, c
    )
    receipt = Receipt(provider, client, 9, b"\1" * 32, b"\2" * 32, 10, 1, b"")
    assert receipt.digest(5, jobs) == eip712.RECEIPT.digest(
        5, jobs, provider, client, 9, b"\1" * 32, b"\2" * 32, 10, 1
    )
