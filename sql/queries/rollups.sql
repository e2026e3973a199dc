-- Roll-ups (migration 0015): counters written with each outcome flush and receipt batch, read
-- by status, the console, the API and /metrics.

-- name: rollup_lock
-- One outcome flush of broadcast $1 at a time: the recipients' earlier parts are read, and the
-- counters moved, with no other flush of the broadcast between (workers sharing a broadcast).
SELECT pg_advisory_xact_lock(22015, $1::int);

-- name: rollup_prior_parts
-- The parts already recorded for the recipients $2 of broadcast $1 (the flush moves their
-- per-recipient counts from this state to the new one).
SELECT msisdn, part, parts, status FROM deliveries
WHERE broadcast_id = $1 AND msisdn = ANY($2::bigint[]);

-- name: rollup_chunks_first_claimed
-- Whether the chunks $2 of broadcast $1 are still claimed once and the broadcast has no
-- present-mode chunk: the first outcomes of their recipients in the flushing run can then have
-- nothing recorded before them (rollups.add_outcomes skips their lookup).
SELECT NOT EXISTS (
    SELECT 1 FROM broadcast_chunks
    WHERE broadcast_id = $1 AND (source <> 'home' OR (chunk_no = ANY($2::int[]) AND claims > 1))
);

-- name: rollup_add_outcomes
-- Add parts per (SMSC $2[i], status $3[i]) to broadcast $1.
INSERT INTO outcome_rollup (broadcast_id, smsc, status, parts)
SELECT $1, s, st, n FROM unnest($2::text[], $3::int[], $4::bigint[]) AS u(s, st, n)
ORDER BY s, st
ON CONFLICT (broadcast_id, smsc, status)
DO UPDATE SET parts = outcome_rollup.parts + EXCLUDED.parts;

-- name: rollup_add_recipients
INSERT INTO recipient_rollup AS r (broadcast_id, recorded, accepted, failed, duplicates)
VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (broadcast_id) DO UPDATE
SET recorded = r.recorded + $2, accepted = r.accepted + $3, failed = r.failed + $4,
    duplicates = r.duplicates + $5;

-- name: rollup_recipients
SELECT recorded, accepted, failed, duplicates, 0::bigint AS part_outcomes
FROM recipient_rollup WHERE broadcast_id = $1;

-- name: rollup_outcomes
SELECT smsc, status, parts FROM outcome_rollup WHERE broadcast_id = $1 ORDER BY smsc, status;

-- name: rollup_receipts
SELECT stat, parts, max_s FROM receipt_rollup WHERE broadcast_id = $1 ORDER BY parts DESC;

-- name: rollup_receipt_delays
SELECT stat, bucket, n FROM receipt_delays WHERE broadcast_id = $1 ORDER BY stat, bucket;

-- name: rollup_receipts_forget
-- Broadcasts $1's receipt counters, dropped before `rollup_receipts_recount` (a statement of its
-- own: rows deleted and inserted again with the same key in one statement collide).
WITH gone AS (
    DELETE FROM receipt_rollup WHERE broadcast_id = ANY($1::bigint[])
), gone_areas AS (
    DELETE FROM receipt_area_rollup WHERE broadcast_id = ANY($1::bigint[])
)
DELETE FROM receipt_delays WHERE broadcast_id = ANY($1::bigint[]);

-- name: rollup_receipts_recount
-- Broadcasts $1's receipt counters recounted from the receipts (after receipts were taken back
-- to be matched again), once `rollup_receipts_forget` has dropped them. Of a part's copies of
-- a stat, the one the roll-ups count: of the first batch that stored one (migration 0023), the
-- first received.
WITH first AS (
    SELECT DISTINCT ON (broadcast_id, msisdn, part, stat) broadcast_id, msisdn, stat, delay_s,
           departement
    FROM receipts WHERE match = 'matched' AND broadcast_id = ANY($1::bigint[])
    ORDER BY broadcast_id, msisdn, part, stat, batch NULLS FIRST, received_at
), counted AS (
    INSERT INTO receipt_rollup SELECT broadcast_id, stat, count(*), max(delay_s)
    FROM first GROUP BY 1, 2
), by_area AS (
    INSERT INTO receipt_area_rollup
    -- (the département the receipt was counted under; today's home for a receipt recorded
    -- without one: before migration 0021, or by a worker still running the code before it)
    SELECT f.broadcast_id, coalesce(f.departement, s.departement, ''), f.stat, count(*)
    FROM first f LEFT JOIN subscribers s ON s.msisdn = f.msisdn AND f.departement IS NULL
    GROUP BY 1, 2, 3
)
INSERT INTO receipt_delays
SELECT broadcast_id, stat, receipt_delay_bucket(delay_s), count(*)
FROM first GROUP BY 1, 2, 3;

