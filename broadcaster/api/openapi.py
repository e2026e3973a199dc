"""The OpenAPI 3.1 document, generated from the route table and the schemas the handlers use."""

from __future__ import annotations

import copy
from functools import cache
from typing import Any

from broadcaster import __version__
from broadcaster.api.routes import CAP_MEDIA_TYPES, ROUTES, Route
from broadcaster.domain.caller import PERMISSIONS, ROLES
from broadcaster.http.schemas import SCHEMAS

ERRORS = {
    400: "Malformed or invalid request: the message names the field and what to send",
    401: "Missing, unknown or revoked token",
    403: "The token's role does not allow this (or the two-person rule)",
    404: "No such resource",
    409: "The resource's state does not allow this",
    413: "The body is larger than the limit",
    415: "Wrong Content-Type",
    422: "Well-formed but unusable (unknown area or template, idempotency key reused, ...)",
    429: "Rate limit: retry after the Retry-After header's seconds",
    503: "The database does not answer",
}


def roles_for(route: Route) -> list[str]:
    if not route.auth:
        return []
    if route.permission is None:
        return list(ROLES)
    return [r for r in ROLES if route.permission in PERMISSIONS[r]]


@cache
def _document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "broadcaster",
            "version": __version__,
            "description": (
                "HTTP trigger for mass-SMS public guidance when emergency numbers fail. "
                "Bearer tokens with roles operator (create, preview), approver (approve, "
                "cancel, pause, resume) and admin (everything, tokens, audit). A live broadcast "
                "above the approval threshold waits in pending_approval for a different person."
            ),
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": {name: copy.deepcopy(schema) for name, schema in SCHEMAS.items()},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def document() -> dict[str, Any]:
    """A copy of the document (callers may not change the cached one)."""
    return copy.deepcopy(_document())


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _operation(route: Route) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": route.operation_id,
        "summary": route.summary,
        "tags": list(route.tags),
    }
    roles = roles_for(route)
    if route.auth:
        op["security"] = [{"bearer": []}]
        op["description"] = f"Roles: {', '.join(roles)}" + (
            " (and the broadcast's creator)" if route.creator_may else ""
        )
    else:
        op["security"] = []
    params: list[dict[str, Any]] = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
        }
        for name in route.path_params
    ]
    params += [
        {
            "name": q.name,
            "in": "query",
            "required": False,
            "description": q.description,
            "schema": {"type": "integer", "minimum": q.minimum, "maximum": q.maximum},
        }
        for q in route.query
    ]
    if route.idempotent:
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "a retried create with the same key returns the same broadcast",
                "schema": {"type": "string", "pattern": "^[\\x21-\\x7e]{1,200}$"},
            }
        )
    if params:
        op["parameters"] = params
    if route.body_kind == "cap":
        op["requestBody"] = {
            "required": True,
            "content": {
                media: {"schema": {"type": "string", "description": "a CAP 1.2 <alert>"}}
                for media in CAP_MEDIA_TYPES
            },
        }
    elif route.body_schema is not None:
        op["requestBody"] = {
            "required": route.body_required,
            "content": {"application/json": {"schema": _ref(route.body_schema)}},
        }
    responses: dict[str, Any] = {}
    for status in route.ok_status:
        if route.operation_id == "metrics":
            responses[str(status)] = {
                "description": "Prometheus text exposition format",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
            continue
        responses[str(status)] = {
            "description": "OK" if status < 300 else "not ready",
            "content": {"application/json": {"schema": _ref(route.ok_schema)}},
        }
    for status in _error_statuses(route):
        responses.setdefault(
            str(status),
            {
                "description": ERRORS[status],
                "content": {"application/json": {"schema": _ref("Error")}},
            },
        )
    op["responses"] = responses
    return op


def _error_statuses(route: Route) -> list[int]:
    statuses = [400, 503]
    if route.auth:
        statuses += [401, 403, 429]
    if route.path_params:
        statuses.append(404)
    if route.method == "POST":
        statuses += [409, 413, 415, 422]
    return sorted(set(statuses))
