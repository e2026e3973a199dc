-- The after-action report of a broadcast (issue 22): read once the broadcast is over (or while
-- it runs), so these scan the broadcast's outcomes; `status` reads the roll-ups instead.

-- name: report_areas
-- Département names of broadcast $1's groups.
SELECT DISTINCT g.departement, d.name
FROM broadcast_groups g JOIN departements d ON d.code = g.departement
WHERE g.broadcast_id = $1 ORDER BY g.departement;

-- name: report_by_area_lang
-- Per (département, subscriber language) and the text's language: recipients with an outcome,
-- reached (every part accepted), parts accepted, parts delivered (a DELIVRD receipt),
-- recipients delivered (every part), recipients reached but not delivered (a part a receipt
-- says was not delivered, as report_undelivered reads parts), parts recorded more than once.
-- The département and the
-- text's language (`text_lang`) are the group's each part was sent in (migration 0024), as they
-- were at the send, whatever imports did since (`lang` NULL); outcomes recorded without their
-- group take the recipient's home and language today ('?': a number no longer in the index),
-- looked up only for them (a LATERAL kept apart by OFFSET 0: a join hashed every subscriber).
WITH per AS (
    SELECT d.msisdn, max(d.parts) AS parts,
           count(DISTINCT d.part) FILTER (WHERE d.status = 0) AS accepted_parts,
           count(*) - count(DISTINCT d.part) AS extra_rows,
           max(d.group_no) AS group_no
    FROM deliveries d WHERE d.broadcast_id = $1 GROUP BY d.msisdn
), receipted_parts AS (
    SELECT msisdn, part, bool_or(stat = 'DELIVRD') AS ok,
           bool_or(receipt_undelivered(stat)) AS failed
    FROM receipts
    WHERE broadcast_id = $1 AND match = 'matched' GROUP BY msisdn, part
), delivered AS (
    SELECT msisdn, count(*) FILTER (WHERE ok) AS n, bool_or(failed AND NOT ok) AS failed
    FROM receipted_parts GROUP BY msisdn
)
SELECT coalesce(g.departement, s.departement, '?') AS departement,
       CASE WHEN g.group_no IS NULL THEN coalesce(s.lang, '?') END AS lang, g.lang AS text_lang,
       count(*)::bigint AS recorded,
       count(*) FILTER (WHERE per.accepted_parts = per.parts)::bigint AS reached,
       sum(per.accepted_parts)::bigint AS parts_accepted,
       coalesce(sum(delivered.n), 0)::bigint AS parts_delivered,
       count(*) FILTER (WHERE delivered.n = per.parts)::bigint AS delivered,
       count(*) FILTER (WHERE per.accepted_parts = per.parts AND delivered.failed)::bigint
           AS undelivered,
       sum(per.extra_rows)::bigint AS recorded_twice
FROM per
LEFT JOIN broadcast_groups g ON g.broadcast_id = $1 AND g.group_no = per.group_no
LEFT JOIN LATERAL (
    SELECT s.departement, s.lang FROM subscribers s
    WHERE g.group_no IS NULL AND s.msisdn = per.msisdn OFFSET 0
) s ON true
LEFT JOIN delivered ON delivered.msisdn = per.msisdn
GROUP BY 1, 2, 3;

-- name: report_failures_by_area_lang
-- Parts refused per (département, subscriber language), text's language and status: the
-- group's, as `report_by_area_lang` reads them.
SELECT coalesce(g.departement, s.departement, '?') AS departement,
       CASE WHEN g.group_no IS NULL THEN coalesce(s.lang, '?') END AS lang, g.lang AS text_lang,
       d.status, count(*)::bigint AS n
FROM deliveries d
LEFT JOIN broadcast_groups g ON g.broadcast_id = $1 AND g.group_no = d.group_no
LEFT JOIN LATERAL (
    SELECT s.departement, s.lang FROM subscribers s
    WHERE g.group_no IS NULL AND s.msisdn = d.msisdn OFFSET 0
) s ON true
WHERE d.broadcast_id = $1 AND d.status <> 0
GROUP BY 1, 2, 3, 4;

-- name: report_undelivered
-- Parts accepted, then reported not delivered by their receipts: a final stat that is not a
-- delivery (`receipt_undelivered`, migration 0026: UNDELIV, EXPIRED, REJECTD, DELETED, UNKNOWN,
-- ACCEPTD; the first received) and no DELIVRD receipt, per (département, subscriber language),
-- text's language (the group's, as `report_by_area_lang` reads them), the SMSC that accepted the
-- part, and stat.
-- One pass over the broadcast's receipts, a group per part (no anti-join: planned on the
-- statistics of a receipts partition that had not seen this broadcast yet, it compared every
-- undelivered part with every delivered one: 48 s at 97,000 recipients).
WITH failed AS (
    SELECT r.msisdn, r.part,
           (array_agg(r.stat ORDER BY r.received_at)
               FILTER (WHERE receipt_undelivered(r.stat)))[1] AS stat,
           (array_agg(r.smsc ORDER BY r.received_at)
               FILTER (WHERE receipt_undelivered(r.stat)))[1] AS smsc
    FROM receipts r
    WHERE r.broadcast_id = $1 AND r.match = 'matched'
    GROUP BY r.msisdn, r.part
    HAVING NOT bool_or(r.stat = 'DELIVRD')
       AND bool_or(receipt_undelivered(r.stat))
)
SELECT coalesce(g.departement, s.departement, '?') AS departement,
       CASE WHEN g.group_no IS NULL THEN coalesce(s.lang, '?') END AS lang, g.lang AS text_lang,
       coalesce(x.smsc, f.smsc) AS smsc, f.stat, count(*)::bigint AS n
