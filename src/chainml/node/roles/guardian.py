"""The key guardian role: ``POST /v1/keys/release`` answers a grantee's request with this
node's share of a model key, sealed to the grantee, only as the chain allows
(``storage.access.Guardian``).  Every node serves it: a node guards the keys whose bundles
name it, and answers ``not_a_guardian`` for the rest."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from chainml.node.access import LedgerChainView
from chainml.node.api import (
    BODY_CAUSES,
    KEY_REQUEST_SCHEMA,
    MAX_KEY_REQUEST,
    RELEASE_STATUS,
    ApiContext,
    KeyReleaseOut,
    Routes,
    banned_response,
    body_schema,
    error_response,
    error_responses,
    request_peer,
    snake_case,
)
from chainml.node.plugin import Plugged, RoleContext
from chainml.node.state import SqliteReplayCache
from chainml.storage.access import (
    AccessError,
    ForgedRequest,
    Guardian,
    KeyRelease,
    KeyRequest,
    MalformedBundle,
    NotAGuardian,
    ReplayedRequest,
)


def plug(context: RoleContext) -> Plugged:
    node = context.node
    guardian = Guardian(
        node.identity,
        LedgerChainView(node.cm),  # key release reads the chain as it is now, uncached
        context.store,
        replay=SqliteReplayCache(node.state, horizon=3600),
    )
    return Plugged("guardian", guardian, routes=routes(guardian))


def routes(guardian: Guardian | None) -> Routes:
    """The route; with no ``guardian`` (the published schema) it answers ``not_a_guardian``."""

    def release(body: bytes) -> KeyRelease:
        if guardian is None:
            raise NotAGuardian("this node guards no keys")
        return guardian.release(KeyRequest.decode(body))

    def build(api: ApiContext) -> APIRouter:
        router = APIRouter()
        gate, guard, metrics = api.gate, api.guard, api.metrics

        @router.post(
            "/v1/keys/release",
            response_model=KeyReleaseOut,
            responses=error_responses(
                *(snake_case(n) for n in RELEASE_STATUS), *BODY_CAUSES, "banned"
            ),
            openapi_extra=body_schema(KEY_REQUEST_SCHEMA),
        )
        async def release_key(request: Request) -> Any:
            """Key guardian: this node's share of a grant's key, sealed to the grantee."""
            peer = request_peer(request)
            body = await gate.read_body(request, MAX_KEY_REQUEST)
            try:
                out = await gate.run(gate.verify_pool, release, body)
            except AccessError as exc:
                cause = snake_case(type(exc).__name__)
                metrics.rejected.labels(cause=cause).inc()
                if isinstance(exc, (ForgedRequest, ReplayedRequest, MalformedBundle)):
                    guard.score.refused(peer, cause)
                    if guard.limiter.is_banned(peer):
                        return banned_response()
                return error_response(cause, str(exc), RELEASE_STATUS.get(type(exc).__name__, 403))
            return KeyReleaseOut(
                guardian=out.guardian,
                index=out.index,
                sealed_share=out.sealed_share.hex(),
                signature=out.signature.hex(),
            )

        return router

    return build