-- name: rollup_recount
-- Everything the roll-ups of broadcast $1 hold, counted again from the outcomes (tests, and
-- `broadcaster check`): JSON to compare with `rollup_read`.
SELECT jsonb_build_object(
    'outcomes', (SELECT coalesce(jsonb_object_agg(smsc || '|' || status, n), '{}')
                 FROM (SELECT smsc, status, count(*) AS n FROM deliveries
                       WHERE broadcast_id = $1 GROUP BY 1, 2) o),
    'recipients', (SELECT jsonb_build_object(
                       'recorded', count(*),
                       'accepted', count(*) FILTER (WHERE accepted_parts = parts),
                       'failed', count(*) FILTER (WHERE failed_parts > 0),
                       'duplicates', coalesce(sum(extra_rows), 0))
                   FROM (SELECT msisdn, max(parts) AS parts,
                                count(DISTINCT part) FILTER (WHERE status = 0) AS accepted_parts,
                                count(*) FILTER (WHERE status <> 0) AS failed_parts,
                                count(*) - count(DISTINCT part) AS extra_rows
                         FROM deliveries WHERE broadcast_id = $1 GROUP BY msisdn) p),
    'receipts', (SELECT coalesce(jsonb_object_agg(stat, n), '{}')
                 FROM (SELECT stat, count(DISTINCT (msisdn, part)) AS n FROM receipts
                       WHERE broadcast_id = $1 AND match = 'matched' GROUP BY stat) r),
    'receipt_areas', (SELECT coalesce(jsonb_object_agg(departement || '|' || stat, n), '{}')
                      FROM (SELECT coalesce(f.departement, s.departement, '') AS departement,
                                   f.stat, count(*) AS n
                            FROM (SELECT DISTINCT ON (msisdn, part, stat) msisdn, departement,
                                         stat
                                  FROM receipts WHERE broadcast_id = $1 AND match = 'matched'
                                  ORDER BY msisdn, part, stat, batch NULLS FIRST, received_at) f
                            LEFT JOIN subscribers s
                                   ON s.msisdn = f.msisdn AND f.departement IS NULL
                            GROUP BY 1, 2) a),
    'receipt_delays', (SELECT coalesce(jsonb_object_agg(stat || '|' || bucket, n), '{}')
                       FROM (SELECT stat, receipt_delay_bucket(delay_s) AS bucket, count(*) AS n
                             FROM (SELECT DISTINCT ON (msisdn, part, stat) stat, delay_s
                                   FROM receipts WHERE broadcast_id = $1 AND match = 'matched'
                                   ORDER BY msisdn, part, stat, batch NULLS FIRST, received_at) first
                             GROUP BY 1, 2) d)
);

-- name: rollup_read
SELECT jsonb_build_object(
    'outcomes', (SELECT coalesce(jsonb_object_agg(smsc || '|' || status, parts), '{}')
                 FROM outcome_rollup WHERE broadcast_id = $1 AND parts <> 0),
    'recipients', (SELECT coalesce((SELECT jsonb_build_object(
                       'recorded', recorded, 'accepted', accepted, 'failed', failed,
                       'duplicates', duplicates)
                   FROM recipient_rollup WHERE broadcast_id = $1),
                   '{"recorded": 0, "accepted": 0, "failed": 0, "duplicates": 0}')),
    'receipts', (SELECT coalesce(jsonb_object_agg(stat, parts), '{}')
                 FROM receipt_rollup WHERE broadcast_id = $1 AND parts <> 0),
    'receipt_areas', (SELECT coalesce(jsonb_object_agg(departement || '|' || stat, parts), '{}')
                      FROM receipt_area_rollup WHERE broadcast_id = $1 AND parts <> 0),
    'receipt_delays', (SELECT coalesce(jsonb_object_agg(stat || '|' || bucket, n), '{}')
                       FROM receipt_delays WHERE broadcast_id = $1 AND n <> 0)
);