FROM failed f
LEFT JOIN LATERAL (
    -- The part's accepted submission, by index for each failed part (a join on the CTE,
    -- estimated at one row, compared every failed part with every other: minutes at 200k).
    SELECT d.group_no, d.smsc FROM deliveries d
    WHERE d.broadcast_id = $1 AND d.msisdn = f.msisdn AND d.part = f.part AND d.status = 0
    ORDER BY d.answered_at DESC LIMIT 1
) x ON true
LEFT JOIN broadcast_groups g ON g.broadcast_id = $1 AND g.group_no = x.group_no
LEFT JOIN LATERAL (
    SELECT s.departement, s.lang FROM subscribers s
    WHERE g.group_no IS NULL AND s.msisdn = f.msisdn OFFSET 0
) s ON true
GROUP BY 1, 2, 3, 4, 5;

-- name: report_delivered_by_smsc
SELECT smsc, count(DISTINCT (msisdn, part))::bigint AS n FROM receipts
WHERE broadcast_id = $1 AND match = 'matched' AND stat = 'DELIVRD' GROUP BY smsc;

-- name: report_first_part
SELECT min(submitted_at) AS first_part, max(answered_at) AS last_answer
FROM deliveries WHERE broadcast_id = $1;

-- name: report_last_receipt
SELECT max(received_at) FROM receipts WHERE broadcast_id = $1 AND match = 'matched';

-- name: report_nth_accepted
-- When the $2-th part (1-based) of broadcast $1 was accepted (NULL: fewer were).
SELECT answered_at FROM deliveries WHERE broadcast_id = $1 AND status = 0
ORDER BY answered_at OFFSET $2 - 1 LIMIT 1;

-- name: report_nth_delivered
-- When the $2-th part of broadcast $1 got its (first) DELIVRD receipt.
SELECT received_at FROM (
    SELECT DISTINCT ON (msisdn, part) received_at FROM receipts
    WHERE broadcast_id = $1 AND match = 'matched' AND stat = 'DELIVRD'
    ORDER BY msisdn, part, received_at
) first ORDER BY received_at OFFSET $2 - 1 LIMIT 1;

-- name: report_accepted_curve
-- Parts accepted per step of $3 seconds from $2.
SELECT floor(extract(epoch FROM answered_at - $2) / $3)::int AS step, count(*)::bigint AS n
FROM deliveries WHERE broadcast_id = $1 AND status = 0 GROUP BY 1 ORDER BY 1;

-- name: report_delivered_curve
SELECT floor(extract(epoch FROM received_at - $2) / $3)::int AS step, count(*)::bigint AS n
FROM (
    SELECT DISTINCT ON (msisdn, part) received_at FROM receipts
    WHERE broadcast_id = $1 AND match = 'matched' AND stat = 'DELIVRD'
    ORDER BY msisdn, part, received_at
) first GROUP BY 1 ORDER BY 1;

-- name: report_not_reached_table
-- This connection's list of recipients not reached, taken once (`report_not_reached`) so that
-- the audit's count and the rows exported come from one snapshot, and the statement runs once.
CREATE TEMPORARY TABLE IF NOT EXISTS not_reached_export (
    msisdn      bigint NOT NULL,
    departement text NOT NULL,
    commune     text,
    lang        text NOT NULL,
    last_status integer,
    receipt_stat text
);

-- name: report_not_reached_clear
TRUNCATE pg_temp.not_reached_export;

-- name: report_not_reached_drop
-- The list dropped once exported: a pooled connection does not keep phone numbers around.
DROP TABLE IF EXISTS pg_temp.not_reached_export;

-- name: report_not_reached_rows
SELECT msisdn, departement, commune, lang, last_status, receipt_stat
FROM pg_temp.not_reached_export
ORDER BY msisdn;

