"""Request and response schemas (JSON Schema 2020-12, as OpenAPI 3.1 uses), and strict checks.

The same dictionaries validate request bodies in the handlers and appear in the OpenAPI
document (`components.schemas`), so the document says exactly what the server enforces. Unknown
fields, wrong types and out-of-range values are refused with a 400 that names the field and
what is expected; strings may not carry control characters (they end up in SMS texts and in
PostgreSQL, which refuses NUL).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from typing import Any, Final, cast

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from broadcaster.domain.requests import MAX_EXPIRY
from broadcaster.domain.variables import MAX_VARIABLE_LENGTH, invisible_characters
from broadcaster.http.errors import ApiError, bad_request

Schema = dict[str, Any]

PRINTABLE: Final = r"^[^\x00-\x1f\x7f]*$"
"""No control characters (tab, newline and NUL included)."""
AREA_PATTERN: Final = (
    r"^((region|reg|dep|departement|commune|insee):[0-9A-Z]{1,5}|cell:[A-Za-z0-9._:-]{1,32}"
    r"|circle:[-0-9., ]{5,80}|polygon:([-0-9.,; ]{11,}|\{[\s\S]{10,}\}))$"
)
NAME_PATTERN: Final = r"^[a-z][a-z0-9_]{0,39}$"
VARIABLE_KEY: Final = r"^[a-z][a-z0-9_]{0,39}(\.[a-z]{2})?$"
"""A variable's name, or `name.lang` for one language only (`instruction.en`)."""
VISIBLE: Final = r"\S"
"""At least one visible character: a blank value would leave a hole in the SMS."""
INVISIBLE: Final = (
    "[\x00-\x1f\x7f-\x9f\u00ad\u061c\u115f\u1160\u180e\u200b-\u200f\u2028-\u202e"
    "\u2060-\u206f\u2800\u3164\ufeff\uffa0\ufff9-\ufffb]"
)
"""Control and invisible characters (line breaks, U+0085, zero-width, direction overrides...):
a variable must not contain one. Planning checks every Unicode control or format character."""
MAX_EXPIRY_S: Final = int(MAX_EXPIRY.total_seconds())

AREA: Final[Schema] = {
    "type": "string",
    "pattern": AREA_PATTERN,
    "description": "an area: region:CODE, dep:CODE, commune:INSEE, cell:ID, "
    "circle:LAT,LON,RADIUS_KM (radius in (0, 500]) or polygon: with LAT,LON pairs separated by "
    "spaces (a closed ring: the last repeats the first) or a GeoJSON Polygon (e.g. dep:75, "
    "region:11, commune:75056, cell:C75001, circle:48.85,2.35,5)",
    "maxLength": 200_000,
}
MODE: Final[Schema] = {
    "type": "string",
    "enum": ["auto", "present", "resident", "both"],
    "description": "who an area reaches: the numbers last seen in its cells within "
    "freshness_hours (present, visitors included), the subscribers living there (resident), "
    "or both (one message per number); auto (default): present for a polygon or circle, "
    "resident for an administrative area or a cell id",
}
FRESHNESS_HOURS: Final[Schema] = {
    "type": "number",
    "exclusiveMinimum": 0,
    "maximum": 168,
    "description": "present mode: a location older than this is stale, not reached (default 6)",
}
AREA_LIST: Final[Schema] = {
    "type": "array",
    "items": AREA,
    "minItems": 1,
    "maxItems": 500,
    "uniqueItems": True,
}
TEMPLATE: Final[Schema] = {
    "type": "string",
    "pattern": NAME_PATTERN,
    "description": "a scenario of templates/catalogue.toml (outage, update, all_clear, drill, ...)",
}
VARIABLES: Final[Schema] = {
    "type": "object",
    "maxProperties": 20,
    "propertyNames": {"pattern": VARIABLE_KEY},
    "additionalProperties": {
        "type": "string",
        "maxLength": MAX_VARIABLE_LENGTH,
        "pattern": VISIBLE,
        "not": {"pattern": INVISIBLE},
    },
    "description": "template variables (name: text); they override the area's own values. "
    "`name.lang` (instruction.en) is for the texts in that language only; a plain value is "
    "taken as written in the area's language (French). Each value is visible text on one line "
    "and must pass its variable's rule from the template catalogue (fallback_number: a phone "
    "number), checked when planning (422)",
}
ALLOW_LANGUAGE_FALLBACK: Final[Schema] = {
    "type": "boolean",
    "description": "send live even where a group gets a text that is not in its recipients' "
    "language (its template has no text in theirs, or a variable was written for another "
    "language); without it such a broadcast is refused (422 language_fallback). The preview "
    "lists those groups in its warnings",
}
EXPIRES_IN: Final[Schema] = {
    "type": "integer",
    "minimum": 60,
    "maximum": MAX_EXPIRY_S,
    "description": "hard expiry, seconds from now: nothing is submitted after it (default 7200)",
}
REASON: Final[Schema] = {"type": "string", "maxLength": 500, "pattern": PRINTABLE}

