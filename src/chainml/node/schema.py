"""The node API's OpenAPI document, every role's routes included: committed as
``docs/openapi.json`` (``python -m chainml.node.schema > docs/openapi.json``)."""

from __future__ import annotations

import json
import sys
from typing import Any, cast

from chainml.node.api import create_app
from chainml.node.envelope import EnvelopeReceiver
from chainml.node.roles import ROUTES


def openapi_schema() -> dict[str, Any]:
    """The API's OpenAPI document (routes only; no node behind it)."""
    return create_app(cast(EnvelopeReceiver, None), routes=ROUTES).openapi()


if __name__ == "__main__":
    json.dump(openapi_schema(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
