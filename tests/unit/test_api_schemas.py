"""Request schemas, their error messages, and the pure parts of the API (roles, tokens, limits)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from broadcaster.api.openapi import document, roles_for
from broadcaster.api.routes import ROUTES
from broadcaster.domain import tokens
from broadcaster.domain.caller import Caller
from broadcaster.http import schemas
from broadcaster.http.errors import ApiError
from broadcaster.http.ratelimit import RateLimiter

GOOD = {"areas": ["dep:75"], "template": "outage"}


def refusal(name: str, body: Any) -> ApiError:
    with pytest.raises(ApiError) as caught:
        schemas.check(name, body)
    assert caught.value.status == 400
    return caught.value


def test_every_schema_is_valid_json_schema() -> None:
    for schema in schemas.SCHEMAS.values():
        Draft202012Validator.check_schema(schema)


def test_a_good_body_passes_unchanged() -> None:
    body = {**GOOD, "variables": {"details": "Restez calmes."}, "kind": "live", "dry_run": True}
    assert schemas.check("BroadcastCreate", body) == body


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            {**GOOD, "send_now": True},
            "body: unknown field 'send_now'; allowed: allow_language_fallback, areas, dry_run",
        ),
        ({"template": "outage"}, "body: missing required field 'areas'"),
        ({**GOOD, "areas": "dep:75"}, "body.areas: expected an array, got a string"),
        ({**GOOD, "areas": []}, "body.areas: [] should be non-empty"),
        ({**GOOD, "areas": ["paris"]}, 'body.areas[0]: "paris" is not valid: an area: region:'),
        ({**GOOD, "kind": "real"}, "body.kind: \"real\" is not one of 'live', 'drill'"),
        ({**GOOD, "dry_run": "yes"}, "body.dry_run: expected true or false, got a string"),
        ({**GOOD, "expires_in_seconds": 5}, "body.expires_in_seconds: 5 is less than"),
        ({**GOOD, "expires_in_seconds": 60.5}, "expected an integer, got a number"),
        ({**GOOD, "expires_in_seconds": True}, "expected an integer, got a boolean"),
        ({**GOOD, "variables": {"details": 3}}, "body.variables.details: expected a string"),
        ({**GOOD, "variables": {"details": "a\nb"}}, "invisible characters (U+000A)"),
        ({**GOOD, "variables": {"Bad-Name": "x"}}, "lower-case letters, digits and _"),
        ({**GOOD, "variables": {"details": "x" * 501}}, "is too long"),
        (["dep:75"], "body: expected an object, got an array"),
    ],
)
def test_refusals_name_the_field_and_the_fix(body: Any, message: str) -> None:
    error = refusal("BroadcastCreate", body)
    assert error.code == "invalid_body"
    assert message in error.message, error.message


def test_several_problems_are_all_listed() -> None:
    error = refusal("BroadcastCreate", {"areas": 1, "template": 2, "x": 3})
    assert "(and 2 more problems)" in error.message
    assert error.details is not None
    assert len(error.details) == 3


def test_follow_up_and_action_bodies_are_strict_too() -> None:
    assert schemas.check("FollowUp", {}) == {}
    assert "unknown field 'areaz'" in refusal("FollowUp", {"areaz": ["dep:75"]}).message
    assert schemas.check("Action", {"reason": "fausse alerte"}) == {"reason": "fausse alerte"}
    assert "unknown field 'force'" in refusal("Action", {"force": True}).message
    assert "is not one of" in refusal("TokenCreate", {"name": "a", "role": "root"}).message


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{", "not valid JSON: Expecting property name"),
        (b'{"a": NaN}', "NaN, which is not JSON"),
        (b'{"a": Infinity}', "Infinity"),
        (b"\xff\xfe{}", "not UTF-8"),
        (b'{"a": "\\ud800"}', "lone surrogate"),
    ],
)
def test_json_is_parsed_strictly(raw: bytes, fragment: str) -> None:
    with pytest.raises(ApiError) as caught:
        schemas.parse_json(raw)
    assert caught.value.code == "malformed_body"
    assert fragment in caught.value.message


def test_openapi_components_are_the_schemas_the_handlers_validate_with() -> None:
    doc = document()
    assert doc["components"]["schemas"] == schemas.SCHEMAS
    for name in schemas.SCHEMAS:
        assert schemas.validator(name).schema is schemas.SCHEMAS[name]
    for route in ROUTES:
        op = doc["paths"][route.path][route.method.lower()]
        if route.body_schema is not None:
            ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref == f"#/components/schemas/{route.body_schema}"
            assert op["requestBody"]["required"] is route.body_required
        assert [p["name"] for p in op.get("parameters", []) if p["in"] == "path"] == (
            route.path_params
        )
        assert (op["security"] == []) is (not route.auth)


def test_the_document_is_a_copy() -> None:
    document()["paths"].clear()
    assert document()["paths"]


def test_roles_matrix_is_what_the_issue_asks() -> None:
    matrix = {r.operation_id: roles_for(r) for r in ROUTES}
    assert matrix["createBroadcast"] == ["operator", "admin"]
    assert matrix["approveBroadcast"] == ["approver", "admin"]
    assert matrix["cancelBroadcast"] == ["approver", "admin"]
    assert matrix["pauseBroadcast"] == ["approver", "admin"]
    assert matrix["getBroadcast"] == ["operator", "approver", "admin"]
    assert matrix["createToken"] == ["admin"]
    assert matrix["listAudit"] == ["admin"]
    assert matrix["healthz"] == []


def test_tokens_are_random_and_only_their_hash_is_kept() -> None:
    one, two = tokens.new_token(), tokens.new_token()
    assert one != two
    assert tokens.TOKEN_SHAPE.match(one)
    assert re.fullmatch(r"[0-9a-f]{64}", tokens.hash_token(one))
    assert tokens.hash_token(one) != tokens.hash_token(two)


@pytest.mark.parametrize("name", ["cli", "CLI", "system", "", "-x", "a b", "x" * 65])
def test_token_names_that_could_pose_as_another_actor_are_refused(name: str) -> None:
    with pytest.raises(Exception, match="token name"):
        tokens.check_name(name)


def test_same_person_is_by_token_or_by_name_in_any_case() -> None:
    alice = Caller(name="Alice", role="admin", token_id=1)
    assert alice.same_person("alice")
    assert alice.same_person("someone", 1)
    assert not alice.same_person("bob", 2)
    assert not alice.same_person(None)


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    limiter = RateLimiter(rate=2.0, burst=3)
    assert [limiter.take("k", 0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("k", 0.0) == pytest.approx(0.5)
    assert limiter.blocked("k", 0.0) == pytest.approx(0.5)
    assert limiter.blocked("k", 0.5) == 0.0
    assert limiter.take("k", 0.5) == 0.0
    assert limiter.take("other", 0.5) == 0.0  # buckets are per key


def test_token_bucket_forgets_idle_keys_when_full() -> None:
    limiter = RateLimiter(rate=1.0, burst=1, max_keys=2)
    limiter.take("a", 0.0)
    limiter.take("b", 0.0)
    limiter.take("c", 10.0)  # a and b have refilled: forgotten
    assert len(limiter._buckets) == 1