BROADCAST_CREATE: Final[Schema] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["areas", "template"],
    "properties": {
        "areas": AREA_LIST,
        "exclude": {**AREA_LIST, "minItems": 0},
        "template": TEMPLATE,
        "variables": VARIABLES,
        "kind": {
            "type": "string",
            "enum": ["live", "drill"],
            "description": "live goes to the public; drill only to the test group, with a drill "
            "template that carries the exercise marker",
        },
        "test_group_only": {"type": "boolean"},
        "gsm_safe": {
            "type": "boolean",
            "description": "transliterate to GSM 03.38 (ê->e) to save parts",
        },
        "expires_in_seconds": EXPIRES_IN,
        "allow_language_fallback": ALLOW_LANGUAGE_FALLBACK,
        "mode": MODE,
        "freshness_hours": FRESHNESS_HOURS,
        "visitor_languages": {
            "type": "object",
            "maxProperties": 50,
            "propertyNames": {"pattern": "^[A-Z]{2}$"},
            "additionalProperties": {"type": "string", "pattern": "^[a-z]{2}$"},
            "description": "country (ISO 3166 alpha-2) -> language (ISO 639-1) for this "
            'broadcast\'s visitors, over the built-in country table (e.g. {"CH": "de"})',
        },
        "dry_run": {
            "type": "boolean",
            "description": "return the preview (texts, recipients, parts) and store nothing",
        },
    },
}

FOLLOW_UP: Final[Schema] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "areas": {**AREA_LIST, "description": "default: the areas of the broadcast it follows"},
        "exclude": {**AREA_LIST, "minItems": 0},
        "template": {**TEMPLATE, "description": "default: update (or all_clear)"},
        "variables": VARIABLES,
        "reached_only": {
            "type": "boolean",
            "description": "only the recipients the earlier broadcast reached, if only in "
            "part (a part accepted); the report's `reached` counts every part accepted",
        },
        "gsm_safe": {"type": "boolean"},
        "expires_in_seconds": EXPIRES_IN,
        "allow_language_fallback": ALLOW_LANGUAGE_FALLBACK,
        "dry_run": {"type": "boolean"},
    },
}

ACTION: Final[Schema] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"reason": REASON},
}

TOKEN_CREATE: Final[Schema] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "role"],
    "properties": {
        "name": {
            "type": "string",
            "pattern": r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$",
            "description": "the token's name (by default also the person holding it)",
        },
        "holder": {
            "type": "string",
            "pattern": r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$",
            "description": "the person holding the token (default: name); a token for another "
            "person than the caller is pending until a second admin activates it",
        },
        "role": {"type": "string", "enum": ["operator", "approver", "admin"]},
    },
}

# -- responses (documented; loose where the store adds fields) ----------------------------------

