"""The route table: the one place that says what each endpoint is and what it accepts. The
router (`app.py`), the request checks and the OpenAPI document (`openapi.py`) are all generated
from it; who may call each one is the commands' table (`commands.access.OPERATIONS`), keyed by
the operation id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Final, Literal

from broadcaster.api import admin, alerts, broadcasts, drills, system
from broadcaster.api.context import Handler
from broadcaster.commands.access import OPERATIONS
from broadcaster.domain.caller import Permission

BodyKind = Literal["json", "cap"]
CAP_MEDIA_TYPES: Final = ("application/cap+xml", "application/xml", "text/xml")


@dataclass(frozen=True)
class QueryParam:
    name: str
    description: str
    minimum: int
    maximum: int


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    """OpenAPI form, e.g. `/v1/broadcasts/{broadcast_id}` (every path parameter is an id)."""
    operation_id: str
    summary: str
    handler: Handler
    auth: bool = True
    """A bearer token is needed (401 without one)."""
    body_schema: str | None = None
    """A name in `schemas.SCHEMAS` (JSON) or None (no body)."""
    body_kind: BodyKind = "json"
    body_required: bool = False
    query: tuple[QueryParam, ...] = ()
    ok_status: tuple[int, ...] = (200,)
    ok_schema: str = "Object"
    idempotent: bool = False
    """Accepts an Idempotency-Key header."""
    tags: tuple[str, ...] = field(default=())

    @property
    def permission(self) -> Permission | None:
        """What the token's role must allow (403 otherwise), as the command checks it; None:
        no token is needed."""
        return OPERATIONS[self.operation_id].permission if self.auth else None

    @property
    def creator_may(self) -> bool:
        """The broadcast's creator may call it even without `permission`."""
        return self.auth and OPERATIONS[self.operation_id].creator_may

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)

    @property
    def aiohttp_path(self) -> str:
        return re.sub(r"{(\w+)}", r"{\1:[0-9]+}", self.path)


LIMIT = QueryParam("limit", "how many, newest first (default 20)", 1, 500)
BEFORE = QueryParam("before", "page back: entries older than this id", 1, 2**63 - 1)

