-- name: insert_drill_schedule
INSERT INTO drill_schedules (name, cron, timezone, areas, exclude, template, variables,
                             thresholds, webhook_url, grace_s, expires_in_s, enabled,
                             next_run_at, created_by)
VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb, $9, $10, $11, $12, $13, $14)
ON CONFLICT (name) DO NOTHING
RETURNING *;

-- name: drill_schedule_by_id
SELECT * FROM drill_schedules WHERE id = $1;

-- name: drill_schedule_by_name
SELECT * FROM drill_schedules WHERE name = $1;

-- name: list_drill_schedules
SELECT * FROM drill_schedules ORDER BY id;

-- name: delete_drill_schedule
DELETE FROM drill_schedules WHERE id = $1 RETURNING *;

-- name: set_drill_schedule_enabled
-- Enable (with the next fire time after now: a disabled period is not "missed") or disable.
UPDATE drill_schedules SET enabled = $2, next_run_at = $3, updated_at = now()
WHERE id = $1
RETURNING *;

-- name: due_drill_schedules
-- Enabled schedules whose next fire time has come ($1: the scheduler's clock), locked so that
-- another scheduler process skips them until this one has advanced next_run_at.
SELECT * FROM drill_schedules
WHERE enabled AND next_run_at <= $1
ORDER BY next_run_at, id
FOR UPDATE SKIP LOCKED;

-- name: set_drill_schedule_next
UPDATE drill_schedules SET next_run_at = $2 WHERE id = $1;

-- name: next_drill_due
SELECT min(next_run_at) FROM drill_schedules WHERE enabled;

-- name: insert_drill_run
INSERT INTO drill_runs (schedule_id, schedule_name, trigger, due_at, created_at, outcome,
                        reason, broadcast_id, thresholds, webhook_url, smscs)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10, $11::text[])
ON CONFLICT (schedule_id, due_at) DO NOTHING
RETURNING id;

-- name: list_drill_runs
-- Newest first; $2: only this schedule's runs (NULL: all).
SELECT r.id, r.schedule_id, r.schedule_name, r.trigger, r.due_at, r.created_at, r.outcome,
       r.reason, r.broadcast_id, b.state, r.verdict, r.reported_at, r.alarm, r.alarm_at,
       r.webhook_status
FROM drill_runs r
LEFT JOIN broadcasts b ON b.id = r.broadcast_id
WHERE $2::bigint IS NULL OR r.schedule_id = $2
ORDER BY r.id DESC
LIMIT $1;

-- name: drill_run_by_broadcast
SELECT * FROM drill_runs WHERE broadcast_id = $1;

-- name: unreported_drill_runs
-- Started drills without a report yet, with their broadcast's state; locked so that a run is
-- reported (and alarmed) once, whichever scheduler or CLI gets there first.
SELECT r.*, b.state AS broadcast_state
FROM drill_runs r
JOIN broadcasts b ON b.id = r.broadcast_id
WHERE r.outcome = 'started' AND r.reported_at IS NULL
  AND ($1::bigint IS NULL OR r.id = $1)
ORDER BY r.id
FOR UPDATE OF r SKIP LOCKED;

-- name: set_drill_run_settle
UPDATE drill_runs SET settle_from = $2 WHERE id = $1;

-- name: set_drill_run_report
UPDATE drill_runs SET verdict = $2, report = $3::jsonb, reported_at = $4 WHERE id = $1;

-- name: set_drill_run_alarm
UPDATE drill_runs SET alarm = $2, alarm_at = $3, webhook_status = $4 WHERE id = $1;

-- name: drill_receipts_pending
-- Accepted parts of broadcast $1 that have no final receipt yet ($2: the final stats; an
-- intermediate one, e.g. ENROUTE, says more is to come).
SELECT count(*)::bigint FROM deliveries d
WHERE d.broadcast_id = $1 AND d.status = 0
  AND NOT EXISTS (SELECT 1 FROM receipts r
                  WHERE r.broadcast_id = d.broadcast_id AND r.msisdn = d.msisdn
                    AND r.part = d.part AND r.match = 'matched'
                    AND r.stat = ANY($2::text[]));

