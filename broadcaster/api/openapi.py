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
    op.update(_security(route))
    params = _parameters(route)
    if params:
        op["parameters"] = params
    body = _request_body(route)
    if body is not None:
        op["requestBody"] = body
    op["responses"] = _responses(route)
    return op


def _security(route: Route) -> dict[str, Any]:
    """Who may call the route: bearer tokens of the roles named in the description."""
    if not route.auth:
        return {"security": []}
    creator = " (and the broadcast's creator)" if route.creator_may else ""
    return {
        "security": [{"bearer": []}],
        "description": f"Roles: {', '.join(roles_for(route))}" + creator,
    }


def _parameters(route: Route) -> list[dict[str, Any]]:
    """Path ids, query parameters, then the Idempotency-Key header of idempotent creates."""
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
    return params


def _request_body(route: Route) -> dict[str, Any] | None:
    """A CAP XML document, a JSON body of the route's schema, or None (no body)."""
    if route.body_kind == "cap":
        return {
            "required": True,
            "content": {
                media: {"schema": {"type": "string", "description": "a CAP 1.2 <alert>"}}
                for media in CAP_MEDIA_TYPES
            },
        }
    if route.body_schema is not None:
        return {
            "required": route.body_required,
            "content": {"application/json": {"schema": _ref(route.body_schema)}},
        }
    return None


def _responses(route: Route) -> dict[str, Any]:
    """The route's success statuses, then every error status it can answer with."""
    responses: dict[str, Any] = {str(status): _success(route, status) for status in route.ok_status}
    for status in _error_statuses(route):
        responses.setdefault(
            str(status),
            {
                "description": ERRORS[status],
                "content": {"application/json": {"schema": _ref("Error")}},
            },
        )
    return responses


def _success(route: Route, status: int) -> dict[str, Any]:
    if route.operation_id == "metrics":
        return {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    if route.operation_id == "exportNotReached":
        return {
            "description": "CSV: msisdn, departement, commune, language, why",
            "content": {"text/csv": {"schema": {"type": "string"}}},
        }
    content: dict[str, Any] = {"application/json": {"schema": _ref(route.ok_schema)}}
    if route.operation_id == "getReport":
        content["text/html"] = {"schema": {"type": "string"}}
    return {"description": "OK" if status < 300 else "not ready", "content": content}


def _error_statuses(route: Route) -> list[int]:
    statuses = [400, 503]
    if route.auth:
        statuses += [401, 403, 429]
    if route.path_params:
        statuses.append(404)
    if route.method == "POST":
        statuses += [409, 413, 415, 422]
    return sorted(set(statuses))
