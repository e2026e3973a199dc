-- name: receipts_stage
-- The batch of receipts a recorder flushes, COPYed here, then matched by `receipts_match`.
-- COPYed in the columns cheapest to encode (one row per part sent, in the sending process):
-- times as seconds since 1970 (float8: microseconds survive up to 2255), the keys as the first
-- one and the others (NULL: none); `done_at` and `received_at` are computed from them, and
-- the array of all keys only where a receipt has several or is returned (`receipts_match`).
-- A receipt the sending process matched in memory (engine/sent_parts.py) comes without keys,
-- with its part instead: broadcast_id, msisdn, part, submitted_epoch, and the recipient's home
-- département when its chunk said it.
CREATE TEMPORARY TABLE IF NOT EXISTS receipts_in (
    smsc            text NOT NULL,
    message_id      text NOT NULL,
    text_message_id text,
    reported_msisdn text,
    stat            text NOT NULL,
    err             text,
    done_epoch      float8,
    received_epoch  float8 NOT NULL,
    first_key       text,
    more_keys       text[],
    broadcast_id    bigint,
    msisdn          bigint,
    part            smallint,
    submitted_epoch float8,
    departement     text,
    done_at         timestamptz GENERATED ALWAYS AS (to_timestamp(done_epoch)) STORED,
    received_at     timestamptz NOT NULL GENERATED ALWAYS AS (to_timestamp(received_epoch)) STORED
) ON COMMIT DELETE ROWS;

-- name: receipts_lock
-- One batch of receipts matched at a time, in every process (taken once the batch is staged,
-- held to its commit): a batch's statement then sees every batch before it, and a receipt the
-- SMSC sent twice, its copies on two workers' binds, is counted once. (Two batches at once each
-- missed the other's copy: both counted it.) Batches of a few thousand receipts every half
-- second per worker: waiting costs little, and the matching is the database's work either way
-- (one backend matches 150,000 receipts a second and more). Bounded: a batch that waits 10 s
-- fails and is tried again at the next flush (its receipts kept), and a worker that vanishes
-- holding it loses its session (and the lock) after 30 s idle in its transaction.
SELECT set_config('lock_timeout', '10s', true),
       set_config('idle_in_transaction_session_timeout', '30s', true),
       pg_advisory_xact_lock(22023, 0);

