-- Scheduled drills: their schedules, and one row per fire time acted upon (run, missed or not
-- started), which carries the drill's report once receipts are in.

-- A drill schedule: a cron expression read in an IANA time zone (e.g. '0 12 * * 1#1' in
-- Europe/Paris: the first Monday of the month at 12:00 Paris time, summer or winter).
-- next_run_at is the next fire time (UTC), kept by the scheduler; a schedule row is locked
-- (FOR UPDATE SKIP LOCKED) while a scheduler acts on it, so several `serve` processes fire it once.
CREATE TABLE drill_schedules (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          text NOT NULL UNIQUE CHECK (name ~ '^[a-z][a-z0-9_-]{0,63}$'),
    cron          text NOT NULL,
    timezone      text NOT NULL,
    areas         text[] NOT NULL CHECK (cardinality(areas) > 0),
    exclude       text[] NOT NULL DEFAULT '{}',
    template      text NOT NULL DEFAULT 'drill',
    variables     jsonb NOT NULL DEFAULT '{}',
    thresholds    jsonb NOT NULL DEFAULT '{}',
    webhook_url   text,
    grace_s       integer NOT NULL DEFAULT 3600 CHECK (grace_s >= 0),
    expires_in_s  integer NOT NULL DEFAULT 3600 CHECK (expires_in_s >= 60),
    enabled       boolean NOT NULL DEFAULT true,
    next_run_at   timestamptz NOT NULL,
    created_by    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX drill_schedules_due ON drill_schedules (next_run_at) WHERE enabled;

-- One row per drill fire time acted upon, or per drill run by hand. outcome: 'started' (a drill
-- broadcast was created), 'missed' (the process was down at the fire time and the grace period
-- had passed), 'not_started' (planning failed: unknown area, no test-group subscriber...).
-- Thresholds and webhook are copied from the schedule, so that a run reports as it was planned
-- even if its schedule changes or is removed meanwhile.
CREATE TABLE drill_runs (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schedule_id   bigint REFERENCES drill_schedules (id) ON DELETE SET NULL,
    schedule_name text,
    trigger       text NOT NULL CHECK (trigger IN ('schedule', 'manual')),
    due_at        timestamptz,
    created_at    timestamptz NOT NULL,
    outcome       text NOT NULL CHECK (outcome IN ('started', 'missed', 'not_started')),
    reason        text,
    broadcast_id  bigint UNIQUE REFERENCES broadcasts (id),
    thresholds    jsonb NOT NULL DEFAULT '{}',
    webhook_url   text,
    settle_from   timestamptz,             -- when the scheduler first saw the broadcast finished
    verdict       text CHECK (verdict IN ('pass', 'fail')),
    report        jsonb,
    reported_at   timestamptz,
    alarm         text,                    -- why an alarm was raised (NULL: none)
    alarm_at      timestamptz,
    webhook_status text,
    UNIQUE (schedule_id, due_at)
);
CREATE INDEX drill_runs_unreported ON drill_runs (id)
    WHERE outcome = 'started' AND reported_at IS NULL;
CREATE INDEX drill_runs_by_schedule ON drill_runs (schedule_id, id);
