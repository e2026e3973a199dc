"""Liveness, readiness, metrics and the OpenAPI document (no token needed)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from broadcaster.api.context import Call
from broadcaster.http.context import reply
from broadcaster.http.metrics import CONTENT_TYPE
from broadcaster.store.database import ping

READY_TIMEOUT_S = 2.0


async def healthz(call: Call) -> web.StreamResponse:
    """The process answers (says nothing about the database or the SMSCs)."""
    return reply({"status": "ok"})


async def readyz(call: Call) -> web.StreamResponse:
    """Ready to send: the database answers and at least one SMSC bind is up."""
    services = call.services
    problems: list[str] = []
    database = "ok"
    try:
        async with asyncio.timeout(READY_TIMEOUT_S), services.db.acquire() as conn:
            await ping(conn)
    except Exception as exc:  # any failure means "not ready", with the reason
        database = f"{type(exc).__name__}: {exc}"
        problems.append(f"database: {database}")
    smscs: list[dict[str, Any]] = []
    pool = services.worker.pool if services.worker is not None else None
    if pool is None:
        problems.append("no SMPP pool: this process runs no worker")
    else:
        for smsc in pool.health():
            smscs.append({"name": smsc.name, "state": smsc.state, "binds_up": smsc.binds_up})
        if not any(s["binds_up"] for s in smscs):
            problems.append("no SMSC bind is up")
    ready = not problems
    return reply(
        {
            "status": "ready" if ready else "not ready",
            "database": database,
            "binds_up": sum(s["binds_up"] for s in smscs),
            "smscs": smscs,
            "problems": problems,
        },
        status=200 if ready else 503,
    )


async def metrics(call: Call) -> web.StreamResponse:
    services = call.services
    try:
        async with asyncio.timeout(READY_TIMEOUT_S), services.db.acquire() as conn:
            await services.metrics.refresh(conn)
    except Exception:  # stale broadcast figures beat no metrics at all
        services.metrics.database_unreachable()
    return web.Response(
        body=services.metrics.render(),
        headers={"Content-Type": CONTENT_TYPE},
    )


async def openapi(call: Call) -> web.StreamResponse:
    from broadcaster.api.openapi import document

    return reply(document())