-- name: report_not_reached
-- Into this connection's `not_reached_export` (report_not_reached_table): broadcast $1's
-- recipients to follow up by other means, and why: without every part accepted (the last
-- refusal's status, or NULL: never sent), or accepted and reported not delivered by a receipt
-- (its stat); the language is the recipient's (today's in the index, else their group's):
-- - those it sent to (outcomes recorded): the numbers as sent, under the département of the
--   group their parts went out in (migration 0024; today's home for outcomes recorded without
--   it), whatever imports did since;
-- - those of its chunks not done (never sent: cancelled, expired), read as the chunk would be
--   streamed now (stream_chunk: a home chunk from the subscriber index, without the numbers the
--   broadcast reaches as present; stream_present: a present chunk from the numbers taken when
--   the broadcast was created).
-- A chunk done sent to everyone it read: a number that came into the index since is not the
-- broadcast's. (Read home chunks and present numbers as one: a present-only broadcast listed
-- every resident of its départements' ranges.)
INSERT INTO pg_temp.not_reached_export (msisdn, departement, commune, lang, last_status,
                                        receipt_stat)
WITH sent AS MATERIALIZED (
    SELECT d.msisdn, max(d.parts) AS parts,
           count(DISTINCT d.part) FILTER (WHERE d.status = 0) AS accepted,
           max(d.group_no) AS group_no,
           (array_agg(d.status ORDER BY d.answered_at DESC) FILTER (WHERE d.status <> 0))[1]
               AS last_status
    FROM deliveries d WHERE d.broadcast_id = $1 GROUP BY d.msisdn
), unsent AS (
    SELECT s.msisdn, s.departement, s.commune, s.lang
    FROM broadcasts b
    JOIN broadcast_chunks c ON c.broadcast_id = b.id AND NOT c.done AND c.source = 'home'
    JOIN subscribers s
      ON s.departement = c.departement AND s.msisdn BETWEEN c.msisdn_from AND c.msisdn_to
    WHERE b.id = $1
      AND (c.communes IS NULL OR s.commune = ANY(c.communes) OR s.cell_id = ANY(c.cells))
      AND (NOT coalesce((b.target ->> 'test_group_only')::boolean, false) OR s.test_group)
      AND (c.exclude_communes IS NULL OR (s.commune = ANY(c.exclude_communes)) IS NOT TRUE)
      AND (c.exclude_cells IS NULL OR (s.cell_id = ANY(c.exclude_cells)) IS NOT TRUE)
      AND (c.present_departements IS NULL OR NOT EXISTS (
            SELECT 1 FROM broadcast_present p
            WHERE p.broadcast_id = b.id AND p.departement = ANY(c.present_departements)
              AND p.msisdn = s.msisdn))
      AND (NOT b.reached_only OR EXISTS (
            SELECT 1 FROM deliveries r
            WHERE r.broadcast_id = b.parent_id AND r.msisdn = s.msisdn AND r.status = 0))
    UNION ALL
    SELECT p.msisdn, p.departement, s.commune, p.lang
    FROM broadcasts b
    JOIN broadcast_chunks c ON c.broadcast_id = b.id AND NOT c.done AND c.source = 'present'
    JOIN broadcast_present p
      ON p.broadcast_id = b.id AND p.departement = c.departement
     AND p.msisdn BETWEEN c.msisdn_from AND c.msisdn_to
    LEFT JOIN subscribers s ON s.msisdn = p.msisdn
    WHERE b.id = $1
      AND (NOT b.reached_only OR EXISTS (
            SELECT 1 FROM deliveries r
            WHERE r.broadcast_id = b.parent_id AND r.msisdn = p.msisdn AND r.status = 0))
)
, undelivered AS (
    -- Recipients with every part accepted, one of which a receipt says was not delivered (as
    -- report_undelivered reads a part: a final stat not a delivery, no DELIVRD): the first such
    -- stat received. Accepted is not delivered: the cell follows them up too.
    -- (A group per part, then per recipient: no anti-join, as report_undelivered.)
    SELECT p.msisdn, (array_agg(p.stat ORDER BY p.first_at))[1] AS stat
    FROM (
        SELECT r.msisdn, r.part,
               (array_agg(r.stat ORDER BY r.received_at)
                   FILTER (WHERE receipt_undelivered(r.stat)))[1] AS stat,
               min(r.received_at) FILTER (WHERE receipt_undelivered(r.stat)) AS first_at
        FROM receipts r
        WHERE r.broadcast_id = $1 AND r.match = 'matched'
        GROUP BY r.msisdn, r.part
        HAVING NOT bool_or(r.stat = 'DELIVRD')
           AND bool_or(receipt_undelivered(r.stat))
    ) p
    GROUP BY p.msisdn
)
SELECT x.msisdn, coalesce(g.departement, s.departement, '?') AS departement, s.commune,
       coalesce(s.lang, g.lang, '?') AS lang, x.last_status,
       CASE WHEN x.accepted >= x.parts THEN u.stat END
FROM sent x
LEFT JOIN undelivered u ON u.msisdn = x.msisdn
LEFT JOIN broadcast_groups g ON g.broadcast_id = $1 AND g.group_no = x.group_no
LEFT JOIN subscribers s ON s.msisdn = x.msisdn
WHERE x.accepted < x.parts OR u.msisdn IS NOT NULL
UNION ALL
SELECT u.msisdn, u.departement, u.commune, u.lang, NULL, NULL
FROM unsent u
WHERE NOT EXISTS (SELECT 1 FROM sent x WHERE x.msisdn = u.msisdn);
