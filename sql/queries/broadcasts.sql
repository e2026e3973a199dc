-- name: insert_broadcast
INSERT INTO broadcasts (kind, state, template, variables, target, priority, recipients, parts,
                        created_by, expires_at, language_map, parent_id, reached_only)
VALUES ($1, $2, $3, $4::jsonb, $5::jsonb, $6, $7, $8, $9, $10, $11::jsonb, $12, $13)
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
       created_by, approved_by, parent_id, reached_only, created_at, started_at, finished_at,
       expires_at, possibly_twice
FROM broadcasts WHERE id = $1;

-- name: get_groups
SELECT group_no, departement, lang, body, encoding, parts, recipients
FROM broadcast_groups WHERE broadcast_id = $1 ORDER BY group_no;

-- name: fallback_groups
-- Per département of a broadcast, the group a subscriber whose language had no group when the
-- broadcast was planned gets: the département's default language, else its first group.
SELECT DISTINCT ON (g.departement) g.departement, g.group_no
FROM broadcast_groups g
LEFT JOIN departements d ON d.code = g.departement
WHERE g.broadcast_id = $1
ORDER BY g.departement, (g.lang = d.default_language) DESC NULLS LAST, g.group_no;

-- name: set_state
-- The one way a broadcast changes state: to $2 if it is in one of the states $3 (both from the
-- state machine's table, `domain/states.py`); $4 stamps started_at, $5 finished_at; $6 records
-- who approved (NULL keeps it). Returns the row if it moved.
UPDATE broadcasts
SET state = $2,
    started_at = CASE WHEN $4 THEN coalesce(started_at, now()) ELSE started_at END,
    finished_at = CASE WHEN $5 THEN now() ELSE finished_at END,
    approved_by = coalesce($6, approved_by)
WHERE id = $1 AND state = ANY($3::text[])
RETURNING id, state;

-- name: claim_chunk
-- Lease the next unfinished chunk nobody holds (or whose lease expired) for $3 seconds.
UPDATE broadcast_chunks c
SET leased_by = $2, lease_until = now() + make_interval(secs => $3), claims = c.claims + 1
WHERE (c.broadcast_id, c.chunk_no) = (
    SELECT broadcast_id, chunk_no FROM broadcast_chunks
    WHERE broadcast_id = $1 AND NOT done AND (lease_until IS NULL OR lease_until < now())
    ORDER BY chunk_no
    LIMIT 1
    FOR UPDATE SKIP LOCKED
)
RETURNING chunk_no, departement, communes, msisdn_from, msisdn_to, claims, cells,
          exclude_communes, exclude_cells, source, present_cells, present_window,
          present_departements;

-- name: renew_leases
UPDATE broadcast_chunks SET lease_until = now() + make_interval(secs => $3)
WHERE broadcast_id = $1 AND leased_by = $2 AND NOT done;

-- name: complete_chunk
UPDATE broadcast_chunks SET done = true, leased_by = NULL, lease_until = NULL
WHERE broadcast_id = $1 AND chunk_no = $2;

-- name: add_possibly_twice
-- Parts sent again while their first copy may have been accepted: added up with each flush.
UPDATE broadcasts SET possibly_twice = possibly_twice + $2 WHERE id = $1;

-- name: possibly_twice
SELECT possibly_twice FROM broadcasts WHERE id = $1;

-- name: chunks_left
SELECT count(*) FILTER (WHERE NOT done)::int AS todo, count(*)::int AS total
FROM broadcast_chunks WHERE broadcast_id = $1;

-- name: recorded_parts
-- Parts of a chunk's recipients that already have an outcome (skipped on resume).
SELECT d.msisdn, d.part FROM deliveries d
JOIN subscribers s ON s.msisdn = d.msisdn AND s.departement = $4
WHERE d.broadcast_id = $1 AND d.msisdn BETWEEN $2 AND $3;

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

-- name: get_state
SELECT state, expires_at, priority FROM broadcasts WHERE id = $1;

-- name: higher_priority_waiting
-- Is there runnable work more urgent than priority $1 (a live alert while a drill runs)?
-- ($2: the runnable states.)
SELECT EXISTS (
    SELECT 1 FROM broadcasts b
    WHERE b.state = ANY($2::text[]) AND b.expires_at > now() AND b.priority > $1
      AND EXISTS (
          SELECT 1 FROM broadcast_chunks c
          WHERE c.broadcast_id = b.id AND NOT c.done
            AND (c.lease_until IS NULL OR c.lease_until < now())
      )
);

-- name: expire_overdue
-- Every broadcast past its expiry in one of the states $1 moves to $2 (the "expire" action).
UPDATE broadcasts SET state = $2, finished_at = now()
WHERE state = ANY($1::text[]) AND expires_at <= now()
RETURNING id;

-- name: release_leases
UPDATE broadcast_chunks SET leased_by = NULL, lease_until = NULL
WHERE broadcast_id = $1 AND leased_by = $2 AND NOT done;

-- name: list_broadcasts
-- With the départements each one reaches (residents' and those present in its cells): every
-- list says where.
SELECT id, kind, state, template, recipients, parts, priority, created_by, approved_by,
       parent_id, created_at, started_at, finished_at, expires_at,
       ARRAY(
           SELECT jsonb_object_keys(target -> 'departements')
           UNION
           SELECT jsonb_object_keys(COALESCE(target -> 'present', '{}'::jsonb))
           ORDER BY 1
       ) AS departements
FROM broadcasts
ORDER BY id DESC
LIMIT $1;

-- name: awaiting_approval
-- Broadcasts waiting for a second person's approval, oldest first (an approval queue), with
-- their départements as in list_broadcasts and the holder of the token that created each.
SELECT b.id, b.kind, b.state, b.template, b.recipients, b.parts, b.priority, b.created_by,
       b.approved_by, b.parent_id, b.created_at, b.started_at, b.finished_at, b.expires_at,
       ARRAY(
           SELECT jsonb_object_keys(b.target -> 'departements')
           UNION
           SELECT jsonb_object_keys(COALESCE(b.target -> 'present', '{}'::jsonb))
           ORDER BY 1
       ) AS departements
FROM broadcasts b
WHERE b.state = 'pending_approval' AND b.expires_at > now()
ORDER BY b.id
LIMIT $1;

-- name: receipt_summary
-- Delivery receipts matched to this broadcast's parts when they were recorded (receipts.sql):
-- per stat, the parts that got one (a part reported twice counts once) and the delay from the
-- submission to the receipt.
SELECT r.stat, count(DISTINCT (r.msisdn, r.part))::bigint AS n,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY r.delay_s) AS p50_s,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY r.delay_s) AS p95_s,
       max(r.delay_s) AS max_s
