"""The node's HTTP API (FastAPI), versioned under ``/v1``, with Prometheus ``/metrics``.

``POST /v1/envelopes`` takes an envelope's wire bytes and answers 202 when it was accepted
or a JSON error ``{"error": cause, "detail": ...}`` with a status per cause.  The OpenAPI
schema is published at ``/openapi.json`` and committed as ``docs/openapi.json``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from typing import Any

from fastapi import FastAPI, Request
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

from chainml import __version__
from chainml.errors import ChainmlError
from chainml.node.envelope import CAUSES, EnvelopeReceiver, Opened, Rejected
from chainml.node.ids import Alerts, PeerScore, RateLimiter
from chainml.storage.access import (
    AccessError,
    ForgedRequest,
    Guardian,
    KeyRequest,
    MalformedBundle,
    ReplayedRequest,
)

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
}


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


def create_app(
    receiver: EnvelopeReceiver,
    *,
    on_message: Callable[[Opened], None] = lambda opened: None,
    metrics: Metrics | None = None,
    guard: Guard | None = None,
    dashboard: Callable[[], str] | None = None,
    on_scrape: Callable[[Metrics], None] = lambda metrics: None,
    guardian: Guardian | None = None,
    provider: Any = None,
) -> FastAPI:
    import time

    metrics = metrics or Metrics()
    guard = guard or Guard.create(time.time)
    app = FastAPI(title="chainml node", version=__version__, openapi_url="/openapi.json")

    @app.middleware("http")
    async def limit_and_count(request: Request, call_next: Any) -> Any:
        peer = request.client.host if request.client else "unknown"
        if request.url.path != "/metrics" and not guard.limiter.allow(peer):
            metrics.requests.labels(path="other").inc()
            return _refuse(metrics, receiver, "rate_limited", "too many requests")
        response = await call_next(request)
        route = request.scope.get("route")  # the template the router matched, if any
        metrics.requests.labels(path=getattr(route, "path", "other")).inc()
        return response

    @app.get("/v1/status", response_model=Status)
    def status() -> Status:
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
        responses={code: {"model": ErrorBody} for code in sorted(set(STATUS_BY_CAUSE.values()))},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    )
    async def post_envelope(request: Request) -> Any:
        body = await _read_body(request, receiver.max_wire_size)
        if body is None:
            return _refuse(metrics, receiver, "oversized", "request body over the limit")
        try:
            opened = receiver.open(body)
        except Rejected as exc:
            metrics.rejected.labels(cause=exc.cause).inc()
            guard.score.refused(request.client.host if request.client else "unknown", exc.cause)
            return JSONResponse(
                {"error": exc.cause, "detail": str(exc)}, status_code=STATUS_BY_CAUSE[exc.cause]
            )
        metrics.accepted.inc()
        on_message(opened)
        h = opened.header
        return Accepted(sender=h.sender, purpose=h.purpose, job_id=h.job_id, round=h.round)

    @app.post(
        "/v1/keys/release",
        response_model=KeyReleaseOut,
        responses={code: {"model": ErrorBody} for code in sorted(set(RELEASE_STATUS.values()))},
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"type": "object"}}},
            }
        },
    )
    async def release_key(request: Request) -> Any:
        """Key guardian: this node's share of a grant's key, sealed to the grantee."""
        peer = request.client.host if request.client else "unknown"
        if guardian is None:
            return JSONResponse(
                {"error": "not_a_guardian", "detail": "this node guards no keys"}, status_code=404
            )
        body = await request.body()
        try:
            if len(body) > MAX_KEY_REQUEST:
                raise MalformedBundle("request body over the limit")
            release = guardian.release(KeyRequest.decode(body))
        except AccessError as exc:
            cause = _snake(type(exc).__name__)
            metrics.rejected.labels(cause=cause).inc()
            if isinstance(exc, (ForgedRequest, ReplayedRequest, MalformedBundle)):
                guard.score.refused(peer, cause)
            return JSONResponse(
                {"error": cause, "detail": str(exc)},
                status_code=RELEASE_STATUS.get(type(exc).__name__, 403),
            )
        return KeyReleaseOut(
            guardian=release.guardian,
            index=release.index,
            sealed_share=release.sealed_share.hex(),
            signature=release.signature.hex(),
        )

    _inference_routes(app, provider, metrics, guard)

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

    @app.get("/v1/alerts", response_model=list[AlertOut])
    def alerts() -> list[AlertOut]:
        return [AlertOut(**a.__dict__) for a in guard.all_alerts()]

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        for kind, count in guard.counts().items():
            metrics.alerts.labels(kind=kind).set(count)
        on_scrape(metrics)
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _inference_routes(app: FastAPI, provider: Any, metrics: Metrics, guard: Guard) -> None:
    """``/v1/infer`` (plain), ``/v1/infer/he`` (CKKS), the served model, and the receipts
    listed for each posted batch.  ``provider`` is the node's ``ProviderRole`` or None."""
    from starlette.concurrency import run_in_threadpool

    from chainml.inference.service import CAUSES, InferenceRefused, OversizedRequest

    for cause in CAUSES:
        for mode in ("plain", "he"):
            metrics.inference.labels(mode=mode, outcome=cause)
    binary = {
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        },
        "responses": {
            "200": {
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                }
            }
        },
    }

    def unavailable() -> JSONResponse:
        return JSONResponse(
            {"error": "no_model", "detail": "this node serves no model (yet)"}, status_code=503
        )

    async def serve(request: Request, label: str, modes: tuple[str, ...]) -> Response:
        if provider is None or provider.service.model is None:
            return unavailable()
        started = time.perf_counter()
        peer = request.client.host if request.client else "unknown"
        body = await _read_body(request, max(provider.service.max_request(m) for m in modes))
        try:
            if body is None:
                raise OversizedRequest("request body over the limit")
            answer = await run_in_threadpool(provider.service.handle, body, modes)
        except InferenceRefused as exc:
            metrics.inference.labels(mode=label, outcome=exc.cause).inc()
            guard.score.refused(peer, exc.cause)
            return JSONResponse({"error": exc.cause, "detail": str(exc)}, status_code=exc.status)
        metrics.inference.labels(mode=label, outcome="ok").inc()
        metrics.inference_seconds.labels(mode=label).observe(time.perf_counter() - started)
        return Response(answer, media_type="application/octet-stream")

    @app.get("/v1/infer/model", responses={503: {"model": ErrorBody}})
    def served_model() -> Any:
        """The model this provider serves: version, prices, its CKKS plan's shape."""
        info = provider.info() if provider is not None else None
        return info if info is not None else unavailable()

    @app.post("/v1/infer", openapi_extra=binary, responses={503: {"model": ErrorBody}})
    async def infer_plain(request: Request) -> Response:
        """A plain request: input sealed to this node, answer sealed to the client."""
        return await serve(request, "plain", ("plain",))

    @app.post("/v1/infer/he", openapi_extra=binary, responses={503: {"model": ErrorBody}})
    async def infer_he(request: Request) -> Response:
        """CKKS: evaluation keys (he-keys), one query (he) or a batch (he-batch)."""
        return await serve(request, "he", ("he-keys", "he", "he-batch"))

    @app.get("/v1/receipts/batches/{batch_id}", responses={404: {"model": ErrorBody}})
    def batch_listing(batch_id: int) -> Any:
        """The receipts this provider billed in a batch it posted on chain."""
        listed = provider.listing(batch_id) if provider is not None else []
        if not listed:
            return JSONResponse(
                {"error": "unknown_batch", "detail": "no receipts listed for that batch"},
                status_code=404,
            )
        return [r.to_doc() for r in listed]


MAX_KEY_REQUEST = 4096


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request's body, read no further than ``limit`` bytes (None past it)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


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


def _snake(name: str) -> str:
    return "".join("_" + c.lower() if c.isupper() else c for c in name).lstrip("_")


class KeyReleaseOut(BaseModel):
    guardian: str
    index: int
    sealed_share: str
    signature: str


def _refuse(metrics: Metrics, receiver: EnvelopeReceiver, cause: str, detail: str) -> JSONResponse:
    if cause != "rate_limited":
        receiver.rejections[cause] += 1
    metrics.rejected.labels(cause=cause).inc()
    return JSONResponse({"error": cause, "detail": detail}, status_code=STATUS_BY_CAUSE[cause])


def openapi_schema() -> dict[str, Any]:
    """The API's OpenAPI document (routes only; no node behind it)."""
    from typing import cast

    return create_app(cast(EnvelopeReceiver, None)).openapi()


if __name__ == "__main__":
    import json
    import sys

    json.dump(openapi_schema(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
