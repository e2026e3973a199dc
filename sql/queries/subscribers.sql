-- name: create_import_table
-- A session-local staging table that COPY fills before the upsert.
CREATE TEMP TABLE subscribers_import (
    msisdn bigint, departement text, commune text, cell_id text, lang text, test_group boolean
) ON COMMIT DROP;

-- name: upsert_imported
-- Insert new subscribers and update changed ones; unchanged rows are left alone.
INSERT INTO subscribers AS s (msisdn, departement, commune, cell_id, lang, test_group)
SELECT msisdn, departement, commune, cell_id, lang, test_group FROM subscribers_import
ON CONFLICT (msisdn) DO UPDATE
SET departement = excluded.departement, commune = excluded.commune, cell_id = excluded.cell_id,
    lang = excluded.lang, test_group = excluded.test_group, updated_at = now()
WHERE (s.departement, s.commune, s.cell_id, s.lang, s.test_group)
      IS DISTINCT FROM
      (excluded.departement, excluded.commune, excluded.cell_id, excluded.lang, excluded.test_group);

-- name: target_counts
-- Recipients per (département, language) for a target: whole départements $1, communes $2,
-- test group only when $3.
SELECT departement, lang, count(*)::bigint AS n
FROM subscribers
WHERE (departement = ANY($1::text[]) OR commune = ANY($2::text[]))
  AND (NOT $3::boolean OR test_group)
GROUP BY departement, lang;

-- name: chunk_starts
-- The first msisdn of every run of $2 recipients of one département's selection, in key order.
SELECT msisdn FROM (
    SELECT msisdn, row_number() OVER (ORDER BY msisdn) AS rn
    FROM subscribers
    WHERE departement = $1
      AND ($3::text[] IS NULL OR commune = ANY($3::text[]))
      AND (NOT $4::boolean OR test_group)
) numbered
WHERE rn % $2 = 1
ORDER BY msisdn;

-- name: stream_chunk
-- The recipients of one chunk, in key order (used as COPY (...) TO STDOUT).
SELECT msisdn, lang
FROM subscribers
WHERE departement = $1 AND msisdn BETWEEN $2 AND $3
  AND ($4::text[] IS NULL OR commune = ANY($4::text[]))
  AND (NOT $5::boolean OR test_group)
ORDER BY msisdn