ERROR: Final[Schema] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "request_id"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "request_id": {"type": "string"},
                "details": {"type": "array", "items": {"type": "string"}},
            },
        }
    },
}
PREVIEW: Final[Schema] = {
    "type": "object",
    "required": ["template", "recipients", "parts", "groups", "warnings"],
    "properties": {
        "template": {"type": "string"},
        "recipients": {"type": "integer"},
        "parts": {"type": "integer"},
        "eta_seconds": {"type": ["number", "null"]},
        "warnings": {"type": "array", "items": {"type": "string"}},
        "placeholders": {
            "type": "object",
            "additionalProperties": {"type": "array", "items": {"type": "string"}},
            "description": "variable -> the départements whose texts carry its reference "
            "placeholder (a fictional number): a live send refuses them until each is set",
        },
        "fictional": {
            "type": "object",
            "additionalProperties": {"type": "string"},
            "description": "the phone variables given with the request whose value is in the "
            "range reserved for fiction (01 99 00 xx xx) -> that value: a live send refuses "
            "them (code fictional_number)",
        },
        "presence": {
            "type": ["object", "null"],
            "description": "the geographic part of the target (null: none): mode, window_hours, "
            "cells selected, present (numbers seen there within the window), stale (seen "
            "before it, not reached), visitors, per shape its cells and overspill (the share "
            "of their coverage outside the shape), visitors_by_country (country, language)",
        },
        "groups": {
            "type": "array",
            "items": {"type": "object"},
            "description": "one per (département, language): text, encoding, parts, recipients; "
            "`also_for_languages` (language -> recipients who read it and get this text) and "
            "`variables_in_other_languages` (variable -> the language it was written in) are "
            "what a live send refuses without allow_language_fallback",
        },
    },
}
BROADCAST: Final[Schema] = {
    "type": "object",
    "required": ["broadcast_id", "kind", "state", "recipients", "parts", "expires_at"],
    "properties": {
        "broadcast_id": {"type": "integer"},
        "kind": {"type": "string", "enum": ["live", "drill"]},
        "state": {"type": "string"},
        "template": {"type": "string"},
        "recipients": {"type": "integer"},
        "parts": {"type": "integer"},
        "created_by": {"type": "string"},
        "approved_by": {"type": ["string", "null"]},
        "parent_id": {"type": ["integer", "null"]},
        "expires_at": {"type": "string"},
        "accepted": {"type": "integer"},
        "failed": {"type": "integer"},
        "duplicates": {"type": "integer", "description": "parts recorded more than once"},
        "resent_in_flight": {
            "type": "integer",
            "description": "parts sent again while their first copy may have been accepted",
        },
        "possibly_sent_twice": {
            "type": "integer",
            "description": "parts the SMSC may have received twice (resent_in_flight + "
            "duplicates): what a report shows instead of counting outcome rows alone",
        },
    },
}
CREATED: Final[Schema] = {
    "type": "object",
    "required": ["dry_run"],
    "properties": {
        "dry_run": {"type": "boolean"},
        "approval_required": {"type": "boolean"},
        "preview": PREVIEW,
        "broadcast": BROADCAST,
    },
}
BROADCAST_LIST: Final[Schema] = {
    "type": "object",
    "required": ["broadcasts"],
    "properties": {"broadcasts": {"type": "array", "items": {"type": "object"}}},
}
REPORT: Final[Schema] = {
    "type": "object",
    "required": ["broadcast", "groups", "follow_ups", "audit"],
    "properties": {
        "broadcast": BROADCAST,
        "groups": {"type": "array", "items": {"type": "object"}},
        "follow_ups": {"type": "array", "items": {"type": "object"}},
        "audit": {"type": "array", "items": {"type": "object"}},
        "after_action": {"type": "object"},
    },
}
CAP_RESULT: Final[Schema] = {
    "type": "object",
    "required": ["identifier", "status", "msg_type", "sent_to_public", "action"],
    "properties": {
        "identifier": {"type": "string"},
        "sender": {"type": "string"},
        "status": {"type": "string"},
        "msg_type": {"type": "string"},
        "sent_to_public": {"type": "boolean"},
        "action": {"type": "string"},
        "broadcast": BROADCAST,
        "preview": PREVIEW,
        "cancelled": {"type": "array", "items": {"type": "integer"}},
        "warnings": {"type": "array", "items": {"type": "string"}},
    },
}
TOKEN: Final[Schema] = {
    "type": "object",
    "required": ["id", "name", "role", "prefix", "active"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "holder": {"type": "string", "description": "the person it belongs to"},
        "role": {"type": "string"},
        "prefix": {"type": "string"},
        "active": {"type": "boolean"},
        "pending": {
            "type": "boolean",
            "description": "minted for another person: refused until a second admin activates it",
        },
        "token": {"type": "string", "description": "the token itself: shown only once"},
    },
}
TOKEN_LIST: Final[Schema] = {
    "type": "object",
    "required": ["tokens"],
    "properties": {"tokens": {"type": "array", "items": TOKEN}},
}
AUDIT_LIST: Final[Schema] = {
    "type": "object",
    "required": ["entries"],
    "properties": {"entries": {"type": "array", "items": {"type": "object"}}},
}
HEALTH: Final[Schema] = {
    "type": "object",
    "required": ["status"],
    "properties": {"status": {"type": "string"}},
}
ANY_OBJECT: Final[Schema] = {"type": "object"}

