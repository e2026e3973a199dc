"""Plan a request against the database, and store what was planned: the steps every command
that creates a broadcast shares (create, update, all-clear, CAP, drills, `send`), so that no way
in can drift from the others in what it checks before anything is stored.

A plan is a preview: it shows everything, reference placeholders and texts in another language
included (as warnings). Storing it is where a live broadcast that would say something false is
refused (`refuse_unsendable`): no way in stores one without that check."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import structlog

from broadcaster.commands import geography
from broadcaster.domain.caller import Caller
from broadcaster.domain.requests import BroadcastRequest, check_expiry
from broadcaster.domain.states import TRANSITIONS
from broadcaster.errors import InputError
from broadcaster.planning import Plan, check_sendable, plan_broadcast
from broadcaster.settings import Settings
from broadcaster.store import audit, geo
from broadcaster.store import broadcasts as store
from broadcaster.store.areas import load_area_variables
from broadcaster.store.database import Conn
from broadcaster.store.subscribers import target_counts
from broadcaster.targeting import Target, parse_area
from broadcaster.text.templates import Scenario, TemplateCatalogue

log = structlog.get_logger(__name__)

LIVE_PRIORITY = 10
DRILL_PRIORITY = 0


async def make_plan(conn: Conn, settings: Settings, request: BroadcastRequest) -> Plan:
    """Check everything and build the plan; raises InputError (nothing is stored or sent)."""
    if request.kind not in ("live", "drill"):
        raise InputError(f"kind must be 'live' or 'drill', not {request.kind!r}")
    if request.reached_only and request.parent_id is None:
        raise InputError("reached-only needs the broadcast it follows (--follows ID)")
    check_expiry(request.expires_in)
    if request.parent_id is not None:
        request = await _follow_parent(conn, request)
    catalogue = TemplateCatalogue(settings.templates_dir)
    scenario = catalogue.scenario(request.template)
    _check_template_kind(request.kind, scenario)
    max_parts = settings.max_parts if request.max_parts is None else request.max_parts
    if max_parts < 1:
        raise InputError(f"the maximum number of parts must be at least 1, not {max_parts}")
    resolved, counts = await reach(conn, request)
    target, index = resolved.target, resolved.index
    area = await load_area_variables(conn, target.all_departements)
    plan = plan_broadcast(
        catalogue=catalogue,
        scenario=scenario,
        target=target,
        index=index,
        counts=counts,
        area_variables=area.values,
        variables=request.variables,
        max_parts=max_parts,
        gsm_safe=request.gsm_safe,
        placeholders=area.placeholders,
    )
    return replace(plan, presence=resolved.summary, expires_in_s=request.expires_in.total_seconds())


async def reach(
    conn: Conn, request: BroadcastRequest
) -> tuple[geography.Resolved, dict[tuple[str, str], int]]:
    """The request's target and its recipients per (département, language): what a plan
    counts before any text is rendered (the console's map asks this as a shape changes)."""
    include = [parse_area(a) for a in request.areas]
    exclude = [parse_area(a) for a in request.exclude]
    resolved = await geography.resolve(
        conn,
        include,
        exclude,
        mode=geography.check_mode(request.mode, request.freshness_s),
        window_s=request.freshness_s,
        test_group_only=request.test_group_only or request.kind == "drill",
        visitor_languages=request.visitor_languages,
    )
    counts = await _resident_counts(conn, resolved.target, request.parent_id, request.reached_only)
    for key, n in resolved.present_counts.items():
        counts[key] = counts.get(key, 0) + n
    return resolved, counts


async def _resident_counts(
    conn: Conn, target: Target, parent_id: int | None, reached_only: bool
) -> dict[tuple[str, str], int]:
    """Recipients per (département, language) of the target's resident part (without those
    its present part reaches)."""
    if not target.departements:
        return {}
    if reached_only:
        assert parent_id is not None
        return dict(await store.reached_counts(conn, target, parent_id))
    if target.present:
        return await geo.resident_counts_absent(conn, target)
    return await target_counts(conn, target)


def refuse_unsendable(request: BroadcastRequest, plan: Plan) -> None:
    """A live plan whose texts carry a reference placeholder, or reach groups in another
    language without the request allowing it, is refused (InputError): nothing is stored.
    `create_broadcast` always checks; `send` checks before asking for the confirmation too."""
    check_sendable(plan, kind=request.kind, allow_language_fallback=request.allow_language_fallback)


def _check_template_kind(kind: str, scenario: Scenario) -> None:
    """A drill needs a drill template (with the exercise marker); a live send any other."""
    if kind == "drill" and scenario.kind != "drill":
        raise InputError(
            f"a drill must use a drill template (with the exercise marker), not {scenario.name!r}"
        )
    if kind == "live" and scenario.kind == "drill":
        raise InputError(f"template {scenario.name!r} is for drills: send it with --drill")


async def _follow_parent(conn: Conn, request: BroadcastRequest) -> BroadcastRequest:
    """Fill an update's areas from the broadcast it follows; refuse a mismatched kind."""
    assert request.parent_id is not None
    parent = await store.get_broadcast(conn, request.parent_id)
    if parent["kind"] != request.kind:
        raise InputError(
            f"broadcast {request.parent_id} is a {parent['kind']} broadcast: "
            f"a {request.kind} cannot follow it"
        )
    if request.areas:
        return request
    target = json.loads(parent["target"])
    return replace(
        request,
        areas=tuple(target.get("areas", ())),
        exclude=tuple(target.get("exclude", ())),
        mode=target.get("mode", request.mode),
        freshness_s=target.get("present_window_s", request.freshness_s),
        visitor_languages=target.get("visitor_languages", request.visitor_languages),
    )


async def create_broadcast(
    conn: Conn,
    settings: Settings,
    request: BroadcastRequest,
    plan: Plan,
    state: str = "approved",
    caller: Caller | None = None,
) -> int:
    """Store a planned broadcast with its texts and chunks; return its id. An update or
    all-clear stops the broadcast it follows if that one is still active (in that one's audit
    trail as cancelled by `caller`, when given). A plan that must not be sent live is refused
    first (`refuse_unsendable`)."""
    refuse_unsendable(request, plan)
    if request.parent_id is not None:
        request = await _follow_parent(conn, request)
    broadcast_id = await store.create_broadcast(
        conn,
        plan,
        kind=request.kind,
        variables=dict(request.variables),
        expires_at=datetime.now(UTC) + request.expires_in,
        chunk_size=settings.chunk_size,
        created_by=request.created_by,
        priority=LIVE_PRIORITY if request.kind == "live" else DRILL_PRIORITY,
        state=state,
        areas=(list(request.areas), list(request.exclude)),
        parent_id=request.parent_id,
        reached_only=request.reached_only,
    )
    parent = request.parent_id
    if parent is not None and await store.apply(conn, parent, "cancel"):
        log.warning("parent_broadcast_cancelled", parent_id=parent)
        if caller is not None:  # who stopped it: its after-action report's timeline
            stopped = audit.subject_of("broadcast", parent)
            await audit.record(conn, caller, "cancel", stopped, follow_up=broadcast_id)
    return broadcast_id


def initial_state(approval_required: bool) -> str:
    """Where a new broadcast starts: waiting for a second person, or approved."""
    return TRANSITIONS["submit"][1] if approval_required else TRANSITIONS["approve"][1]


def plan_as_json(plan: Plan, parts_per_second: float) -> dict[str, Any]:
    """The preview, as scripts and the API see it. `placeholders` (variable -> départements),
    `fictional` (the operator's phone variables in the fiction range -> their value) and each
    group's `also_for_languages` and `variables_in_other_languages` say what a live send
    refuses; `warnings` says it in words."""
    return {
        "template": plan.scenario.name,
        "recipients": plan.recipients,
        "parts": plan.parts,
        "eta_seconds": plan.eta_seconds(parts_per_second),
        "warnings": [*plan.warnings, *plan.expiry_notes(parts_per_second)],
        "placeholders": {name: list(deps) for name, deps in plan.placeholders.items()},
        "fictional": dict(plan.fictional),
        "presence": None if plan.presence is None else plan.presence.as_json(),
        "groups": [
            {
                "departement": g.departement,
                "language": g.language,
                "text": g.text,
                "encoding": g.message.encoding,
                "characters": g.message.chars,
                "parts_per_message": g.message.part_count,
                "recipients": g.recipients,
                "also_for_languages": {lang: n for lang, n in g.fallback_for},
                "variables_in_other_languages": dict(g.written_in),
            }
            for g in plan.groups
        ],
    }