-- name: drill_broadcast
SELECT id, kind, state, template, target, recipients, parts, created_at, started_at,
       finished_at, expires_at
FROM broadcasts WHERE id = $1;

-- name: drill_report_rows
-- Every part outcome of drill broadcast $1 with its area and its first final receipt (matched to
-- its part when recorded: receipts.sql; DELIVRD preferred when an SMSC sent several). $2: the final stats;
-- intermediate receipts (ENROUTE...) are not an outcome and are left out.
SELECT d.msisdn, d.part, d.status, d.smsc, d.submitted_at, d.answered_at,
       coalesce(s.departement, '?') AS departement, r.stat, r.received_at
FROM deliveries d
LEFT JOIN subscribers s ON s.msisdn = d.msisdn
LEFT JOIN LATERAL (
    SELECT x.stat, x.received_at FROM receipts x
    WHERE d.status = 0 AND x.broadcast_id = d.broadcast_id AND x.msisdn = d.msisdn
      AND x.part = d.part AND x.match = 'matched' AND x.stat = ANY($2::text[])
    ORDER BY (x.stat = 'DELIVRD') DESC, x.received_at
    LIMIT 1
) r ON true
WHERE d.broadcast_id = $1;

-- name: drill_engine_refusal
-- Why the engine refused a drill (its audit entry), if it did.
SELECT details->>'reason' AS reason FROM audit_log
WHERE subject = 'broadcast:' || $1::bigint AND action = 'drill_refused'
ORDER BY id DESC LIMIT 1;

-- name: stream_chunk_drill
-- stream_chunk ($1-$8) for a drill, with each row's test_group flag so that the engine can
-- refuse the drill if a non-test subscriber ever comes out; $9: only the recipients that
-- broadcast $9 reached (NULL: no such restriction); $10-$11 the present numbers to leave out
-- (stream_chunk's $9-$10).
SELECT s.msisdn, s.lang, s.test_group
FROM subscribers s
WHERE s.departement = $1 AND s.msisdn BETWEEN $2 AND $3
  AND ($4::text[] IS NULL OR s.commune = ANY($4::text[]) OR s.cell_id = ANY($6::text[]))
  AND (NOT $5::boolean OR s.test_group)
  AND ($7::text[] IS NULL OR (s.commune = ANY($7::text[])) IS NOT TRUE)
  AND ($8::text[] IS NULL OR (s.cell_id = ANY($8::text[])) IS NOT TRUE)
  AND ($9::bigint IS NULL OR EXISTS (SELECT 1 FROM deliveries d
                                     WHERE d.broadcast_id = $9 AND d.msisdn = s.msisdn
                                       AND d.status = 0))
  AND ($10::bigint IS NULL OR NOT EXISTS (
      SELECT 1 FROM broadcast_present p WHERE p.broadcast_id = $10
                                          AND p.departement = ANY($11::text[]) AND p.msisdn = s.msisdn))
ORDER BY s.msisdn;

-- name: drill_metrics_latest
-- The latest reported verdict of each schedule (for /metrics).
SELECT DISTINCT ON (schedule_name) schedule_name, verdict, reported_at
FROM drill_runs
WHERE schedule_name IS NOT NULL AND reported_at IS NOT NULL
ORDER BY schedule_name, id DESC;

-- name: drill_metrics_runs
-- Drill runs by schedule, outcome and alarm (for /metrics; a small table).
SELECT coalesce(schedule_name, '') AS schedule, outcome, coalesce(alarm, '') AS alarm,
       count(*)::bigint AS n
FROM drill_runs
GROUP BY 1, 2, 3;

-- name: set_drill_run_webhook
UPDATE drill_runs SET webhook_status = $2 WHERE id = $1;