# -- drills ----------------------------------------------------------------------------------

DRILL_THRESHOLDS: Final[Schema] = {
    "type": "object",
    "additionalProperties": False,
    "description": "what the drill must achieve (defaults: 0.99 delivered within 300 s, p95 "
    "time to accept at most 5 s), overall, per SMSC and per area",
    "properties": {
        "min_delivered_ratio": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "delivery_within_seconds": {"type": "integer", "minimum": 1, "maximum": 86400},
        "max_accept_p95_seconds": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
    },
}
DRILL_SCHEDULE_CREATE: Final[Schema] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "cron", "timezone", "areas"],
    "properties": {
        "name": {
            "type": "string",
            "pattern": r"^[a-z][a-z0-9_-]{0,63}$",
            "description": "a unique name, e.g. monthly-paris",
        },
        "cron": {
            "type": "string",
            "maxLength": 100,
            "pattern": PRINTABLE,
            "description": "5-field cron expression, e.g. '0 12 * * 1#1' (first Monday of the "
            "month at 12:00); at most one drill an hour",
        },
        "timezone": {
            "type": "string",
            "maxLength": 64,
            "pattern": r"^[A-Za-z0-9_+\-/]+$",
            "description": "IANA time zone the expression is read in, e.g. Europe/Paris",
        },
        "areas": AREA_LIST,
        "exclude": {**AREA_LIST, "minItems": 0},
        "template": {**TEMPLATE, "description": "a drill template (default: drill)"},
        "variables": VARIABLES,
        "thresholds": DRILL_THRESHOLDS,
        "webhook_url": {
            "type": "string",
            "maxLength": 500,
            "pattern": r"^https?://[^\x00-\x20]+$",
            "description": "POSTed the JSON report when the drill fails (or is missed); admins "
            "only; https to a public address unless its origin is in BROADCASTER_WEBHOOK_ALLOW",
        },
        "grace_seconds": {
            "type": "integer",
            "minimum": 0,
            "maximum": 86400,
            "description": "a fire time missed while no scheduler ran is still run this late "
            "(default 3600); later, it is recorded as missed and alarmed",
        },
        "expires_in_seconds": EXPIRES_IN,
        "enabled": {"type": "boolean"},
    },
}
DRILL_SCHEDULE: Final[Schema] = {
    "type": "object",
    "required": ["id", "name", "cron", "timezone", "areas", "enabled", "next_run_at"],
    "properties": {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "cron": {"type": "string"},
        "timezone": {"type": "string"},
        "description": {"type": "string"},
        "areas": {"type": "array", "items": {"type": "string"}},
        "enabled": {"type": "boolean"},
        "next_run_at": {"type": ["string", "null"]},
        "upcoming": {"type": "array", "items": {"type": "string"}},
        "thresholds": {"type": "object"},
        "webhook_url": {
            "type": ["string", "null"],
            "description": "masked (scheme://host/…), shown to admins only: the URL is a secret",
        },
        "runs": {"type": "array", "items": {"type": "object"}},
    },
}
DRILL_SCHEDULE_CREATED: Final[Schema] = {
    "type": "object",
    "required": ["schedule", "warnings"],
    "properties": {
        "schedule": DRILL_SCHEDULE,
        "warnings": {"type": "array", "items": {"type": "string"}},
    },
}
DRILL_SCHEDULE_LIST: Final[Schema] = {
    "type": "object",
    "required": ["schedules"],
    "properties": {"schedules": {"type": "array", "items": DRILL_SCHEDULE}},
}
DRILL_SCHEDULE_REMOVED: Final[Schema] = {
    "type": "object",
    "required": ["removed", "schedule"],
    "properties": {"removed": {"type": "boolean"}, "schedule": DRILL_SCHEDULE},
}
DRILL_RUN_CREATED: Final[Schema] = {
    "type": "object",
    "required": ["run_id", "drill_id", "broadcast"],
    "properties": {
        "run_id": {"type": "integer"},
        "drill_id": {"type": "integer"},
        "broadcast": BROADCAST,
    },
}
DRILL_RUN_LIST: Final[Schema] = {
    "type": "object",
    "required": ["runs"],
    "properties": {"runs": {"type": "array", "items": {"type": "object"}}},
}
DRILL_REPORT: Final[Schema] = {
    "type": "object",
    "required": ["drill_id", "verdict", "state", "thresholds", "total", "by_smsc", "checks"],
    "properties": {
        "drill_id": {"type": "integer"},
        "schedule": {"type": ["string", "null"]},
        "verdict": {
            "type": "string",
            "enum": ["pass", "fail", "pending"],
            "description": "pending: read inside the delivery window, receipts still awaited "
            "could yet make it pass (read it again after `open_until`)",
        },
        "open_until": {"type": ["string", "null"], "format": "date-time"},
        "state": {"type": "string"},
        "thresholds": {"type": "object"},
        "total": {"type": "object"},
        "by_smsc": {"type": "array", "items": {"type": "object"}},
        "by_area": {"type": "array", "items": {"type": "object"}},
        "checks": {"type": "array", "items": {"type": "object"}},
        "failures": {"type": "array", "items": {"type": "string"}},
        "timeline": {"type": "object"},
    },
}

