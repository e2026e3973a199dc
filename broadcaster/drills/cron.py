"""Cron expressions read in an IANA time zone (pure): parsing, checking, next fire times.

Parsing and evaluation are cronsim's (Debian cron semantics: `1#1` is the first Monday, `L` the
last day; a fire time that does not exist on a spring-forward day runs at the first minute that
does, an ambiguous one on a fall-back day runs once, at its first occurrence). This module only
adds what a drill needs: exactly five fields, a real time zone, and a floor on the interval, so
that a typo such as `* 12 * * 1` cannot text the test group every minute.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

from broadcaster.errors import InputError

MIN_INTERVAL = timedelta(hours=1)
"""Two fire times of one schedule may not be closer than this."""
INTERVAL_SAMPLE = 48
"""How many upcoming fire times are checked against MIN_INTERVAL."""
EXAMPLE = "'0 12 * * 1#1' (the first Monday of the month at 12:00)"


def zone(name: str) -> ZoneInfo:
    """The IANA time zone called `name`, or an InputError saying what is expected."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InputError(
            f"unknown time zone {name!r}: use an IANA name such as Europe/Paris, "
            "America/Cayenne or UTC"
        ) from None


@dataclass(frozen=True)
class CronSpec:
    """A checked cron expression in a time zone; fire times come out as aware UTC datetimes."""

    expression: str
    timezone: str

    @classmethod
    def parse(cls, expression: str, timezone: str, now: datetime | None = None) -> CronSpec:
        """Check the expression and the zone; InputError naming the problem and an example."""
        tz = zone(timezone)
        text = " ".join(expression.split())
        if len(text.split(" ")) != 5:
            raise InputError(
                f"cron expression {expression!r} must have 5 fields (minute hour day-of-month "
                f"month day-of-week), e.g. {EXAMPLE}"
            )
        start = (now or datetime.now(UTC)).astimezone(tz)
        try:
            upcoming = CronSim(text, start)
            fires = [next(upcoming) for _ in range(INTERVAL_SAMPLE)]
        except StopIteration:
            raise InputError(f"cron expression {expression!r} never fires") from None
        except (CronSimError, ValueError, IndexError, KeyError, TypeError) as exc:
            raise InputError(
                f"cron expression {expression!r} is not valid ({exc}); e.g. {EXAMPLE}"
            ) from None
        gaps = [b - a for a, b in itertools.pairwise(fires)]
        if gaps and min(gaps) < MIN_INTERVAL:
            raise InputError(
                f"cron expression {expression!r} fires every {_words(min(gaps))}: a drill may "
                f"run at most once an hour (it texts the test group each time)"
            )
        return cls(text, timezone)

    def next_after(self, after: datetime) -> datetime:
        """The first fire time strictly after `after` (aware), in UTC."""
        fire: datetime = next(CronSim(self.expression, after.astimezone(zone(self.timezone))))
        return fire.astimezone(UTC)

    def upcoming(self, after: datetime, count: int) -> list[datetime]:
        """The next `count` fire times after `after`, in UTC."""
        out: list[datetime] = []
        for _ in range(count):
            after = self.next_after(after)
            out.append(after)
        return out

    def explain(self) -> str:
        """The expression in words, e.g. 'At 12:00 on the first Monday of the month'."""
        try:
            text: str = CronSim(self.expression, datetime.now(UTC)).explain()
        except Exception:  # explain is a nicety; the expression itself is valid
            return self.expression
        return f"{text} ({self.timezone})"


def _words(gap: timedelta) -> str:
    minutes = int(gap.total_seconds() // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
