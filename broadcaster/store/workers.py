"""Workers' heartbeats: who is sending, so that a waiting broadcast can say what it waits for."""

from __future__ import annotations

from collections.abc import Sequence

from broadcaster.store.database import Conn
from broadcaster.store.queries import queries

ALIVE_S = 15.0
"""A worker not seen for this long is taken for gone (it beats every few seconds)."""


async def heartbeat(
    conn: Conn,
    name: str,
    running: Sequence[int],
    receivers: int = 0,
    problems: Sequence[str] = (),
    takes_work: bool = True,
) -> None:
    """Alive, sending `running`, with `receivers` binds up that get receipts, and what is wrong
    with its SMSCs (`problems`, in words); `takes_work`: any runnable broadcast (a worker), or
    only its own (a one-shot `send`, not counted as a worker by `alive`)."""
    await conn.execute(
        queries["worker_heartbeat"], name, list(running), receivers, list(problems), takes_work
    )


async def gone(conn: Conn, name: str) -> None:
    """A worker stopping cleanly leaves at once (a killed one ages out)."""
    await conn.execute(queries["worker_gone"], name)


async def alive(conn: Conn) -> int:
    """Workers seen in the last ALIVE_S seconds that take any runnable broadcast."""
    return int(await conn.fetchval(queries["workers_alive"], ALIVE_S))


async def receiving(conn: Conn) -> int:
    """Binds up that can receive receipts, over the live workers (0: nobody will get them)."""
    return int(await conn.fetchval(queries["workers_receiving"], ALIVE_S))


async def smsc_problems(conn: Conn) -> list[str]:
    """What the live workers say is wrong with their SMSCs."""
    return [r["problem"] for r in await conn.fetch(queries["workers_smsc_problems"], ALIVE_S)]