ROUTES: Final[tuple[Route, ...]] = (
    Route(
        "GET",
        "/healthz",
        "healthz",
        "The process answers",
        system.healthz,
        auth=False,
        ok_schema="Health",
        tags=("system",),
    ),
    Route(
        "GET",
        "/readyz",
        "readyz",
        "Ready: the database answers and an SMSC bind is up",
        system.readyz,
        auth=False,
        ok_status=(200, 503),
        ok_schema="Health",
        tags=("system",),
    ),
    Route(
        "GET",
        "/metrics",
        "metrics",
        "Prometheus metrics (text exposition format)",
        system.metrics,
        auth=False,
        tags=("system",),
    ),
    Route(
        "GET",
        "/v1/openapi.json",
        "openapi",
        "This document",
        system.openapi,
        auth=False,
        tags=("system",),
    ),
    Route(
        "GET",
        "/v1/broadcasts",
        "listBroadcasts",
        "Recent broadcasts, newest first",
        broadcasts.list_recent,
        query=(LIMIT,),
        ok_schema="BroadcastList",
        tags=("broadcasts",),
    ),
    Route(
        "POST",
        "/v1/broadcasts",
        "createBroadcast",
        "Create a broadcast (pending approval when live above the threshold), or preview it "
        "with dry_run",
        broadcasts.create,
        body_schema="BroadcastCreate",
        body_required=True,
        ok_status=(200, 201),
        ok_schema="Created",
        idempotent=True,
        tags=("broadcasts",),
    ),
    Route(
        "GET",
        "/v1/broadcasts/{broadcast_id}",
        "getBroadcast",
        "A broadcast's state with live counts",
        broadcasts.get,
        ok_schema="Broadcast",
        tags=("broadcasts",),
    ),
    Route(
        "GET",
        "/v1/broadcasts/{broadcast_id}/report",
        "getReport",
        "Final report: counts, failures by status, receipts, texts, follow-ups, audit trail, "
        "and the after-action report (Accept: text/html for it as one page)",
        broadcasts.report,
        ok_schema="Report",
        tags=("broadcasts",),
    ),
    Route(
        "GET",
        "/v1/broadcasts/{broadcast_id}/not-reached",
        "exportNotReached",
        "Recipients not reached, as CSV, to follow up by other means (approvers, admins; audited)",
        broadcasts.not_reached,
        tags=("broadcasts",),
    ),
    Route(
        "POST",
        "/v1/broadcasts/{broadcast_id}/approve",
        "approveBroadcast",
        "Approve a pending broadcast (by a different person than its creator)",
        broadcasts.approve,
        body_schema="Action",
        ok_schema="Broadcast",
        tags=("broadcasts",),
    ),
    Route(
        "POST",
        "/v1/broadcasts/{broadcast_id}/cancel",
        "cancelBroadcast",
        "Cancel: no new part is submitted within a second (approvers, admins, the creator)",
        broadcasts.cancel,
        body_schema="Action",
        ok_schema="Broadcast",
        tags=("broadcasts",),
    ),
    Route(
        "POST",
        "/v1/broadcasts/{broadcast_id}/pause",
        "pauseBroadcast",
        "Pause: stop submitting, keep the rest for resume",
        broadcasts.pause,
        body_schema="Action",
        ok_schema="Broadcast",
        tags=("broadcasts",),
    ),
    Route(
        "POST",
        "/v1/broadcasts/{broadcast_id}/resume",
        "resumeBroadcast",
        "Resume a paused broadcast",
        broadcasts.resume,
        body_schema="Action",
        ok_schema="Broadcast",
        tags=("broadcasts",),
    ),
    Route(
        "POST",
        "/v1/broadcasts/{broadcast_id}/update",
        "updateBroadcast",
        "An update that follows this broadcast (same areas by default); stops it if still sending",
        broadcasts.update,
        body_schema="FollowUp",
        ok_status=(200, 201),
        ok_schema="Created",
        idempotent=True,
        tags=("broadcasts",),
    ),
    Route(
        "POST",
        "/v1/broadcasts/{broadcast_id}/all-clear",
        "allClearBroadcast",
        "The all-clear that follows this broadcast (same areas by default); stops it if still "
        "sending",
        broadcasts.all_clear,
        body_schema="FollowUp",
        ok_status=(200, 201),
        ok_schema="Created",
        idempotent=True,
        tags=("broadcasts",),
    ),
    Route(
        "POST",
        "/v1/cap",
        "postCap",
        "A CAP 1.2 alert: Actual -> public, Exercise -> test group, Test/Draft -> validated "
        "only; Update/Cancel act on the referenced alert",
        alerts.post,
        body_kind="cap",
        body_required=True,
        ok_status=(200, 201),
        ok_schema="CapResult",
        tags=("cap",),
    ),
    Route(
        "GET",
        "/v1/tokens",
        "listTokens",
        "API tokens (never the tokens themselves)",
        admin.list_tokens,
        ok_schema="TokenList",
        tags=("admin",),
    ),
    Route(
        "POST",
        "/v1/tokens",
        "createToken",
        "Create a token: it is shown once, in the answer",
        admin.create_token,
        body_schema="TokenCreate",
        body_required=True,
        ok_status=(201,),
        ok_schema="Token",
        tags=("admin",),
    ),
    Route(
        "POST",
        "/v1/tokens/{token_id}/activate",
        "activateToken",
        "Activate a token minted for another person: by a second admin, not the one who minted it",
        admin.activate_token,
        body_schema="Action",
        ok_schema="Token",
        tags=("admin",),
    ),
    Route(
        "POST",
        "/v1/tokens/{token_id}/revoke",
        "revokeToken",
        "Revoke a token: refused from the next request on",
        admin.revoke_token,
        body_schema="Action",
        ok_schema="Token",
        tags=("admin",),
    ),
    Route(
        "GET",
        "/v1/audit",
        "listAudit",
        "The audit log, newest first",
        admin.list_audit,
        query=(LIMIT, BEFORE),
        ok_schema="AuditList",
        tags=("admin",),
    ),
    Route(
        "GET",
        "/v1/drill-schedules",
        "listDrillSchedules",
        "Drill schedules with their next fire times",
        drills.list_schedules,
        ok_schema="DrillScheduleList",
        tags=("drills",),
    ),
    Route(
        "POST",
        "/v1/drill-schedules",
        "createDrillSchedule",
        "Schedule a drill (cron expression in a time zone; test group only, exercise marker)",
        drills.create_schedule,
        body_schema="DrillScheduleCreate",
        body_required=True,
        ok_status=(201,),
        ok_schema="DrillScheduleCreated",
        tags=("drills",),
    ),
    Route(
        "GET",
        "/v1/drill-schedules/{drill_schedule_id}",
        "getDrillSchedule",
        "A drill schedule, its next fire times and its recent runs",
        drills.get_schedule,
        ok_schema="DrillSchedule",
        tags=("drills",),
    ),
    Route(
        "DELETE",
        "/v1/drill-schedules/{drill_schedule_id}",
        "deleteDrillSchedule",
        "Remove a drill schedule (its past runs and reports stay)",
        drills.remove_schedule,
        ok_schema="DrillScheduleRemoved",
        tags=("drills",),
    ),
    Route(
        "POST",
        "/v1/drill-schedules/{drill_schedule_id}/enable",
        "enableDrillSchedule",
        "Enable a drill schedule (fire times while it was disabled are not missed)",
        drills.enable_schedule,
        body_schema="Action",
        ok_schema="DrillSchedule",
        tags=("drills",),
    ),
    Route(
        "POST",
        "/v1/drill-schedules/{drill_schedule_id}/disable",
        "disableDrillSchedule",
        "Disable a drill schedule",
        drills.disable_schedule,
        body_schema="Action",
        ok_schema="DrillSchedule",
        tags=("drills",),
    ),
    Route(
        "POST",
        "/v1/drill-schedules/{drill_schedule_id}/run",
        "runDrillSchedule",
        "Run this schedule's drill now (sent by the server's worker; reported when receipts "
        "are in)",
        drills.run_schedule,
        body_schema="Action",
        ok_status=(201,),
        ok_schema="DrillRunCreated",
        tags=("drills",),
    ),
    Route(
        "GET",
        "/v1/drills",
        "listDrills",
        "Recent drill runs (started, missed, not started) with their verdicts, newest first",
        drills.list_drills,
        query=(LIMIT,),
        ok_schema="DrillRunList",
        tags=("drills",),
    ),
    Route(
        "GET",
        "/v1/drills/{drill_id}/report",
        "getDrillReport",
        "A drill's report: accepted, delivered, failures by status, time to accept and to "
        "delivery per SMSC and per area, against its thresholds",
        drills.report,
        ok_schema="DrillReport",
        tags=("drills",),
    ),
)
