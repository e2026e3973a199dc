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
-- recipients delivered (every part), parts recorded more than once. The département and the
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
), delivered AS (
    SELECT msisdn, count(DISTINCT part) AS n FROM receipts
    WHERE broadcast_id = $1 AND match = 'matched' AND stat = 'DELIVRD' GROUP BY msisdn
)
SELECT coalesce(g.departement, s.departement, '?') AS departement,
       CASE WHEN g.group_no IS NULL THEN coalesce(s.lang, '?') END AS lang, g.lang AS text_lang,
       count(*)::bigint AS recorded,
       count(*) FILTER (WHERE per.accepted_parts = per.parts)::bigint AS reached,
       sum(per.accepted_parts)::bigint AS parts_accepted,
       coalesce(sum(delivered.n), 0)::bigint AS parts_delivered,
       count(*) FILTER (WHERE delivered.n = per.parts)::bigint AS delivered,
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

-- name: report_not_reached
-- The recipients of broadcast $1's selection (its chunks, as stream_chunk reads them; with
-- `reached_only`, only those its parent reached) without every part accepted: never sent
-- (cancelled, expired), refused or unanswered. With why: the last refusal's status, or none.
SELECT s.msisdn, s.departement, s.commune, s.lang,
       (SELECT d.status FROM deliveries d
        WHERE d.broadcast_id = $1 AND d.msisdn = s.msisdn AND d.status <> 0
        ORDER BY d.answered_at DESC LIMIT 1) AS last_status
FROM broadcasts b
JOIN broadcast_chunks c ON c.broadcast_id = b.id
JOIN subscribers s
  ON s.departement = c.departement AND s.msisdn BETWEEN c.msisdn_from AND c.msisdn_to
WHERE b.id = $1
  AND (c.communes IS NULL OR s.commune = ANY(c.communes) OR s.cell_id = ANY(c.cells))
  AND (NOT coalesce((b.target ->> 'test_group_only')::boolean, false) OR s.test_group)
  AND (c.exclude_communes IS NULL OR (s.commune = ANY(c.exclude_communes)) IS NOT TRUE)
  AND (c.exclude_cells IS NULL OR (s.cell_id = ANY(c.exclude_cells)) IS NOT TRUE)
  AND (NOT b.reached_only OR EXISTS (
        SELECT 1 FROM deliveries p
        WHERE p.broadcast_id = b.parent_id AND p.msisdn = s.msisdn AND p.status = 0))
  AND NOT EXISTS (
        SELECT 1 FROM deliveries d
        WHERE d.broadcast_id = $1 AND d.msisdn = s.msisdn AND d.status = 0
        GROUP BY d.msisdn HAVING count(DISTINCT d.part) = max(d.parts))
ORDER BY s.msisdn;
