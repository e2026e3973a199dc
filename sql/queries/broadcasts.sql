-- name: insert_broadcast
INSERT INTO broadcasts (kind, state, template, variables, target, priority, recipients, parts,
                        created_by, expires_at, language_map)
VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6, $7, $8, $9, $10, $11::jsonb)
RETURNING id;

-- name: insert_group
INSERT INTO broadcast_groups (broadcast_id, group_no, departement, lang, body, encoding, parts,
                              recipients)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8);

-- name: insert_chunk
INSERT INTO broadcast_chunks (broadcast_id, chunk_no, departement, communes, msisdn_from,
                              msisdn_to)
VALUES ($1, $2, $3, $4, $5, $6);

-- name: get_broadcast
SELECT id, kind, state, template, variables, target, language_map, priority, recipients, parts,
       created_by, created_at, started_at, finished_at, expires_at
FROM broadcasts WHERE id = $1;

-- name: get_groups
SELECT group_no, departement, lang, body, encoding, parts, recipients
FROM broadcast_groups WHERE broadcast_id = $1 ORDER BY group_no;

-- name: set_state
-- Move a broadcast to state $2 if it is in one of the states $3; returns the row if it moved.
UPDATE broadcasts
SET state = $2,
    started_at = CASE WHEN $2 = 'running' THEN coalesce(started_at, now()) ELSE started_at END,
    finished_at = CASE WHEN $2 IN ('completed', 'cancelled', 'expired', 'failed')
                       THEN now() ELSE finished_at END
WHERE id = $1 AND state = ANY($3::text[])
RETURNING id, state;

-- name: claim_chunk
-- Lease the next unfinished chunk nobody holds (or whose lease expired) for $3 seconds.
UPDATE broadcast_chunks c
SET leased_by = $2, lease_until = now() + make_interval(secs => $3)
WHERE (c.broadcast_id, c.chunk_no) = (
    SELECT broadcast_id, chunk_no FROM broadcast_chunks
    WHERE broadcast_id = $1 AND NOT done AND (lease_until IS NULL OR lease_until < now())
    ORDER BY chunk_no
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING chunk_no, departement, communes, msisdn_from, msisdn_to;

-- name: renew_leases
UPDATE broadcast_chunks SET lease_until = now() + make_interval(secs => $3)
WHERE broadcast_id = $1 AND leased_by = $2 AND NOT done;

-- name: complete_chunk
UPDATE broadcast_chunks SET done = true, leased_by = NULL, lease_until = NULL
WHERE broadcast_id = $1 AND chunk_no = $2;

-- name: chunks_left
SELECT count(*) FILTER (WHERE NOT done)::int AS todo, count(*)::int AS total
FROM broadcast_chunks WHERE broadcast_id = $1;

-- name: recorded_parts
-- Parts of a chunk's recipients that already have an outcome (skipped on resume).
SELECT msisdn, part FROM deliveries
WHERE broadcast_id = $1 AND msisdn BETWEEN $2 AND $3;

-- name: delivery_summary
-- Per-recipient state derived from the append-only outcomes.
SELECT count(*)::bigint AS recorded,
       count(*) FILTER (WHERE accepted_parts = parts)::bigint AS accepted,
       count(*) FILTER (WHERE failed_parts > 0)::bigint AS failed,
       coalesce(sum(extra_rows), 0)::bigint AS duplicates,
       coalesce(sum(rows), 0)::bigint AS part_outcomes
FROM (
    SELECT msisdn, max(parts) AS parts,
           count(DISTINCT part) FILTER (WHERE status = 0) AS accepted_parts,
           count(*) FILTER (WHERE status <> 0) AS failed_parts,
           count(*) - count(DISTINCT part) AS extra_rows,
           count(*) AS rows
    FROM deliveries WHERE broadcast_id = $1 GROUP BY msisdn
) per_recipient;

-- name: failures_by_status
SELECT status, count(*)::bigint AS n FROM deliveries
WHERE broadcast_id = $1 AND status <> 0 GROUP BY status ORDER BY n DESC;
