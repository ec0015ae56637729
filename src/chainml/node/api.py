"""The node's HTTP API (FastAPI), versioned under ``/v1``, with Prometheus ``/metrics``.

``POST /v1/envelopes`` takes an envelope's wire bytes and answers 202 when it was accepted
or a JSON error ``{"error": cause, "detail": ...}`` with a status per cause.  Every error
the API answers has that shape and a status listed in the OpenAPI schema, which is
published at ``/openapi.json`` and committed as ``docs/openapi.json``.

Hostile input is refused as early and as cheaply as it can be (``Gate``):

* per peer and overall: a rate limit (token buckets, bans), a limit on requests in flight,
  and a budget of request-body bytes held in memory at once;
* bodies are read from the stream against the route's cap (a declared ``Content-Length``
  over it is refused before a byte is read; the connection is closed after a refusal,
  so nothing past the cap is read), and within ``body_timeout`` seconds;
* request headers must arrive within ``header_timeout`` seconds (``guarded_h11``);
* parsing, signature recovery and HPKE run in a small worker pool, never on the event loop;
  when the pool's queue is full the answer is 503 ``busy``;
* an unexpected exception is answered as 500 ``internal`` in the same JSON shape and logged
  as one line naming its type and route, never the request's values.

A peer is its address; a loopback client is each of its connections (local processes —
the CLI, other local nodes — must not lock each other out); behind a configured trusted
proxy, the address the proxy puts in its forwarding header.  Misbehaviour that only a
valid signature can commit (an undecryptable payload) is pinned on the signer, the rest on
the peer; a banned peer's signed requests are still judged on their signatures, so a
flooder sharing an address with a staked peer cannot lock it out.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
import time
from collections import Counter as Tally
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from html import escape
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.h11_impl import H11Protocol

from chainml import __version__
from chainml.errors import ChainmlError
from chainml.inference import service
from chainml.node.envelope import CAUSES, EnvelopeReceiver, Opened, Rejected
from chainml.node.ids import Alerts, HttpLimits, PeerScore, RateLimiter, peer_of

STATUS_BY_CAUSE = {
    "malformed": 400,
    "undecryptable": 400,
    "stale": 400,
    "bad_signature": 401,
    "unknown_sender": 403,
    "unstaked": 403,
    "replayed": 409,
    "oversized": 413,
    "wrong_recipient": 421,
    "rate_limited": 429,
    "banned": 429,
}
# refused by the gate before a route sees the request, on any route
GATE_STATUS = {"rate_limited": 429, "busy": 503, "timeout": 408, "internal": 500}
# pinned on the signer: only the holder of the key can make them
SIGNER_CAUSES = frozenset({"undecryptable"})
SIGNED_PATHS = frozenset({"/v1/envelopes", "/v1/keys/release", "/v1/infer", "/v1/infer/he"})
# an inference request refused for these was not (yet) found to carry its client's signature
UNSIGNED_INFERENCE = frozenset(
    {"malformed", "oversized", "wrong_provider", "wrong_model", "stale", "bad_signature"}
)
log = logging.getLogger("chainml.node.api")


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "chainml_requests", "HTTP requests by path", ["path"], registry=self.registry
        )
        self.accepted = Counter(
            "chainml_envelopes_accepted", "Envelopes accepted", registry=self.registry
        )
        self.rejected = Counter(
            "chainml_envelopes_rejected",
            "Envelopes refused, by cause",
            ["cause"],
            registry=self.registry,
        )
        for cause in CAUSES:
            self.rejected.labels(cause=cause)
        self.head_lag = Gauge(
            "chainml_chain_head_lag_blocks",
            "Blocks between the chain head and the node's cursor",
            registry=self.registry,
        )
        self.peers = Gauge(
            "chainml_peers", "Registered parties known to the node", registry=self.registry
        )
        self.round_seconds = Histogram(
            "chainml_round_seconds",
            "Training rounds this node took part in, start to end, by role and outcome",
            ["role", "outcome"],
            buckets=(0.5, 1, 2, 5, 10, 20, 60, 120, 300),
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "chainml_secagg_stage_seconds",
            "Secure-aggregation stages at the aggregator, by stage",
            ["stage"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30),
            registry=self.registry,
        )
        self.inference = Counter(
            "chainml_inference_requests",
            "Inference requests by mode and outcome (ok, or the refusal's cause)",
            ["mode", "outcome"],
            registry=self.registry,
        )
        self.inference_seconds = Histogram(
            "chainml_inference_seconds",
            "Inference requests answered, by mode, from body received to answer",
            ["mode"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
            registry=self.registry,
        )
        self.alerts = Gauge(
            "chainml_alerts",
            "Intrusion-detection alerts raised, by kind",
            ["kind"],
            registry=self.registry,
        )
        self.job_epsilon = Gauge(
            "chainml_job_epsilon",
            "Differential privacy spent by a job this node aggregates: its epsilon at the "
            "job's dp_delta after the rounds on chain (Renyi-DP accountant), by job",
            ["job"],
            registry=self.registry,
        )
        self.refused = Counter(
            "chainml_http_refused",
            "Requests refused before or while their body was read, by cause",
            ["cause"],
            registry=self.registry,
        )
        for cause in (*GATE_STATUS, "oversized", "malformed", "disconnected"):
            self.refused.labels(cause=cause)


class Accepted(BaseModel):
    sender: str
    purpose: str
    job_id: int
    round: int


class ErrorBody(BaseModel):
    error: str
    detail: str


class AlertOut(BaseModel):
    kind: str
    subject: str
    detail: str
    at: float


@dataclass
class Guard:
    """The intrusion-detection parts the API consults on every request."""

    alerts: Alerts
    limiter: RateLimiter
    score: PeerScore
    others: list[Alerts] = field(default_factory=list)  # e.g. the chain monitor's

    def all_alerts(self) -> list[Any]:
        every = [a for src in (self.alerts, *self.others) for a in src.recent]
        return sorted(every, key=lambda a: a.at)

    def counts(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for src in (self.alerts, *self.others):
            for kind, n in src.counts.items():
                total[kind] = total.get(kind, 0) + n
        return total

    @classmethod
    def create(
        cls,
        clock: Any,
        *,
        per_peer: float = 50,
        overall: float = 500,
        ban_after_refusals: int = 20,
    ) -> Guard:
        alerts = Alerts(clock)
        limiter = RateLimiter(clock, alerts, per_peer=per_peer, overall=overall)
        return cls(alerts, limiter, PeerScore(limiter, threshold=ban_after_refusals))


class Status(BaseModel):
    version: str
    address: str
    chain_id: int
    registry: str
    accepted: int
    rejected: dict[str, int]


class Refusal(Exception):
    """A request refused by the gate or while its body was read."""

    def __init__(self, cause: str, status: int, detail: str, *, close: bool = False) -> None:
        super().__init__(detail)
        self.cause, self.status, self.detail, self.close = cause, status, detail, close


class _BodyTimeout(Exception):
    pass


def error_response(
    cause: str, detail: str, status: int, *, close: bool = False, retry: bool = False
) -> JSONResponse:
    headers = {}
    if close:
        headers["connection"] = "close"
    if retry:
        headers["retry-after"] = "1"
    return JSONResponse({"error": cause, "detail": detail}, status_code=status, headers=headers)


class Gate:
    """Limits, budgets and the worker pools of one app (see the module's docstring)."""

    def __init__(self, limits: HttpLimits, guard: Guard, metrics: Metrics) -> None:
        self.limits = limits
        self.guard = guard
        self.metrics = metrics
        self.in_flight: Tally[str] = Tally()
        self.total = 0
        self.buffered = 0
        self.pending = 0
        self.verify_pool = ThreadPoolExecutor(limits.workers, thread_name_prefix="verify")
        self.infer_pool = ThreadPoolExecutor(limits.inference_workers, thread_name_prefix="infer")

    def refuse(self, cause: str) -> None:
        self.metrics.refused.labels(cause=cause).inc()

    async def read_body(
        self,
        request: Request,
        limit: int,
        refine: Callable[[bytes], int | None] | None = None,
    ) -> bytes:
        """The body, read from the stream no further than ``limit`` bytes and within the
        node's byte budget; raises ``Refusal``.  ``refine(prefix)`` may lower the limit
        once the body's first bytes say what it is (None: not yet known)."""
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or len(declared) > 20):
            raise Refusal("malformed", 400, "bad Content-Length", close=True)
        length = int(declared) if declared is not None else None
        if length is not None and length > limit:
            raise Refusal("oversized", 413, f"request body over {limit} bytes", close=True)
        state = request.scope.setdefault("state", {})
        body = bytearray()
        async for chunk in request.stream():
            if len(body) + len(chunk) > limit:
                raise Refusal("oversized", 413, f"request body over {limit} bytes", close=True)
            if self.buffered + len(chunk) > self.limits.max_buffered:
                raise Refusal("busy", 503, "the node holds too many request bodies", close=True)
            self.buffered += len(chunk)
            state["chainml_buffered"] = state.get("chainml_buffered", 0) + len(chunk)
            body += chunk
            if refine is not None:
                tighter = refine(bytes(body[:FRAME_PREFIX]))
                if tighter is not None:
                    refine, limit = None, min(limit, tighter)
                    if len(body) > limit or (length is not None and length > limit):
                        raise Refusal(
                            "oversized", 413, f"request body over {limit} bytes", close=True
                        )
        return bytes(body)

    async def run(self, pool: ThreadPoolExecutor, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` on a worker of ``pool``, or 503 ``busy`` when too many wait."""
        if self.pending >= self.limits.workers + self.limits.queue:
            raise Refusal("busy", 503, "too many requests waiting for a worker", close=True)
        self.pending += 1
        try:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(pool, functools.partial(fn, *args))
        finally:
            self.pending -= 1

    def middleware(self, app: Any) -> Any:
        """The ASGI wrapper: limits first, then the app with a timed ``receive``; any
        exception the app lets out becomes a JSON answer and one log line."""
        limits, guard, metrics = self.limits, self.guard, self.metrics

        async def gated(scope: dict[str, Any], receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            peer = peer_of(scope, limits)
            scope.setdefault("state", {})["chainml_peer"] = peer
            path = scope["path"]
            started = False

            async def answer(response: Response) -> None:
                await response(scope, receive, send)

            signed = path in SIGNED_PATHS
            # a refused request's unread body would be drained to keep the connection:
            # close it instead (a GET keeps its connection, and with it its peer's bucket)
            has_body = any(
                k in (b"content-length", b"transfer-encoding") for k, _ in scope["headers"]
            )
            if path != "/metrics" and not guard.limiter.allow(peer, ignore_ban=signed):
                self.refuse("rate_limited")
                metrics.requests.labels(path="other").inc()
                await answer(
                    error_response("rate_limited", "too many requests", 429, close=has_body)
                )
                return
            # the overall limit guards memory and the workers: requests with no body (the
            # status page, metrics) are not held back by others' uploads
            if (has_body and self.total >= limits.max_in_flight) or (
                self.in_flight[peer] >= limits.max_in_flight_per_peer
            ):
                self.refuse("busy")
                metrics.requests.labels(path="other").inc()
                await answer(
                    error_response(
                        "busy", "too many requests in flight", 503, close=has_body, retry=True
                    )
                )
                return
            self.total += has_body
            self.in_flight[peer] += 1
            loop = asyncio.get_running_loop()
            deadline = loop.time() + limits.body_timeout

            async def timed_receive() -> Any:
                try:
                    return await asyncio.wait_for(receive(), max(deadline - loop.time(), 0.001))
                except TimeoutError:
                    raise _BodyTimeout from None

            async def watched_send(message: Mapping[str, Any]) -> None:
                nonlocal started
                if message["type"] == "http.response.start":
                    started = True
                await send(message)

            try:
                await app(scope, timed_receive, watched_send)
            except _BodyTimeout:
                self.refuse("timeout")
                if not started:
                    await answer(
                        error_response("timeout", "request body too slow", 408, close=True)
                    )
            except ClientDisconnect:
                self.refuse("disconnected")
            except Exception as exc:  # noqa: BLE001 (answered and logged, never raised on)
                self.refuse("internal")
                route = getattr(scope.get("route"), "path", "unmatched")
                # the type and route only: an exception's text may quote the request
                log.error("internal error %s on %s", type(exc).__name__, route)
                if not started:
                    await answer(error_response("internal", "internal error", 500, close=True))
            finally:
                self.total -= has_body
                self.in_flight[peer] -= 1
                if self.in_flight[peer] <= 0:
                    del self.in_flight[peer]
                self.buffered -= scope["state"].pop("chainml_buffered", 0)
                route = scope.get("route")
                metrics.requests.labels(path=getattr(route, "path", "other")).inc()

        return gated


@dataclass(frozen=True)
class ApiContext:
    """What a role's routes share with the app: the gate that reads and caps bodies and
    runs work off the event loop, the guard that scores and bans peers, the metrics."""

    gate: Gate
    guard: Guard
    metrics: Metrics


Routes = Callable[[ApiContext], APIRouter]  # a role's routes, built for one app


def banned_response() -> JSONResponse:
    return error_response("banned", "this peer is banned for a while", 429)


FRAME_PREFIX = 8 + 4096  # what ``refine`` is shown: an inference frame's length and header


def request_peer(request: Request) -> str:
    return str(request.scope.get("state", {}).get("chainml_peer", "unknown"))


def body_schema(schema: dict[str, Any], media: str = "application/json") -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {media: {"schema": schema}}}}


def error_responses(*causes: str) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses: each status with the causes it carries."""
    by_status: dict[int, list[str]] = {}
    for cause in causes:
        status = {**STATUS_BY_CAUSE, **GATE_STATUS, **_EXTRA_STATUS}[cause]
        by_status.setdefault(status, []).append(cause)
    return {
        status: {"model": ErrorBody, "description": "error: " + ", ".join(sorted(set(names)))}
        for status, names in sorted(by_status.items())
    }


_EXTRA_STATUS = {
    "not_found": 404,
    "malformed_bundle": 400,
    "forged_request": 401,
    "stale_request": 401,
    "not_grantee": 403,
    "grant_revoked": 403,
    "grant_expired": 403,
    "unknown_party": 403,
    "unknown_grant": 404,
    "not_a_guardian": 404,
    "replayed_request": 409,
    "no_model": 503,
    "unknown_batch": 404,
    "method_not_allowed": 405,
}
GATE_CAUSES = ("rate_limited", "busy", "internal")
BODY_CAUSES = (*GATE_CAUSES, "timeout", "oversized")


def _hex_string(size: int) -> dict[str, Any]:
    return {"type": "string", "pattern": f"^[0-9a-f]{{{2 * size}}}$"}


_ADDRESS = {"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$", "description": "EIP-55"}
_UINT = {"type": "integer", "minimum": 0}
# padded, with zero unused bits: the one base64 spelling of a byte string
_BASE64 = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$"
ENVELOPE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "An envelope in its canonical wire form (docs/protocol/wire.md): no "
    "whitespace, these keys exactly once and in this order; any other spelling is refused.",
    "additionalProperties": False,
    "required": [
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
    ],
    "properties": {
        "v": {"type": "integer", "enum": [1]},
        "sender": _ADDRESS,
        "recipient": _ADDRESS,
        "purpose": {"type": "string", "pattern": r"^[ !#-\[\]-~]{1,64}$"},
        "job_id": {**_UINT, "maximum": 2**256 - 1},
        "round": {**_UINT, "maximum": 2**256 - 1},
        "timestamp": {**_UINT, "maximum": 2**64 - 1},
        "nonce": _hex_string(32),
        "payload": {"type": "string", "format": "byte", "pattern": _BASE64},
        "signature": _hex_string(65),
    },
}
KEY_REQUEST_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "A key request in its canonical wire form (docs/protocol/wire.md): no "
    "whitespace, these keys exactly once, sorted; at most 4,096 bytes.",
    "additionalProperties": False,
    "required": ["grant_id", "guardian", "nonce", "requester", "signature", "timestamp"],
    "properties": {
        "grant_id": {**_UINT, "maximum": 2**256 - 1},
        "guardian": _ADDRESS,
        "nonce": _hex_string(32),
        "requester": _ADDRESS,
        "signature": _hex_string(65),
        "timestamp": {**_UINT, "maximum": 2**64 - 1},
    },
}


def create_app(
    receiver: EnvelopeReceiver,
    *,
    on_message: Callable[[Opened], None] = lambda opened: None,
    metrics: Metrics | None = None,
    guard: Guard | None = None,
    dashboard: Callable[[], str] | None = None,
    on_scrape: Callable[[Metrics], None] = lambda metrics: None,
    routes: Sequence[Routes] = (),
    limits: HttpLimits | None = None,
) -> FastAPI:
    """The node's app: status, envelopes (handed to ``on_message``), alerts, metrics, the
    dashboard, and the routes of each role in ``routes`` (``chainml.node.roles``)."""
    metrics = metrics or Metrics()
    guard = guard or Guard.create(time.time)
    gate = Gate(limits or HttpLimits(), guard, metrics)
    app = FastAPI(title="chainml node", version=__version__, openapi_url="/openapi.json")
    app.state.gate = gate

    @app.exception_handler(Refusal)
    async def refused(request: Request, exc: Refusal) -> Response:
        gate.refuse(exc.cause)
        return error_response(
            exc.cause, exc.detail, exc.status, close=exc.close, retry=exc.status == 503
        )

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        gate.refuse("malformed")
        return error_response("malformed", "bad path or query parameter", 400)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        cause = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "malformed")
        answer = error_response(cause, str(exc.detail), exc.status_code)
        answer.headers.update(exc.headers or {})  # 405: Allow
        return answer

    @app.get("/v1/status", response_model=Status, responses=error_responses(*GATE_CAUSES))
    async def status() -> Status:
        return Status(
            version=__version__,
            address=receiver.identity.address,
            chain_id=receiver.chain_id,
            registry=receiver.registry,
            accepted=receiver.accepted,
            rejected=dict(receiver.rejections),
        )

    @app.post(
        "/v1/envelopes",
        status_code=202,
        response_model=Accepted,
        responses=error_responses(*STATUS_BY_CAUSE, *BODY_CAUSES),
        openapi_extra=body_schema(ENVELOPE_SCHEMA),
    )
    async def post_envelope(request: Request) -> Any:
        """An envelope for this node: 202 when accepted, else its cause."""
        peer = request_peer(request)
        try:
            body = await gate.read_body(request, receiver.max_wire_size)
        except Refusal as exc:
            if exc.cause == "oversized":
                receiver.rejections["oversized"] += 1
                metrics.rejected.labels(cause="oversized").inc()
            raise
        try:
            opened = await gate.run(gate.verify_pool, receiver.open, body, guard.limiter.is_banned)
        except Rejected as exc:
            metrics.rejected.labels(cause=exc.cause).inc()
            signer = exc.sender if exc.cause in SIGNER_CAUSES else None
            guard.score.refused(signer or peer, exc.cause)
            if exc.sender is None and guard.limiter.is_banned(peer):
                return banned_response()  # a banned peer is told so, whatever it sent
            return error_response(exc.cause, str(exc), STATUS_BY_CAUSE[exc.cause])
        metrics.accepted.inc()
        on_message(opened)
        h = opened.header
        return Accepted(sender=h.sender, purpose=h.purpose, job_id=h.job_id, round=h.round)

    context = ApiContext(gate, guard, metrics)
    for build in routes:  # each role's routes (chainml.node.roles)
        app.include_router(build(context))

    @app.get("/", include_in_schema=False)
    def page() -> Response:
        if dashboard is None:
            return HTMLResponse("<p>no dashboard on this node</p>", status_code=404)
        try:
            return HTMLResponse(dashboard())
        except ChainmlError as exc:
            return HTMLResponse(
                f"<h1>chain unreachable</h1><p>{escape(type(exc).__name__)}</p>", status_code=503
            )

    @app.get("/v1/alerts", response_model=list[AlertOut], responses=error_responses(*GATE_CAUSES))
    def alerts() -> list[AlertOut]:
        return [AlertOut(**a.__dict__) for a in guard.all_alerts()]

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        for kind, count in guard.counts().items():
            metrics.alerts.labels(kind=kind).set(count)
        on_scrape(metrics)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    app.add_middleware(_Wrap, gate=gate)
    _document(app)
    return app


class _Wrap:
    """Starlette middleware adapter for ``Gate.middleware``."""

    def __init__(self, app: Any, gate: Gate) -> None:
        self.call = gate.middleware(app)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.call(scope, receive, send)


def _document(app: FastAPI) -> None:
    """The served schema without FastAPI's 422 (validation errors are 400 ``malformed``
    here), every route with the gate's statuses."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        for item in schema.get("paths", {}).values():
            for op in item.values():
                responses = op.setdefault("responses", {})
                if responses.pop("422", None) is not None:
                    responses.setdefault(
                        "400",
                        {
                            "description": "error: malformed",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/ErrorBody"}
                                }
                            },
                        },
                    )
        for name in ("HTTPValidationError", "ValidationError"):
            schema.get("components", {}).get("schemas", {}).pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def inference_refusals() -> list[Any]:
    """Every refusal the inference service raises (its OpenAPI statuses)."""
    return [
        c
        for c in vars(service).values()
        if isinstance(c, type)
        and issubclass(c, service.InferenceRefused)
        and c is not service.InferenceRefused
    ]


_MODE = re.compile(rb'"mode":"([a-z-]{1,16})"')


def frame_mode(head: bytes) -> str | None:
    """The mode an inference request's frame header names, if it can be read cheaply (the
    service parses the header properly; this only picks the body cap)."""
    m = _MODE.search(head[8:])
    return m.group(1).decode() if m else None


MAX_KEY_REQUEST = 4096


RELEASE_STATUS = {
    "MalformedBundle": 400,
    "ForgedRequest": 401,
    "StaleRequest": 401,
    "NotGrantee": 403,
    "GrantRevoked": 403,
    "GrantExpired": 403,
    "UnknownParty": 403,
    "UnknownGrant": 404,
    "NotAGuardian": 404,
    "ReplayedRequest": 409,
}


def snake_case(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


class KeyReleaseOut(BaseModel):
    guardian: str
    index: int
    sealed_share: str
    signature: str


def guarded_h11(header_timeout: float, max_connections: int = 1 << 30) -> type:
    """uvicorn's h11 protocol, closing a connection whose request line and headers have not
    all arrived ``header_timeout`` seconds after it opened or after its last response
    (uvicorn has no such timeout: a client dribbling headers held a connection forever),
    and closing at once a connection past ``max_connections`` open ones (uvicorn's own
    limit answers a plain-text 503 to every request instead, its idle ones included)."""

    class GuardedH11(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout, self._headers_late)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_late(self) -> None:
            self._header_timer = None
            cycle = self.cycle
            if cycle is not None and not cycle.response_complete:
                return  # headers are in; the body's own timeout applies
            if not self.transport.is_closing():
                self.transport.close()

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.close()
                return
            self._arm()

        def data_received(self, data: bytes) -> None:
            before = self.cycle
            super().data_received(data)
            if self.cycle is not before:  # a new request's headers are complete
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return GuardedH11
