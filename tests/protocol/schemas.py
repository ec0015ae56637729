"""Validators for the JSON Schemas of docs/protocol/schemas/ (draft 2020-12), each schema
checked against the meta-schema as it is loaded."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "protocol" / "schemas"


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((SCHEMAS / name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


JOB = validator("job-config-1.schema.json")
RECORD = validator("round-record-2.schema.json")
TRANSCRIPT = validator("secagg-transcript-3.schema.json")
