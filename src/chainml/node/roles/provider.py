"""The inference provider role: serves the model granted to this node, plain over a sealed
channel or homomorphically encrypted (``node.inference.ProviderRole``), with its routes
``/v1/infer``, ``/v1/infer/he``, ``/v1/infer/model`` and the receipts of each posted batch,
and a worker that loads the granted model and posts receipt batches."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from chainml.inference.service import CAUSES, FRAME, InferenceRefused
from chainml.ledger.bindings import Role
from chainml.node.api import (
    BODY_CAUSES,
    FRAME_PREFIX,
    GATE_CAUSES,
    UNSIGNED_INFERENCE,
    ApiContext,
    ErrorBody,
    Refusal,
    Routes,
    banned_response,
    body_schema,
    error_response,
    error_responses,
    frame_mode,
    inference_refusals,
    request_peer,
)
from chainml.node.core import Section, Table
from chainml.node.inference import ProviderRole
from chainml.node.plugin import Plugged, RoleContext


@dataclass(frozen=True)
class ProviderSettings:
    price: int  # wei per plain row or encrypted query
    batch_price: int  # wei per encrypted batch (throughput mode)
    receipt_batch: int  # receipts per posted batch at most
    receipt_age: float  # seconds before a client's unposted receipts are posted
    model_version: int  # the version to serve; 0: the newest granted to this node


def _parse(table: Table) -> ProviderSettings:
    return ProviderSettings(
        price=table.integer("price", 10**12, minimum=0),
        batch_price=table.integer("batch_price", 10**14, minimum=0),
        receipt_batch=table.integer("receipt_batch", 100, minimum=1),
        receipt_age=table.number("receipt_age", 60.0),
        model_version=table.integer("model_version", 0, minimum=0),
    )


SETTINGS = Section(
    "provider",
    "inference",
    frozenset({"price", "batch_price", "receipt_batch", "receipt_age", "model_version"}),
    _parse,
    template="""\
# as an inference provider (role INFERENCE_PROVIDER)
price = 1000000000000           # wei per plain row or encrypted query
batch_price = 100000000000000   # wei per encrypted batch of up to 4,096 rows
receipt_batch = 100             # receipts per batch posted on chain, at most
receipt_age = 60                # seconds before a client's receipts are posted anyway
model_version = 0               # 0: serve the newest version granted to this node""",
)


def plug(context: RoleContext) -> Plugged | None:
    if not context.roles & Role.INFERENCE_PROVIDER:
        return None
    config, settings = context.config, context.config.settings(SETTINGS)
    provider = ProviderRole(
        context.node,
        price=settings.price,
        batch_price=settings.batch_price,
        max_receipts=settings.receipt_batch,
        max_age=settings.receipt_age,
        model_version=settings.model_version,
        clock=time.time,
    )

    def work(stop: threading.Event) -> None:
        provider.run(stop, config.worker_interval)

    return Plugged("provider", provider, workers={"provider": work}, routes=routes(provider))


def routes(provider: ProviderRole | None) -> Routes:
    """``/v1/infer`` (plain), ``/v1/infer/he`` (CKKS), the served model, and the receipts
    listed for each posted batch; with no ``provider`` (the published schema) they answer
    ``no_model``."""

    def build(api: ApiContext) -> APIRouter:
        router = APIRouter()
        gate, guard, metrics = api.gate, api.guard, api.metrics

        for cause in CAUSES:
            for mode in ("plain", "he"):
                metrics.inference.labels(mode=mode, outcome=cause)
        binary = body_schema({"type": "string", "format": "binary"}, "application/octet-stream")
        binary["responses"] = {
            "200": {
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                }
            }
        }
        by_status: dict[int, set[str]] = {}  # the service's refusals; several share a status
        for c in inference_refusals():
            by_status.setdefault(int(c.status), set()).add(c.cause)
        infer_errors: dict[int | str, dict[str, Any]] = {
            status: {"model": ErrorBody, "description": "error: " + ", ".join(sorted(names))}
            for status, names in by_status.items()
        }
        for status, doc in error_responses(*BODY_CAUSES, "no_model", "banned").items():
            if status in infer_errors:
                causes = infer_errors[status]["description"] + ", " + doc["description"][7:]
                infer_errors[status]["description"] = causes
            else:
                infer_errors[status] = doc

        def unavailable() -> JSONResponse:
            return error_response("no_model", "this node serves no model (yet)", 503)

        async def serve(request: Request, label: str, modes: tuple[str, ...]) -> Response:
            if provider is None or provider.service.model is None:
                return unavailable()
            started = time.perf_counter()
            peer = request_peer(request)
            service = provider.service
            caps: dict[str, int] = {m: int(service.max_request(m)) for m in modes}

            def by_mode(prefix: bytes) -> int | None:
                """The frame's header names the mode: the body is capped by that mode's limit
                (16 MiB for a query, not the 64 MiB of evaluation keys) before the rest is
                read; a header that names none gets the route's smallest cap."""
                if len(prefix) < FRAME:
                    return None
                size = int.from_bytes(prefix[4:FRAME], "big")
                if size > len(prefix) - FRAME and len(prefix) < FRAME_PREFIX:
                    return None
                mode = frame_mode(prefix[: FRAME + size])
                return caps[mode] if mode in caps else min(caps.values())

            try:
                body = await gate.read_body(request, max(caps.values()), by_mode)
                answer = await gate.run(gate.infer_pool, service.handle, body, modes)
            except Refusal as exc:
                if exc.cause == "oversized":
                    metrics.inference.labels(mode=label, outcome="oversized").inc()
                raise
            except InferenceRefused as exc:
                metrics.inference.labels(mode=label, outcome=exc.cause).inc()
                guard.score.refused(peer, exc.cause)
                if exc.cause in UNSIGNED_INFERENCE and guard.limiter.is_banned(peer):
                    return banned_response()  # a banned peer is served only what its client signed
                return error_response(exc.cause, str(exc), exc.status)
            metrics.inference.labels(mode=label, outcome="ok").inc()
            metrics.inference_seconds.labels(mode=label).observe(time.perf_counter() - started)
            return Response(answer, media_type="application/octet-stream")

        @router.get("/v1/infer/model", responses=error_responses(*GATE_CAUSES, "no_model"))
        def served_model() -> Any:
            """The model this provider serves: version, prices, its CKKS plan's shape."""
            info = provider.info() if provider is not None else None
            return info if info is not None else unavailable()

        @router.post("/v1/infer", openapi_extra=binary, responses=infer_errors)
        async def infer_plain(request: Request) -> Response:
            """A plain request: input sealed to this node, answer sealed to the client."""
            # mode plain-zk: the answer carries a proof of inference per row
            return await serve(request, "plain", ("plain", "plain-zk"))

        @router.post("/v1/infer/he", openapi_extra=binary, responses=infer_errors)
        async def infer_he(request: Request) -> Response:
            """CKKS: evaluation keys (he-keys), one query (he) or a batch (he-batch)."""
            # a batch over the body cap: he-part requests, then an he-batch-end
            modes = ("he-keys", "he", "he-batch", "he-part", "he-batch-end")
            return await serve(request, "he", modes)

        @router.get(
            "/v1/receipts/batches/{batch_id}",
            responses=error_responses(*GATE_CAUSES, "unknown_batch"),
        )
        def batch_listing(batch_id: int) -> Any:
            """The receipts this provider billed in a batch it posted on chain."""
            listed = provider.listing(batch_id) if provider is not None else []
            if not listed:
                return error_response("unknown_batch", "no receipts listed for that batch", 404)
            return [r.to_doc() for r in listed]

        return router

    return build