SCHEMAS: Final[dict[str, Schema]] = {
    "BroadcastCreate": BROADCAST_CREATE,
    "FollowUp": FOLLOW_UP,
    "Action": ACTION,
    "TokenCreate": TOKEN_CREATE,
    "Error": ERROR,
    "Preview": PREVIEW,
    "Broadcast": BROADCAST,
    "Created": CREATED,
    "BroadcastList": BROADCAST_LIST,
    "Report": REPORT,
    "CapResult": CAP_RESULT,
    "Token": TOKEN,
    "TokenList": TOKEN_LIST,
    "AuditList": AUDIT_LIST,
    "Health": HEALTH,
    "Object": ANY_OBJECT,
    "DrillScheduleCreate": DRILL_SCHEDULE_CREATE,
    "DrillSchedule": DRILL_SCHEDULE,
    "DrillScheduleCreated": DRILL_SCHEDULE_CREATED,
    "DrillScheduleList": DRILL_SCHEDULE_LIST,
    "DrillScheduleRemoved": DRILL_SCHEDULE_REMOVED,
    "DrillRunCreated": DRILL_RUN_CREATED,
    "DrillRunList": DRILL_RUN_LIST,
    "DrillReport": DRILL_REPORT,
}
"""Every named schema: request bodies are validated with these very objects."""

_VALIDATORS: Final[dict[str, Draft202012Validator]] = {}
MAX_REPORTED: Final = 10


def validator(name: str) -> Draft202012Validator:
    found = _VALIDATORS.get(name)
    if found is None:
        schema = SCHEMAS[name]
        Draft202012Validator.check_schema(schema)
        found = _VALIDATORS[name] = Draft202012Validator(schema)
    return found


MAX_JSON_DEPTH: Final = 32
"""Deeper than any body the schemas describe (they need 3): refused before parsing, so that a
body nested thousands deep never reaches the parser's recursion (a RecursionError, a 500)."""
_JSON_STRING: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET: Final = re.compile(r"[^\[\]{}]+")


def json_depth(text: str) -> int:
    """How deep the arrays and objects of a JSON text nest (brackets inside strings aside): a
    linear pre-scan, no recursion. An unterminated string's brackets count, which only makes an
    invalid body look deeper."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    depth = deepest = 0
    for char in brackets:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def parse_json(raw: bytes) -> Any:
    """Decode a JSON body strictly: UTF-8, nested at most `MAX_JSON_DEPTH` deep, no
    NaN/Infinity, no lone surrogates."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_request(
            f"the body is not UTF-8 (byte {exc.start}): send JSON encoded in UTF-8",
            code="malformed_body",
        ) from None
    if json_depth(text) > MAX_JSON_DEPTH:
        raise bad_request(
            f"the body nests arrays or objects more than {MAX_JSON_DEPTH} deep: no request "
            "needs that many",
            code="malformed_body",
        )
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except json.JSONDecodeError as exc:
        raise bad_request(
            f"the body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
            code="malformed_body",
        ) from None
    except ValueError as exc:
        raise bad_request(str(exc), code="malformed_body") from None
    for text_value in _strings(value):
        try:
            text_value.encode("utf-8")
        except UnicodeEncodeError:
            raise bad_request(
                "the body contains an invalid \\u escape (a lone surrogate)",
                code="malformed_body",
            ) from None
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"the body contains {name}, which is not JSON: send a number")


