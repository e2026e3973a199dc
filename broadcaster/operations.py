"""What every way in (CLI, HTTP, drills) does with a broadcast: plan it, store it, run it.

Thin glue between the pure planning code, the store and the engine, so that the CLI and the API
cannot drift apart in what they check before sending.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog

from broadcaster.engine.runner import RunStats
from broadcaster.engine.worker import Worker
from broadcaster.errors import InputError
from broadcaster.planning import Plan, plan_broadcast
from broadcaster.settings import Settings, SmscConfig
from broadcaster.store import broadcasts as store
from broadcaster.store.areas import load_area_index, load_area_variables
from broadcaster.store.broadcasts import reached_counts
from broadcaster.store.database import Conn
from broadcaster.store.subscribers import target_counts
from broadcaster.targeting import cells_named, parse_area, resolve_target
from broadcaster.text.templates import TemplateCatalogue

log = structlog.get_logger(__name__)

DEFAULT_EXPIRY = timedelta(hours=2)


@dataclass(frozen=True)
class BroadcastRequest:
    """What an operator asks for, before any check."""

    areas: Sequence[str]
    template: str
    variables: Mapping[str, str]
    exclude: Sequence[str] = ()
    kind: str = "live"
    test_group_only: bool = False
    gsm_safe: bool = False
    expires_in: timedelta = DEFAULT_EXPIRY
    created_by: str = "cli"
    parent_id: int | None = None
    """An update or all-clear follows this broadcast: same areas unless others are named, and
    the parent is stopped if it is still sending."""
    reached_only: bool = False
    """With a parent: only the recipients the parent reached (accepted by the SMSC)."""
    max_parts: int | None = None
    """The most parts one message may take; None: the configured `max_parts`."""


def parse_variables(pairs: Sequence[str]) -> dict[str, str]:
    """`name=value` pairs from the command line; a malformed one is an InputError."""
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--var {pair!r} is not of the form name=value")
        out[name.strip()] = value
    return out


async def make_plan(conn: Conn, settings: Settings, request: BroadcastRequest) -> Plan:
    """Check everything and build the plan; raises InputError (nothing is stored or sent)."""
    if request.kind not in ("live", "drill"):
        raise InputError(f"kind must be 'live' or 'drill', not {request.kind!r}")
    if request.reached_only and request.parent_id is None:
        raise InputError("reached-only needs the broadcast it follows (--follows ID)")
    if request.parent_id is not None:
        request = await _follow_parent(conn, request)
    catalogue = TemplateCatalogue(settings.templates_dir)
    scenario = catalogue.scenario(request.template)
    if request.kind == "drill" and scenario.kind != "drill":
        raise InputError(
            f"a drill must use a drill template (with the exercise marker), not {scenario.name!r}"
        )
    if request.kind == "live" and scenario.kind == "drill":
        raise InputError(f"template {scenario.name!r} is for drills: send it with --drill")
    include = [parse_area(a) for a in request.areas]
    exclude = [parse_area(a) for a in request.exclude]
    index = await load_area_index(conn, cells_named(include + exclude))
    target = resolve_target(
        include,
        index,
        exclude=exclude,
        test_group_only=request.test_group_only or request.kind == "drill",
    )
    max_parts = settings.max_parts if request.max_parts is None else request.max_parts
    if max_parts < 1:
        raise InputError(f"the maximum number of parts must be at least 1, not {max_parts}")
    if request.reached_only:
        assert request.parent_id is not None
        counts = await reached_counts(conn, target, request.parent_id)
    else:
        counts = await target_counts(conn, target)
    area_variables = await load_area_variables(conn, target.departements)
    return plan_broadcast(
        catalogue=catalogue,
        scenario=scenario,
        target=target,
        index=index,
        counts=counts,
        area_variables=area_variables,
        variables=request.variables,
        max_parts=max_parts,
        gsm_safe=request.gsm_safe,
    )


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
        request, areas=tuple(target.get("areas", ())), exclude=tuple(target.get("exclude", ()))
    )


async def create_broadcast(
    conn: Conn,
    settings: Settings,
    request: BroadcastRequest,
    plan: Plan,
    state: str = "approved",
) -> int:
    """Store an approved broadcast with its texts and chunks; return its id."""
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
        priority=10 if request.kind == "live" else 0,
        state=state,
        areas=(list(request.areas), list(request.exclude)),
        parent_id=request.parent_id,
        reached_only=request.reached_only,
    )
    if request.parent_id is not None:
        # An update or all-clear supersedes its parent: stop the parent if still active.
        stopped = await store.stop_if_active(conn, request.parent_id)
        if stopped:
            log.warning("parent_broadcast_cancelled", parent_id=request.parent_id)
    return broadcast_id


async def run_broadcast(
    db: asyncpg.Pool,
    smscs: Sequence[SmscConfig],
    broadcast_id: int,
    on_progress: Callable[[RunStats], None] | None = None,
    on_worker: Callable[[Worker], None] | None = None,
) -> tuple[RunStats, dict[str, Any]]:
    """Bind, run one broadcast until it halts (completed, paused, cancelled...), unbind; return
    run and pool statistics. `on_worker` sees the worker first (a display reads its pool)."""
    worker = Worker(db, smscs, on_progress=on_progress)
    if on_worker is not None:
        on_worker(worker)
    runs = await worker.run(only=broadcast_id)
    assert worker.pool is not None
    stats = runs[-1] if runs else RunStats(broadcast_id, state="not runnable")
    pool_stats = dict(vars(worker.pool.stats))
    pool_stats["receipts_recorded"] = worker.receipts.recorded
    return stats, pool_stats


def plan_as_json(plan: Plan, parts_per_second: float) -> dict[str, Any]:
    """The preview, as scripts and the API see it."""
    return {
        "template": plan.scenario.name,
        "recipients": plan.recipients,
        "parts": plan.parts,
        "eta_seconds": plan.eta_seconds(parts_per_second),
        "warnings": list(plan.warnings),
        "groups": [
            {
                "departement": g.departement,
                "language": g.language,
                "text": g.text,
                "encoding": g.message.encoding,
                "characters": g.message.chars,
                "parts_per_message": g.message.part_count,
                "recipients": g.recipients,
            }
            for g in plan.groups
        ],
    }
