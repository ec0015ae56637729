"""schemathesis hooks for tests/node/test_hostile_schema.py (loaded through
SCHEMATHESIS_HOOKS): JSON bodies written as a chainml client writes them — compact, keys in
the wire order of docs/protocol/wire.md, addresses in EIP-55 case — so that schema-valid
data reaches the node's checks past the wire format instead of stopping at ``malformed``."""

from __future__ import annotations

import json
from typing import Any

import schemathesis
from eth_utils.address import is_hex_address, to_checksum_address
from schemathesis.transport.serialization import serialize_json

from chainml.node.api import ENVELOPE_SCHEMA, KEY_REQUEST_SCHEMA

ORDER = {
    "/v1/envelopes": ENVELOPE_SCHEMA["required"],
    "/v1/keys/release": KEY_REQUEST_SCHEMA["required"],
}


def _canonical(value: dict[str, Any], order: list[str]) -> dict[str, Any]:
    out = {}
    for key in order:
        if key in value:
            v = value[key]
            if isinstance(v, str) and is_hex_address(v):
                v = to_checksum_address(v)
            out[key] = v
    return out


@schemathesis.serializer("application/json")
def canonical_json(ctx: Any, value: Any) -> dict[str, Any]:
    order = ORDER.get(ctx.case.operation.path, [])
    if not isinstance(value, dict) or not order or set(value) - set(order):
        return serialize_json(value)  # negative data: sent as schemathesis writes it
    body = json.dumps(_canonical(value, order), separators=(",", ":"), ensure_ascii=False)
    return {"data": body.encode("utf-8"), "headers": {"Content-Type": "application/json"}}
