"""What a command works with: the database, the settings, and what this process sends through."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from broadcaster.settings import Settings


@dataclass(frozen=True)
class Context:
    """Shared by every command of one process (the API's app, one CLI command, `serve`)."""

    db: asyncpg.Pool[asyncpg.Record]
    settings: Settings
    parts_per_second: float = 0.0
    """The contracted capacity of the SMSCs that send (for the ETA of a preview; 0: unknown)."""
    smscs: tuple[str, ...] = ()
    """The names of the SMSCs this process sends through (recorded on each drill run)."""
    dsn: str = ""
    """Where the pool connects: for a reader that holds a connection of its own (the console's
    live pages), so that it never takes one of the pool's ("": share the pool)."""
