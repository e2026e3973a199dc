"""structlog configuration: a console renderer for people, JSON lines for machines.

Context bound with `structlog.contextvars.bind_contextvars(broadcast_id=...)` appears on every
line logged below it, whatever the module.
"""

from __future__ import annotations

import logging
import sys

import structlog


def configure_logging(json: bool = False, level: str = "info") -> None:
    """Send structured logs to stderr (stdout is kept for reports and `--json` output)."""
    numeric = logging.getLevelNamesMapping().get(level.upper(), logging.INFO)
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