FROM receipts r
WHERE r.broadcast_id = $1 AND r.match = 'matched'
GROUP BY r.stat
ORDER BY n DESC;

-- name: reached_counts
-- Recipients per language of one département's selection (as in stream_chunk: $1 département,
-- $2 communes, $3 test group only, $4 cells, $5/$6 excluded communes/cells) whom broadcast $7
-- reached (accepted).
SELECT s.lang, count(*)::bigint AS n
FROM subscribers s
WHERE s.departement = $1
  AND ($2::text[] IS NULL OR s.commune = ANY($2::text[]) OR s.cell_id = ANY($4::text[]))
  AND (NOT $3::boolean OR s.test_group)
  AND ($5::text[] IS NULL OR (s.commune = ANY($5::text[])) IS NOT TRUE)
  AND ($6::text[] IS NULL OR (s.cell_id = ANY($6::text[])) IS NOT TRUE)
  AND EXISTS (SELECT 1 FROM deliveries d
              WHERE d.broadcast_id = $7 AND d.msisdn = s.msisdn AND d.status = 0)
GROUP BY s.lang;

-- name: stream_chunk_reached
-- stream_chunk ($1-$8), restricted to the recipients broadcast $9 reached (accepted); $10-$11
-- the present numbers to leave out (stream_chunk's $9-$10).
SELECT s.msisdn, s.lang
FROM subscribers s
WHERE s.departement = $1 AND s.msisdn BETWEEN $2 AND $3
  AND ($4::text[] IS NULL OR s.commune = ANY($4::text[]) OR s.cell_id = ANY($6::text[]))
  AND (NOT $5::boolean OR s.test_group)
  AND ($7::text[] IS NULL OR (s.commune = ANY($7::text[])) IS NOT TRUE)
  AND ($8::text[] IS NULL OR (s.cell_id = ANY($8::text[])) IS NOT TRUE)
  AND EXISTS (SELECT 1 FROM deliveries d
              WHERE d.broadcast_id = $9 AND d.msisdn = s.msisdn AND d.status = 0)
  AND ($10::bigint IS NULL OR NOT EXISTS (
      SELECT 1 FROM broadcast_present p WHERE p.broadcast_id = $10
                                          AND p.departement = ANY($11::text[]) AND p.msisdn = s.msisdn))
ORDER BY s.msisdn

-- name: worker_heartbeat
-- A worker is alive ($1 its name) and sending the broadcasts $2; $3 of its binds are up and can
-- receive receipts; $4 what is wrong with its SMSCs, in words; $5 whether it takes any runnable
-- broadcast (a worker, `serve`) or only its own (a one-shot `send`).
INSERT INTO workers (name, running, receivers, smsc_problems, takes_work)
VALUES ($1, $2::bigint[], $3, $4::text[], $5)
ON CONFLICT (name) DO UPDATE SET seen_at = now(), running = excluded.running,
    receivers = excluded.receivers, smsc_problems = excluded.smsc_problems,
    takes_work = excluded.takes_work;

-- name: workers_receiving
-- Binds up that can receive receipts, over the workers seen in the last $1 seconds.
SELECT coalesce(sum(receivers), 0)::int FROM workers
WHERE seen_at > now() - make_interval(secs => $1);

-- name: workers_smsc_problems
-- What the workers seen in the last $1 seconds say is wrong with their SMSCs.
SELECT DISTINCT problem FROM workers, unnest(smsc_problems) AS problem
WHERE seen_at > now() - make_interval(secs => $1) ORDER BY problem;

-- name: worker_gone
DELETE FROM workers WHERE name = $1;

-- name: workers_alive
-- Workers seen in the last $1 seconds that take any runnable broadcast (not a one-shot `send`).
SELECT count(*)::int FROM workers
WHERE seen_at > now() - make_interval(secs => $1) AND takes_work;

-- name: runnable_broadcasts
-- Broadcasts with work nobody holds, most urgent first ($1: the runnable states).
SELECT b.id, b.priority FROM broadcasts b
WHERE b.state = ANY($1::text[]) AND b.expires_at > now()
  AND EXISTS (
      SELECT 1 FROM broadcast_chunks c
      WHERE c.broadcast_id = b.id AND NOT c.done
        AND (c.lease_until IS NULL OR c.lease_until < now())
  )
ORDER BY b.priority DESC, b.id
LIMIT $2;

-- name: finished_but_running
-- Broadcasts still `running` ($1) whose every chunk is done: the run that did the last one
-- ended before writing the final state (its process killed, or its database away then).
SELECT b.id FROM broadcasts b
WHERE b.state = $1
  AND NOT EXISTS (SELECT 1 FROM broadcast_chunks c WHERE c.broadcast_id = b.id AND NOT c.done);

-- name: unfinished_broadcasts
-- How many runnable broadcasts ($1: the runnable states) have an unfinished chunk, held or not:
-- work a worker run `--until-idle` waits for (a dead worker's lease expires, then it is taken).
SELECT count(*)::int FROM broadcasts b
WHERE b.state = ANY($1::text[]) AND b.expires_at > now()
  AND EXISTS (
      SELECT 1 FROM broadcast_chunks c WHERE c.broadcast_id = b.id AND NOT c.done
  );

-- name: ahead_of
-- Runnable broadcasts more urgent than broadcast $1 (higher priority), oldest first ($2: the
-- runnable states): what it waits for.
SELECT b.id, b.priority FROM broadcasts b, broadcasts me
WHERE me.id = $1 AND b.state = ANY($2::text[]) AND b.expires_at > now()
  AND b.priority > me.priority
ORDER BY b.priority DESC, b.id
LIMIT 5;
