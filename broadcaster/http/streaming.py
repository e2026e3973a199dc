"""CSV streamed to an HTTP client (the API and the console alike): the list of recipients not
reached can hold millions of lines, so it is written as it is read, never held whole."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

import structlog
from aiohttp import web

log = structlog.get_logger(__name__)

LINES_PER_WRITE = 1000


async def stream_csv(
    request: web.Request,
    lines: AsyncGenerator[str, None],
    filename: str,
    headers: dict[str, str] | None = None,
) -> web.StreamResponse:
    """Send `lines` (header first) as a CSV attachment. The first line is read before anything
    is sent, so a refusal (not allowed, not found) becomes the usual error reply. A client that
    goes away mid-way ends the stream quietly: the lines are closed (their database connection
    given back at once) and it is logged as abandoned, not as a database outage."""
    async with contextlib.aclosing(lines):
        header = await anext(lines)  # authorised and found, or the error reply
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="{filename}"',
                **(headers or {}),
            }
        )
        await response.prepare(request)
        sent = 0
        try:
            batch = [header]
            async for line in lines:
                batch.append(line)
                if len(batch) >= LINES_PER_WRITE:
                    await response.write("".join(batch).encode())
                    sent += len(batch)
                    batch = []
            await response.write("".join(batch).encode())
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError) as exc:
            # aiohttp cancels the handler of a connection lost (or a write fails first)
            log.info("csv_export_abandoned", path=request.path, lines_sent=sent)
            if isinstance(exc, asyncio.CancelledError):
                raise
        return response
