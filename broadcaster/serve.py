"""`broadcaster serve`, assembled: one aiohttp app (the API at /v1, the console at /console), a
worker and the drill scheduler in one process. The composition root: the only module that knows
every part; each part mounts itself onto the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from broadcaster.api.app import add_routes
from broadcaster.commands.context import Context
from broadcaster.drills.scheduler import DrillScheduler
from broadcaster.engine.worker import Worker
from broadcaster.errors import EXIT_FAILURE, EXIT_OK, ConfigError, cannot_listen
from broadcaster.http.context import SERVICES, Services
from broadcaster.http.edge import edge
from broadcaster.http.metrics import Metrics
from broadcaster.http.ratelimit import RateLimiter
from broadcaster.settings import Settings, SmscConfig
from broadcaster.smpp.pool import contracted_capacity
from broadcaster.store.database import create_pool, ensure_migrated
from broadcaster.web import setup as mount_console

log = structlog.get_logger(__name__)

AUTH_FAILURES_PER_S = 0.2
AUTH_FAILURE_BURST = 10


def create_app(
    settings: Settings,
    db: asyncpg.Pool[asyncpg.Record],
    worker: Worker | None = None,
    *,
    console: bool = False,
    dsn: str | None = None,
) -> web.Application:
    """The app over a database pool; `worker` (if any) is this process's engine, whose SMPP
    pool feeds /readyz, /metrics and the live pages; `console` mounts the console."""
    smscs = worker.smscs if worker is not None else settings.smscs
    services = Services(
        commands=Context(
            db=db,
            settings=settings,
            parts_per_second=contracted_capacity(worker.smscs) if worker is not None else 0.0,
            smscs=tuple(s.name for s in smscs),
            dsn=dsn or settings.database_url or "",
        ),
        worker=worker,
        limiter=RateLimiter(settings.api_rate_per_second, settings.api_rate_burst),
        auth_limiter=RateLimiter(AUTH_FAILURES_PER_S, AUTH_FAILURE_BURST),
        metrics=Metrics(lambda: worker.pool if worker is not None else None),
    )
    app = web.Application(client_max_size=settings.api_max_body_bytes, middlewares=[edge])
    app[SERVICES] = services
    add_routes(app)
    if console:
        mount_console(app, services)
    return app


@dataclass(frozen=True)
class Listening:
    url: str
    smscs: tuple[str, ...]
    mock_smsc: bool


async def serve(
    settings: Settings,
    dsn: str,
    host: str,
    port: int,
    *,
    mock_smsc: bool = False,
    announce: Callable[[Listening], None] = lambda listening: None,
) -> int:
    """Run the app, a worker and the drill scheduler until SIGINT/SIGTERM (exit 0), or until
    the worker or the scheduler stops on its own (exit 1: nothing may stop silently)."""
    smscs = settings.smscs
    if not smscs and not mock_smsc:
        raise ConfigError(
            "no SMSC is configured: set BROADCASTER_SMSC_URL or [[smsc]] in the config file, "
            "or pass --mock-smsc for a lab (nothing reaches a phone)"
        )
    await ensure_migrated(dsn, settings.sql_dir)
    mock: Any = None
    if mock_smsc:
        from broadcaster.mocksmsc import MockConfig, MockSmsc

        mock = MockSmsc(MockConfig(receipts=True))  # drills measure delivery: receipts on
        mock_port = await mock.start()
        smscs = (SmscConfig(name="mock", port=mock_port, binds=2, window=256),)
        log.warning("mock_smsc_started", port=mock_port, note="messages go to the mock only")
    # Separate pools: a flood of API requests cannot starve the engine of connections.
    worker_db = await create_pool(dsn, min_size=2, max_size=6)
    api_db = await create_pool(dsn, min_size=1, max_size=6)
    worker = Worker(worker_db, smscs)
    # Fires drill schedules, reports drills; records the SMSCs the worker sends through.
    scheduler = DrillScheduler(api_db, settings, smscs=[s.name for s in smscs])
    tasks: list[asyncio.Task[Any]] = []
    runner = web.AppRunner(
        create_app(settings, api_db, worker, console=True, dsn=dsn),
        access_log=None,
        handle_signals=False,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            raise cannot_listen("the HTTP API and console", host, port, "--port", exc) from None
        # Listening first: a port in use stops `serve` before any bind or task is started.
        worker_task = asyncio.create_task(worker.run(), name="worker")
        scheduler_task = asyncio.create_task(scheduler.run(), name="drill-scheduler")
        tasks += [
            worker_task,
            scheduler_task,
            asyncio.create_task(purge_periodically(api_db, settings), name="retention"),
            asyncio.create_task(compact_periodically(api_db, settings), name="compact"),
        ]
        bound_host, bound_port = runner.addresses[0][:2]
        announce(
            Listening(f"http://{bound_host}:{bound_port}", tuple(s.name for s in smscs), bool(mock))
        )
        return await _until_stopped(stop, worker_task, scheduler_task)
    finally:
        await runner.cleanup()
        worker.stop()
        scheduler.stop()
        for task in tasks[:2]:  # the worker and the scheduler, told to stop
            with contextlib.suppress(Exception):
                await task
        for task in tasks[2:]:  # the periodic ones, cancelled
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        await api_db.close()
        await worker_db.close()
        if mock is not None:
            await mock.stop()


async def purge_periodically(db: asyncpg.Pool[asyncpg.Record], settings: Settings) -> None:
    """Apply the retention settings now and every `retention_interval_s` (0: never). A purge
    that fails is logged and tried again next time: it must not stop the service."""
    from broadcaster.commands.retention import purge
    from broadcaster.domain.caller import SCHEDULER

    if settings.retention_interval_s <= 0:
        return
    while True:
        try:
            await purge(db, settings, SCHEDULER)
        except Exception as exc:  # the next round may succeed (database back, lock released)
            log.error("retention_purge_failed", action="retention_purge", error=str(exc))
        await asyncio.sleep(settings.retention_interval_s)


async def compact_periodically(db: asyncpg.Pool[asyncpg.Record], settings: Settings) -> None:
    """Fold pending location sightings into the last-seen table every
    `locations_compact_interval_s` (0: never): selection reads the pending ones too, at a cost
    that grows with them. A failure is logged and tried again next time."""
    from broadcaster.store.locations import compact

    if settings.locations_compact_interval_s <= 0:
        return
    while True:
        try:
            async with db.acquire() as conn:
                done = await compact(conn)
            if done.moved:
                log.info(
                    "locations_compacted",
                    action="locations_compact",
                    moved=done.moved,
                    written=done.written,
                    seconds=round(done.seconds, 3),
                )
        except Exception as exc:  # the next round may succeed (database back, lock released)
            log.error("locations_compact_failed", action="locations_compact", error=str(exc))
        await asyncio.sleep(settings.locations_compact_interval_s)


async def _until_stopped(
    stop: asyncio.Event, worker_task: asyncio.Task[Any], scheduler_task: asyncio.Task[Any]
) -> int:
    stopping = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait(
        {stopping, worker_task, scheduler_task}, return_when=asyncio.FIRST_COMPLETED
    )
    stopping.cancel()
    code = EXIT_OK
    watched = (
        (worker_task, "worker", "worker_stopped"),
        (scheduler_task, "drill scheduler", "drill_scheduler_died"),
    )
    for task, what, event in watched:
        if task in done:  # neither ends before stop: drills must not stop silently either
            exc = task.exception()
            log.error(
                event,
                action=event,
                task=task.get_name(),
                error=str(exc) if exc else "returned",
                exc_info=exc,
            )
            print(f"error: the {what} stopped: {exc or 'it returned'}", file=sys.stderr)
            code = EXIT_FAILURE
    return code
