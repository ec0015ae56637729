"""The published OpenAPI document is the one the code serves."""

from __future__ import annotations

import json
from pathlib import Path

from chainml.node.api import openapi_schema

PUBLISHED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_published_schema_matches_the_code():
    assert json.loads(PUBLISHED.read_text()) == openapi_schema(), (
        "regenerate: python -m chainml.node.api > docs/openapi.json"
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
