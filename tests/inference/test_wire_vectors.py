"""docs/protocol/inference.md against the code: the page's request header, request hash,
receipt header, receipt digest and batch root are what chainml computes from the stated
inputs; the decoders read them back; every refused spelling on the page is refused, and
so is a receipt whose price is a JSON number."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from chainml.inference.receipts import batch_root
from chainml.inference.service import (
    REQUEST_MAGIC,
    RESPONSE_MAGIC,
    BadResponse,
    MalformedRequest,
    decode_request,
    decode_response,
)
from tests.inference.inference_vectors import (
    BODY,
    CHAIN_ID,
    RECEIPTS,
    batch_parts,
    request,
    response,
)

PAGE = Path(__file__).resolve().parents[2] / "docs" / "protocol" / "inference.md"


def _blocks(kind: str) -> dict[str, bytes]:
    text = PAGE.read_text()
    pattern = rf"<!-- {kind}: ([\w-]+) -->\n(?:[^\n]*\n\n)?```text\n(.*?)\n```"
    return {m.group(1): m.group(2).encode() for m in re.finditer(pattern, text, re.S)}


def _frame(magic: bytes, head: bytes, body: bytes) -> bytes:
    return magic + struct.pack(">I", len(head)) + head + body


def test_the_page_s_vectors_are_the_code_s() -> None:
    page = _blocks("inference")
    raw, request_hash = request()
    assert raw == _frame(REQUEST_MAGIC, page["request-header"], BODY)
    assert request_hash.hex().encode() == page["request-hash"]
    header, signature, body = decode_request(raw)
    assert header.digest(CHAIN_ID, RECEIPTS) == request_hash and body == BODY
    answer, digest = response()
    assert answer == _frame(RESPONSE_MAGIC, page["response-header"], b"answer")
    assert digest.hex().encode() == page["receipt-digest"]
    receipt, _ = decode_response(answer)
    receipt.verify(CHAIN_ID, RECEIPTS)
    assert receipt.request_hash == request_hash
    assert batch_root([receipt]).hex().encode() == page["batch-root"]


def test_the_page_s_batch_parts_are_the_code_s() -> None:
    page = _blocks("inference")
    for name, value in batch_parts().items():
        assert value.hex().encode() == page[name], name


@pytest.mark.parametrize("name", list(_blocks("refused inference")))
def test_each_refused_spelling_is_refused(name: str) -> None:
    head = _blocks("refused inference")[name]
    with pytest.raises(MalformedRequest):
        decode_request(_frame(REQUEST_MAGIC, head, BODY))


def test_a_receipt_with_a_numeric_price_is_refused() -> None:
    head = _blocks("inference")["response-header"]
    numeric = re.sub(rb'"price":"(\d+)"', rb'"price":\1', head)
    assert numeric != head
    with pytest.raises(BadResponse):
        decode_response(_frame(RESPONSE_MAGIC, numeric, b"answer"))
