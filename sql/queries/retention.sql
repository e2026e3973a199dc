-- Retention (`broadcaster db purge`, serve's scheduler): the functions are in migration 0014.

-- name: retention_ensure_partitions
-- Create this month's partitions and the next $1 months' (rows waiting in DEFAULT moved in).
SELECT retention_ensure_partitions(now(), $1::integer);

-- name: retention_partitions
-- Month partitions of $1 (deliveries | receipts): name, upper bound, held by an unfinished
-- broadcast (states $2), rows if the month ended before $3.
SELECT partition_name, upper_bound, holds_active, row_count
FROM retention_partitions($1, $2::text[], $3::timestamptz);

-- name: retention_drop_partition
-- Drop partition $2 of $1 if its month ended before $3 and no broadcast in states $4 has a row
-- in it: the rows dropped, NULL if refused.
SELECT retention_drop_partition($1, $2, $3::timestamptz, $4::text[]);

-- name: retention_audit_count
-- Audit entries older than $1 (a dry run's figure).
SELECT count(*)::bigint FROM audit_log WHERE at < $1;

-- name: retention_purge_audit
-- Delete audit entries older than $1 (refused for less than a year); how many went.
SELECT retention_purge_audit($1::timestamptz);

-- name: retention_locations_exist
-- Whether the where-seen table (geography, migration 0012) exists in this database.
SELECT to_regclass('locations') IS NOT NULL;

-- name: retention_locations_count
-- Location records (compacted, and sightings pending compaction) last seen before $1.
SELECT (SELECT count(*) FROM locations WHERE seen_at < $1)
       + (SELECT count(*) FROM location_sightings WHERE seen_at < $1);

-- name: retention_purge_locations
-- Forget where numbers were seen before $1 (a row per number: a DELETE, not a partition), and
-- the pending sightings as old; how many went.
WITH located AS (DELETE FROM locations WHERE seen_at < $1 RETURNING 1),
     sighted AS (DELETE FROM location_sightings WHERE seen_at < $1 RETURNING 1)
SELECT (SELECT count(*) FROM located) + (SELECT count(*) FROM sighted);

-- name: retention_partition_broadcasts
-- Broadcasts with outcomes in the deliveries partition $1 that have no saved report yet.
SELECT b FROM retention_partition_broadcasts($1) AS b
WHERE NOT EXISTS (SELECT 1 FROM broadcast_reports r WHERE r.broadcast_id = b);

-- name: retention_save_report
-- Keep a finished broadcast's report before its outcomes are dropped.
INSERT INTO broadcast_reports (broadcast_id, report) VALUES ($1, $2::jsonb)
ON CONFLICT (broadcast_id) DO NOTHING;

-- name: saved_report
-- The report saved when the broadcast's outcomes were purged (NULL: none).
SELECT report::text FROM broadcast_reports WHERE broadcast_id = $1;