def _strings(value: Any) -> Iterable[str]:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def check(name: str, instance: Any) -> dict[str, Any]:
    """Validate a request body against the named schema; 400 naming every problem."""
    errors = sorted(validator(name).iter_errors(instance), key=_error_order)
    if not errors:
        assert isinstance(instance, dict)
        return instance
    messages = [describe(e) for e in errors[:MAX_REPORTED]]
    more = len(errors) - 1
    raise ApiError(
        400,
        "invalid_body",
        messages[0] + (f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""),
        details=messages if len(messages) > 1 else None,
    )


def _error_order(error: ValidationError) -> tuple[int, str]:
    return (len(error.absolute_path), json_path(error.absolute_path))


def json_path(path: Iterable[Any]) -> str:
    out = "body"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def describe(error: ValidationError) -> str:
    """One validation error as a sentence that says what to send instead."""
    explain = _EXPLANATIONS.get(str(error.validator))
    sentence = explain(error) if explain is not None else None
    return f"{json_path(error.absolute_path)}: {sentence or error.message}"


def _unknown_fields(error: ValidationError) -> str | None:
    value = error.instance
    if not isinstance(value, dict):
        return None
    allowed = sorted(_schema(error).get("properties", {}))
    if not allowed:  # `variables`: values must be strings
        return None
    unknown = sorted(k for k in value if k not in allowed)
    return (
        f"unknown field{'s' if len(unknown) > 1 else ''} "
        f"{', '.join(repr(k) for k in unknown)}; allowed: {', '.join(allowed)}"
    )


def _missing_field(error: ValidationError) -> str:
    return f"missing required field {error.message.split(' ')[0]}"


def _wrong_type(error: ValidationError) -> str:
    return f"expected {_type_words(error.validator_value)}, got {_json_type(error.instance)}"


def _not_an_option(error: ValidationError) -> str:
    options = ", ".join(repr(v) for v in cast(list[Any], error.validator_value))
    return f"{_short(error.instance)} is not one of {options}"


def _bad_pattern(error: ValidationError) -> str:
    hint = _schema(error).get("description")
    if error.validator_value == PRINTABLE:
        hint = "control characters (newline, tab, NUL...) are not allowed"
    elif error.validator_value == VISIBLE:
        return f"{_short(error.instance)} is blank: give the text to put in messages"
    elif error.validator_value == VARIABLE_KEY:
        return _bad_variable_name(error)
    elif error.validator_value == NAME_PATTERN and hint is None:
        hint = "a name is lower-case letters, digits and _, starting with a letter"
    return f"{_short(error.instance)} is not valid" + (f": {hint}" if hint else "")


def _bad_variable_name(error: ValidationError) -> str:
    return (
        f"variable name {_short(error.instance)} is invalid: use lower-case letters, "
        "digits and _ (starting with a letter), then .LANG for one language (instruction.en)"
    )


def _invisible(error: ValidationError) -> str | None:
    """`not` is used for one thing: control and invisible characters in a variable."""
    if not isinstance(error.instance, str):
        return None
    found = invisible_characters(error.instance) or ["?"]
    return (
        f"has control or invisible characters ({', '.join(found)}): type it again as plain "
        "text on one line"
    )


def _schema(error: ValidationError) -> dict[str, Any]:
    return error.schema if isinstance(error.schema, dict) else {}


_EXPLANATIONS: Final[dict[str, Callable[[ValidationError], str | None]]] = {
    "additionalProperties": _unknown_fields,
    "required": _missing_field,
    "type": _wrong_type,
    "enum": _not_an_option,
    "pattern": _bad_pattern,
    "propertyNames": _bad_variable_name,
    "not": _invisible,
}
"""The validators whose errors `describe` words itself; for any other, or when the wording
returns None, the validator's own message."""


def _type_words(expected: Any) -> str:
    names = {
        "object": "an object",
        "array": "an array",
        "string": "a string",
        "integer": "an integer",
        "number": "a number",
        "boolean": "true or false",
        "null": "null",
    }
    if isinstance(expected, list):
        return " or ".join(names.get(str(e), str(e)) for e in expected)
    return names.get(str(expected), str(expected))


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _short(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 60 else text[:57] + "..."


IDEMPOTENCY_KEY: Final = re.compile(r"^[\x21-\x7e]{1,200}$")
REQUEST_ID: Final = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
