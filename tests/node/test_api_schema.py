"""The published OpenAPI document is the one the code serves."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path

from chainml.node.api import Guard, create_app
from chainml.node.envelope import Banned, Undecryptable
from chainml.node.roles import provider
from chainml.node.schema import openapi_schema

PUBLISHED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_published_schema_matches_the_code():
    assert json.loads(PUBLISHED.read_text()) == openapi_schema(), (
        "regenerate: python -m chainml.node.schema > docs/openapi.json"
    )


def test_schema_is_versioned():
    paths = openapi_schema()["paths"]
    assert set(paths) == {
        "/v1/status",
        "/v1/envelopes",
        "/v1/keys/release",
        "/v1/alerts",
        "/v1/infer",
        "/v1/infer/he",
        "/v1/infer/model",
        "/v1/receipts/batches/{batch_id}",
    }
    assert {"200", "400", "401", "403", "404", "409"} <= set(
        paths["/v1/keys/release"]["post"]["responses"]
    )
    assert "202" in paths["/v1/envelopes"]["post"]["responses"]
    assert {"400", "401", "403", "409", "413", "421", "429"} <= set(
        paths["/v1/envelopes"]["post"]["responses"]
    )


def test_every_route_documents_every_status_it_answers_and_its_body():
    schema = openapi_schema()
    for path, item in schema["paths"].items():
        for method, op in item.items():
            statuses = set(op["responses"])
            # the gate answers these on any route; FastAPI's 422 is never answered
            assert {"429", "500", "503"} <= statuses, (method, path)
            assert "422" not in statuses, (method, path)
            if method == "post":
                assert {"408", "413"} <= statuses, path
                body = op["requestBody"]["content"]
                (media,) = body
                if media == "application/json":
                    props = body[media]["schema"]["properties"]
                    assert body[media]["schema"]["additionalProperties"] is False
                    assert all("type" in p for p in props.values()), path
    envelope = schema["paths"]["/v1/envelopes"]["post"]["requestBody"]["content"]
    assert list(envelope["application/json"]["schema"]["properties"]) == [
        "v",
        "sender",
        "recipient",
        "purpose",
        "job_id",
        "round",
        "timestamp",
        "nonce",
        "payload",
        "signature",
    ]


class _Receiver:
    """Stands in for EnvelopeReceiver: refuses every envelope as a signer would be."""

    max_wire_size = 1 << 16
    identity = None

    def __init__(self, error):
        self.error = error
        self.rejections = Counter()
        self.accepted = 0

    def open(self, raw, banned):
        if banned(self.error.sender):
            err = Banned("banned")
            err.sender = self.error.sender
            raise err
        raise self.error


def _post(app, path: str, body: bytes, client: tuple[str, int]) -> tuple[int, dict]:
    """One request through the ASGI app, as uvicorn would pass it; the JSON answer."""
    status, raw = _post_raw(app, path, body, client)
    return status, json.loads(raw)


def test_undecryptable_payloads_ban_the_signer_not_the_address_it_came_from():
    """Only the holder of a key can sign an envelope whose payload does not open: that is
    pinned on the signer, from whichever address; the addresses are not banned."""
    signer = "0x" + "12" * 20
    error = Undecryptable("payload does not open")
    error.sender = signer
    guard = Guard.create(lambda: 1000.0, ban_after_refusals=3)
    app = create_app(_Receiver(error), guard=guard)
    answers = [
        _post(app, "/v1/envelopes", b"{}", (f"203.0.113.{i}", 1000))[1]["error"] for i in range(5)
    ]
    assert answers == ["undecryptable"] * 3 + ["banned"] * 2
    assert guard.limiter.is_banned(signer)
    assert not any(guard.limiter.is_banned(f"203.0.113.{i}") for i in range(5))


def test_routes_of_roles_a_node_does_not_hold_are_not_mounted():
    app = create_app(_Receiver(Undecryptable("x")))  # no guardian, no provider
    paths = set(app.openapi()["paths"])
    assert paths == {"/v1/status", "/v1/envelopes", "/v1/alerts"}


def test_an_unexpected_error_is_a_json_500_and_one_log_line_without_request_values(caplog):
    class Broken(_Receiver):
        def open(self, raw, banned):
            raise RuntimeError(f"cannot handle {raw!r}")  # quotes the request

    app = create_app(Broken(None))
    with caplog.at_level("ERROR", logger="chainml.node.api"):
        status, body = _post(app, "/v1/envelopes", b'{"secret":"5eb9a7"}', ("203.0.113.1", 1))
    assert (status, body["error"]) == (500, "internal")
    assert "5eb9a7" not in json.dumps(body)
    (record,) = [r for r in caplog.records if r.name == "chainml.node.api"]
    assert record.getMessage() == "internal error RuntimeError on /v1/envelopes"
    assert record.exc_info is None and "5eb9a7" not in caplog.text


def test_the_error_table_in_the_protocol_doc_is_the_code_s():
    """docs/protocol/http.md lists each route's error causes and statuses: the same as the
    code answers (and the schema documents)."""
    import re

    from chainml.node import api

    doc = (PUBLISHED.parent / "protocol" / "http.md").read_text()
    rows = {
        (route, cause, int(status))
        for route, cause, status in re.findall(
            r"^\| `([^`]+)` \| `(\w+)` \| (\d{3}) \|$", doc, re.M
        )
    }
    gate = {**api.GATE_STATUS, "timeout": 408, "oversized": 413}
    expected = {
        "POST /v1/envelopes": {**api.STATUS_BY_CAUSE, **gate},
        "POST /v1/keys/release": {
            **{api.snake_case(n): s for n, s in api.RELEASE_STATUS.items()},
            **gate,
            "banned": 429,
        },
        "POST /v1/infer, /v1/infer/he": {
            **{c.cause: c.status for c in api.inference_refusals()},
            **gate,
            "no_model": 503,
            "banned": 429,
        },
    }
    for route, causes in expected.items():
        assert {(c, s) for r, c, s in rows if r == route} == set(causes.items()), route
    # and the schema lists every one of those statuses on its route
    paths = openapi_schema()["paths"]
    for route, causes in expected.items():
        method, path = route.split()[0].lower(), route.split()[1].rstrip(",")
        assert {str(s) for s in causes.values()} <= set(paths[path][method]["responses"]), route


class _Service:
    """Stands in for the provider's InferenceService: answers b"ok" to a body that says
    "signed", refuses the rest as the real one refuses a forged request."""

    model = object()

    def max_request(self, mode):
        return 1 << 20

    def handle(self, body, modes):
        from chainml.inference.service import ForgedRequest

        if body != b"signed":
            raise ForgedRequest("not signed by the client it names")
        return b"ok"


class _Provider:
    service = _Service()


def test_a_banned_peer_s_signed_inference_requests_are_served_and_nothing_else():
    guard = Guard.create(lambda: 1000.0)
    served = provider.routes(_Provider())  # type: ignore[arg-type]
    app = create_app(_Receiver(Undecryptable("x")), guard=guard, routes=[served])
    peer = ("203.0.113.5", 1000)
    assert _post(app, "/v1/infer", b"forged", peer)[1]["error"] == "bad_signature"
    guard.limiter.ban("203.0.113.5", "misbehaving")
    assert _post(app, "/v1/infer", b"forged", peer) == (429, _banned_body())
    status, _ = _post_raw(app, "/v1/infer", b"signed", peer)
    assert status == 200


def _banned_body():
    return {"error": "banned", "detail": "this peer is banned for a while"}


def _post_raw(app, path: str, body: bytes, client: tuple[str, int]) -> tuple[int, bytes]:
    """One request through the ASGI app, as uvicorn would pass it."""
    sent = []
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-length", str(len(body)).encode())],
        "client": client,
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])
