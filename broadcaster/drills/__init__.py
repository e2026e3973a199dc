"""Scheduled drills: cron schedules, the scheduler that fires them, the drill report, alarms.

Pure parts (`cron`, `policy`, `report`, `html`, `text`) hold no I/O; `schedules` and `runs`
talk to the database, `alarm` to the log and a webhook, `scheduler` ties them to a clock.
"""
