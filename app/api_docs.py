"""The OpenAPI document's error responses: every route names the errors it can answer with.

Cross-cutting errors are added here from what a route is, so that no router has to repeat them
and a new router gets them too: 401, 403 and 429 for routes behind an API key (403 names the
scope), 404 for routes with a path parameter, 413 for routes with a body, 422 for routes with
parameters or a body. All of them carry the one error schema of app.errors. A router documents
only what is particular to it (a 409, a 422 with its own meaning).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

ERROR_REF = "#/components/schemas/Error"


class ErrorOut(BaseModel):
    """The body of every error response."""

    code: str = Field(description="stable machine-readable code, e.g. NOT_FOUND")
    message: str = Field(description="what went wrong, for a person")
    details: dict[str, Any] | None = Field(default=None, description="structured context")


def required_scope(operation: dict[str, Any]) -> str | None:
    """The API-key scope an OpenAPI operation needs (None for open routes)."""
    for requirement in operation.get("security", []):
        for scopes in requirement.values():
            if scopes:
                return str(scopes[0])
    return None


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
    }
    if headers:
        response["headers"] = headers
    return response


RETRY_AFTER = {
    "Retry-After": {
        "description": "seconds to wait before trying again",
        "schema": {"type": "integer"},
    }
}


def _complete(operation: dict[str, Any], path: str, scope: str | None) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})

    def add(status: str, description: str, headers: dict[str, Any] | None = None) -> None:
        # A router's own description wins; the schema is always the error schema.
        given = responses.get(status, {}).get("description")
        responses[status] = _error(given or description, headers)

    if scope is not None:
        add("401", "No API key was sent, or it is not valid or was revoked")
        add("403", f"The API key lacks the scope `{scope}`")
        add("429", "Too many requests for this API key; see Retry-After", RETRY_AFTER)
    if "{" in path:
        add("404", "No such object")
    if "requestBody" in operation:
        add("413", "The body is larger than this route's limit")
    if "requestBody" in operation or operation.get("parameters"):
        add("422", "The request does not fit this route's parameters or body")
    for status in list(responses):
        if status[0] in "45" and status not in ("401", "403", "404", "413", "422", "429"):
            add(status, responses[status].get("description", "Error"))


def install(app: FastAPI) -> None:
    """Make `app.openapi()` document every route's error responses."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                _complete(operation, path, required_scope(operation))
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Error"] = ErrorOut.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        # FastAPI's own validation error body is never sent: app.main answers 422 as Error.
        for unused in ("HTTPValidationError", "ValidationError"):
            if f'"#/components/schemas/{unused}"' not in json.dumps(schema):
                components.pop(unused, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
