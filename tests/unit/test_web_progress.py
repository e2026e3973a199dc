"""What a live page says of a broadcast (issue 24): a queued one what it waits for and no time
left; a finished one live until its receipts settle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from broadcaster.web.progress import SETTLE_S, settled, snapshot

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)


def status(state: str, **more: Any) -> dict[str, Any]:
    return {
        "state": state,
        "recipients": 1000,
        "parts": 2000,
        "recorded": 0,
        "accepted": 0,
        "failed": 0,
        "receipts": {},
        "by_smsc": {},
        **more,
    }


def test_a_queued_broadcast_says_its_position_and_shows_no_time_left_or_rate() -> None:
    shown = snapshot(
        status("approved", waiting_behind=[7, 9], workers_alive=1), 120.0, None, "en", 50
    )
    assert shown["waiting"] == (
        "Nothing is sent yet: queued in position 3, behind broadcast 7 (more urgent "
        "broadcasts first: 7, 9)."
    )
    assert (shown["sending"], shown["text"]["eta"], shown["text"]["rate"]) == (False, "–", "–")
    french = snapshot(status("approved", waiting_behind=[7], workers_alive=1), None, None, "fr")
    assert "position 2, derrière la diffusion 7" in french["waiting"]


def test_what_else_a_broadcast_may_wait_for() -> None:
    none_running = snapshot(
        status("approved", waiting_behind=[], workers_alive=0), None, None, "en"
    )
    assert "no sending worker is running" in none_running["waiting"]
    pending = snapshot(status("pending_approval"), None, None, "en")
    assert "approval by a second person" in pending["waiting"]
    sending = snapshot(status("running", recorded=500), 100.0, None, "en", 50)
    assert (sending["waiting"], sending["sending"], sending["text"]["eta"]) == ("", True, "5 s")


def test_parts_and_recipients_are_counted_apart() -> None:
    shown = snapshot(
        status(
            "running",
            recorded=10,
            accepted=10,
            by_smsc={"a": {"accepted": 15}, "b": {"accepted": 5}},
            receipts={
                "DELIVRD": {"count": 14},
                "UNDELIV": {"count": 3},
                "EXPIRED": {"count": 1},
                "ENROUTE": {"count": 6},  # not final: neither
            },
            receipts_awaited=2,
        ),
        None,
        None,
        "en",
    )
    assert shown["text"]["accepted"] == "10"  # recipients
    assert shown["text"]["accepted_parts"] == "20"  # parts
    text = shown["text"]
    assert (text["delivered"], text["undelivered"], text["awaited"]) == ("14", "4", "2")


def test_a_finished_broadcast_settles_when_its_receipts_are_in() -> None:
    ended = (NOW - timedelta(seconds=30)).isoformat()
    waiting = status("completed", receipts_awaited=5, receivers_bound=2, finished_at=ended)
    assert not settled(waiting, NOW)
    assert settled({**waiting, "receipts_awaited": 0}, NOW)
    assert settled({**waiting, "receivers_bound": 0}, NOW)  # nobody can receive them
    late = (NOW - timedelta(seconds=SETTLE_S + 1)).isoformat()
    assert settled({**waiting, "finished_at": late}, NOW)
    assert not settled(status("running", receipts_awaited=0), NOW)
