"""The OpenAPI 3.1 document, generated from the registered operations and their models."""

from __future__ import annotations

import re
from typing import Any

from flask import Response, current_app
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from backend import __version__
from backend.api import bp
from backend.api import schemas as sc
from backend.api.framework import OPERATIONS, Operation
from backend.api.idempotency import KEY_PATTERN

REF = "#/components/schemas/{model}"
ERROR_STATUSES = {
    400: "Bad request (malformed JSON, bad cursor, unexpected query parameter)",
    401: "Missing or unknown credentials",
    403: "Known credentials that may not make this call",
    404: "Not found, or not visible to the caller",
    409: "Conflict with the case's state (final, already assigned, already closed)",
    413: "Body larger than the limit",
    415: "Body not sent as JSON",
    422: "Validation failed; details name the fields",
    429: "Too many requests (rate limited); wait as long as Retry-After says",
}
RETRY_AFTER_HEADER = {
    "description": "Seconds to wait before the limit lets this call through again",
    "schema": {"type": "integer", "minimum": 1},
}
_PATH_PARAM = re.compile(r"<(?:(int)(?:\([^)]*\))?:)?([a-z_]+)>")


def _models(op: Operation) -> list[type[BaseModel]]:
    found = []
    for model in op.responses.values():
        if model is None:
            continue
        found.extend(getattr(model, "__args__", None) or (model,))
    return found


def _schema_ref(model: Any, refs: dict[Any, Any]) -> dict[str, Any]:
    members = getattr(model, "__args__", None)
    if members:
        return {"oneOf": [refs[(m, "serialization")] for m in members]}
    return refs[(model, "serialization")]


def build_document() -> dict[str, Any]:
    pairs: set[tuple[type[BaseModel], str]] = {(sc.Error, "serialization")}
    for op in OPERATIONS:
        if op.body is not None:
            pairs.add((op.body, "validation"))
        for model in _models(op):
            pairs.add((model, "serialization"))
    ordered = sorted(pairs, key=lambda pair: (pair[0].__name__, pair[1]))
    refs, defs = models_json_schema(ordered, ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.openapi_path, {})[op.method.lower()] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "SOS support queue API",
            "version": __version__,
            "description": "Cases, assignment, presence, chat and the change feed. "
            "Authenticate with Authorization: Bearer sosu_/sosc_/sosd_ secrets.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": defs.get("$defs", {}),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "sosu_ user token, sosc_ case token or sosd_ deployment key",
                },
            },
        },
    }


def _operation(op: Operation, refs: dict[Any, Any]) -> dict[str, Any]:
    parameters: list[dict[str, Any]] = []
    for kind, name in _PATH_PARAM.findall(op.rule):
        schema: dict[str, Any] = (
            {"type": "integer", "minimum": 0, "maximum": sc.MAX_ID}
            if kind == "int"
            else {"type": "string"}
        )
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
    if op.query is not None:
        schema = op.query.model_json_schema()
        for name, prop in schema.get("properties", {}).items():
            parameters.append(
                {
                    "name": name,
                    "in": "query",
                    "required": name in schema.get("required", []),
                    "schema": prop,
                }
            )
    for name, description in op.headers.items():
        parameters.append(
            {
                "name": name,
                "in": "header",
                "required": False,
                "description": description,
                "schema": {"type": "string", "pattern": KEY_PATTERN},
            }
        )
    responses: dict[str, Any] = {}
    for status, model in op.responses.items():
        entry: dict[str, Any] = {"description": "Success"}
        if model is not None:
            entry["content"] = {"application/json": {"schema": _schema_ref(model, refs)}}
        responses[str(status)] = entry
    error = {"application/json": {"schema": refs[(sc.Error, "serialization")]}}
    for status, description in ERROR_STATUSES.items():
        responses[str(status)] = {"description": description, "content": error}
    responses["429"]["headers"] = {"Retry-After": RETRY_AFTER_HEADER}
    result: dict[str, Any] = {
        "operationId": op.endpoint.split(".", 1)[1],
        "summary": op.summary,
        "tags": list(op.tags),
        "parameters": parameters,
        "responses": responses,
        "x-sos-callers": list(op.callers),
    }
    if "anyone" not in op.callers:
        result["security"] = [{"bearer": []}]
    if op.body is not None:
        # An empty body reads as {}: it is optional exactly when the model needs no field.
        result["requestBody"] = {
            "required": bool(op.body.model_json_schema().get("required")),
            "content": {"application/json": {"schema": refs[(op.body, "validation")]}},
        }
    return result


@bp.get("/openapi.json")
def openapi_document() -> Response:
    document = current_app.extensions["sos"].openapi_cache
    if document is None:
        document = current_app.extensions["sos"].openapi_cache = current_app.json.dumps(
            build_document()
        )
    return Response(document, mimetype="application/json")