-- name: receipts_match
-- Each staged receipt to the accepted part it answers: same SMSC, one of its keys (the ids it
-- names, in the forms the SMSC may write them: domain/receipt_ids.py), and of the submissions
-- with that key the most recent one before the receipt ($1: seconds of clock slack), so an SMSC
-- that restarts and reuses ids is not counted twice. Two different parts found through two keys:
-- ambiguous, attributed to neither. A receipt that finds no part yet and was received less than
-- $3 seconds ago is not stored: its submission may not be recorded yet (outcomes are flushed in
-- batches, perhaps by another process, and a fast SMSC answers within milliseconds), so it is
-- returned (`held`) for the recorder to try again; older, it is stored as 'unmatched'. Returns
-- also, for the SMSCs in $2 (whose id form is still being found out), each matched receipt's ids
-- and the key that found its part.
-- Runs for every receipt (issue 22: a million a minute): one matched in memory by the process
-- that sent its part (nearly all) is only appended and counted; one with one key (its SMSC's
-- form is known) takes a plain lookup; only one with several keys pays for comparing what each
-- found. Delays are double precision (date_part), never numeric.
WITH found AS (
    SELECT i.smsc, i.message_id, i.text_message_id, i.reported_msisdn, i.stat, i.err, i.done_at,
           i.received_at, i.first_key, i.more_keys,
           CASE WHEN d.broadcast_id IS NULL THEN 0 ELSE 1 END AS n,
           d.broadcast_id, d.msisdn, d.part,
           date_part('epoch', i.received_at - d.submitted_at) AS delay_s, i.first_key AS key,
           CASE WHEN d.broadcast_id IS NOT NULL THEN coalesce(
               (SELECT s.departement FROM subscribers s WHERE s.msisdn = d.msisdn), '') END
               AS departement
    FROM receipts_in i
    LEFT JOIN LATERAL (
        -- The latest submission with the key: a LATERAL subquery, so that the key is an index
        -- condition whatever the statistics say (a join let a planner that had not analysed a
        -- fresh month yet filter every part of the SMSC: 4 ms a receipt).
        SELECT x.broadcast_id, x.msisdn, x.part, x.submitted_at FROM deliveries x
        WHERE x.smsc = i.smsc AND ltrim(upper(x.message_id), '0') = i.first_key
          AND x.status = 0
          AND x.submitted_at <= i.received_at + make_interval(secs => $1)
        ORDER BY x.submitted_at DESC
        LIMIT 1
    ) d ON true
    WHERE i.more_keys IS NULL AND i.broadcast_id IS NULL  -- one key, or none (unmatched)
    UNION ALL
    -- Matched in memory: the part came with the receipt (its submission time as the outcome
    -- recorded it, for the delay a lookup would give), and its recipient's home as the chunk
    -- read it (looked up only for a chunk of people present, which does not say it).
    SELECT i.smsc, i.message_id, i.text_message_id, i.reported_msisdn, i.stat, i.err, i.done_at,
           i.received_at, i.first_key, i.more_keys, 1 AS n, i.broadcast_id, i.msisdn, i.part,
           date_part('epoch', i.received_at - to_timestamp(i.submitted_epoch)) AS delay_s,
           NULL AS key,
           coalesce(i.departement,
                    (SELECT s.departement FROM subscribers s WHERE s.msisdn = i.msisdn), '')
    FROM receipts_in i
    WHERE i.broadcast_id IS NOT NULL
    UNION ALL
    SELECT i.smsc, i.message_id, i.text_message_id, i.reported_msisdn, i.stat, i.err, i.done_at,
           i.received_at, i.first_key, i.more_keys, m.n, m.broadcast_id, m.msisdn, m.part,
           m.delay_s, m.key,
           CASE WHEN m.n = 1 THEN coalesce(
               (SELECT s.departement FROM subscribers s WHERE s.msisdn = m.msisdn), '') END
    FROM receipts_in i
    CROSS JOIN LATERAL (
        -- Parts found: none, one (every key found the same part), or two and more (told by
        -- min <> max of a column: no DISTINCT aggregate and its sort for every receipt).
        SELECT CASE WHEN count(*) = 0 THEN 0
                    WHEN min(c.broadcast_id) = max(c.broadcast_id) AND min(c.msisdn) = max(c.msisdn)
                         AND min(c.part) = max(c.part) THEN 1
                    ELSE 2 END AS n,
               min(c.broadcast_id) AS broadcast_id, min(c.msisdn) AS msisdn,
               min(c.part) AS part, min(c.delay_s) AS delay_s, min(c.key) AS key
        FROM (
            SELECT k.key, d.broadcast_id, d.msisdn, d.part,
                   date_part('epoch', i.received_at - d.submitted_at) AS delay_s
            FROM unnest(array_prepend(i.first_key, i.more_keys)) AS k(key)
            CROSS JOIN LATERAL (
                SELECT x.broadcast_id, x.msisdn, x.part, x.submitted_at FROM deliveries x
                WHERE x.smsc = i.smsc AND ltrim(upper(x.message_id), '0') = k.key
                  AND x.status = 0
                  AND x.submitted_at <= i.received_at + make_interval(secs => $1)
                ORDER BY x.submitted_at DESC
                LIMIT 1
            ) d
        ) c
    ) m
    WHERE i.more_keys IS NOT NULL AND i.broadcast_id IS NULL
), stored AS (
    -- (`batch`: this batch's number, in the order batches are stored: `receipts_lock`.)
    INSERT INTO receipts (smsc, message_id, text_message_id, reported_msisdn, stat, err,
                          done_at, received_at, broadcast_id, msisdn, part, delay_s, match,
                          departement, batch)
    SELECT smsc, message_id, text_message_id, reported_msisdn, stat, err, done_at, received_at,
           CASE WHEN n = 1 THEN broadcast_id END, CASE WHEN n = 1 THEN msisdn END,
           CASE WHEN n = 1 THEN part END, CASE WHEN n = 1 THEN delay_s END,
           CASE n WHEN 0 THEN 'unmatched' WHEN 1 THEN 'matched' ELSE 'ambiguous' END,
           CASE WHEN n = 1 THEN departement END, (SELECT nextval('receipt_batches'))
    FROM found
    WHERE n > 0 OR received_at < now() - make_interval(secs => $3)
), since AS MATERIALIZED (
    -- No receipt of the batch's broadcasts was received before the oldest of them was created
    -- (a day of slack: the receiving process's clock against the database's): the months of
    -- receipts before it, and those from next week on (the partitions made in advance, the
    -- default one), are not probed for each receipt below. (A broadcast not found: no bound.)
    SELECT CASE WHEN count(b.id) = count(*) THEN coalesce(min(b.created_at), '-infinity')
                ELSE '-infinity' END - interval '1 day' AS at
    FROM (SELECT DISTINCT broadcast_id FROM found WHERE n = 1) f
    LEFT JOIN broadcasts b ON b.id = f.broadcast_id
), fresh AS (
    -- The batch's parts with a receipt of a stat not recorded for them before (issue 22's
    -- roll-ups count parts, once per stat, with the first copy stored: of the first batch that
    -- stored one, the first received, as the recounts take it; this statement's snapshot
    -- excludes `stored`, and `receipts_lock` made every batch before it visible).
    SELECT DISTINCT ON (f.broadcast_id, f.msisdn, f.part, f.stat) f.broadcast_id, f.msisdn,
           f.stat, f.delay_s, f.departement
    FROM found f
    WHERE f.n = 1 AND NOT EXISTS (
        SELECT 1 FROM receipts r
        WHERE r.broadcast_id = f.broadcast_id AND r.msisdn = f.msisdn AND r.part = f.part
          AND r.match = 'matched' AND r.stat = f.stat
          AND r.received_at >= (SELECT at FROM since)
          AND r.received_at < now() + interval '7 days')
    ORDER BY f.broadcast_id, f.msisdn, f.part, f.stat, f.received_at
), grouped AS (
    -- The fresh parts counted once by everything the three roll-ups below keep (per
    -- département of the recipient's home, as `found` said it and the receipt row keeps it):
    -- one pass over the batch, a few rows out.
    SELECT f.broadcast_id, f.departement, f.stat, receipt_delay_bucket(f.delay_s) AS bucket,
           count(*) AS n,
           max(f.delay_s) AS max_s
    FROM fresh f
    GROUP BY 1, 2, 3, 4
), counted AS (
    INSERT INTO receipt_rollup AS u (broadcast_id, stat, parts, max_s)
    SELECT broadcast_id, stat, sum(n), max(max_s) FROM grouped GROUP BY 1, 2 ORDER BY 1, 2
    ON CONFLICT (broadcast_id, stat) DO UPDATE
    SET parts = u.parts + EXCLUDED.parts, max_s = greatest(u.max_s, EXCLUDED.max_s)
), by_area AS (
    -- The console map's delivered share.
    INSERT INTO receipt_area_rollup AS u (broadcast_id, departement, stat, parts)
    SELECT broadcast_id, departement, stat, sum(n) FROM grouped GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (broadcast_id, departement, stat) DO UPDATE SET parts = u.parts + EXCLUDED.parts
), binned AS (
    INSERT INTO receipt_delays AS u (broadcast_id, stat, bucket, n)
    SELECT broadcast_id, stat, bucket, sum(n) FROM grouped GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
    ON CONFLICT (broadcast_id, stat, bucket) DO UPDATE SET n = u.n + EXCLUDED.n
)
SELECT smsc, message_id, text_message_id, reported_msisdn, stat, err, done_at, received_at,
       CASE WHEN first_key IS NULL THEN '{}'::text[]
            ELSE array_prepend(first_key, coalesce(more_keys, '{}'::text[])) END AS keys,
       key, n = 0 AS held
FROM found
WHERE (n = 1 AND smsc = ANY($2::text[]))
   OR (n = 0 AND received_at >= now() - make_interval(secs => $3));

-- name: receipts_take_back
-- Receipts of SMSC $1 recorded since $2, while its id form was being found out (to match again
-- once it is known); deleted here, recorded again by the caller in the same transaction. With
-- the broadcast each named (its receipt roll-ups are recounted: rollup_receipts_recount).
DELETE FROM receipts
WHERE smsc = $1 AND received_at >= $2
RETURNING smsc, message_id, text_message_id, reported_msisdn, stat, err, done_at, received_at,
          broadcast_id;

-- name: receipts_unattributed
-- Receipts received since $1 (from the SMSCs in $2; NULL: every one) that name no part
-- ('unmatched') or two ('ambiguous'): visible, never attributed by guess.
SELECT match, count(*)::bigint AS n FROM receipts
WHERE received_at >= $1 AND match <> 'matched' AND ($2::text[] IS NULL OR smsc = ANY($2::text[]))
GROUP BY match;
