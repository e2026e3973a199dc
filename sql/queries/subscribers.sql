-- name: import_lock
-- One import at a time (transaction-level advisory lock, $1 a constant key).
SELECT pg_advisory_xact_lock($1);

-- name: subscribers_empty
SELECT NOT EXISTS (SELECT 1 FROM subscribers) AS empty;

-- name: lock_subscribers
LOCK TABLE subscribers IN ACCESS EXCLUSIVE MODE;

-- name: subscribers_referenced
-- Does another table's foreign key reference subscribers (TRUNCATE would then be refused)?
SELECT EXISTS (SELECT 1 FROM pg_constraint
               WHERE contype = 'f' AND confrelid = 'subscribers'::regclass) AS referenced;

-- name: truncate_subscribers
-- Empty already: truncating in the loading transaction lets COPY write frozen, all-visible rows
-- (no VACUUM needed before index-only scans).
TRUNCATE subscribers;

-- name: bulk_load_settings
SET LOCAL maintenance_work_mem = '256MB';

-- name: subscriber_constraints
-- Constraints a bulk load drops and re-adds: primary key and unique ones (unless another table's
-- foreign key needs them), then foreign keys, in the order they must be re-added.
SELECT c.conname AS name, pg_get_constraintdef(c.oid) AS definition, c.contype = 'f' AS foreign
FROM pg_constraint c
WHERE c.conrelid = 'subscribers'::regclass
  AND (c.contype = 'f'
       OR (c.contype IN ('p', 'u')
           AND NOT EXISTS (SELECT 1 FROM pg_constraint r
                           WHERE r.contype = 'f' AND r.conindid = c.conindid
                             AND r.conrelid <> c.conrelid)))
ORDER BY c.contype = 'f', c.conname;

-- name: subscriber_indexes
-- Indexes of subscribers that no constraint owns (a bulk load drops and rebuilds them).
SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition
FROM pg_index i
WHERE i.indrelid = 'subscribers'::regclass
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid
                                                 AND c.conrelid = i.indrelid)
ORDER BY 1;

-- name: disable_count_triggers
-- A bulk load writes subscriber_counts itself, from the rows it streamed.
ALTER TABLE subscribers
    DISABLE TRIGGER subscribers_count_inserts,
    DISABLE TRIGGER subscribers_count_updates,
    DISABLE TRIGGER subscribers_count_deletes,
    DISABLE TRIGGER subscribers_count_truncates;

-- name: enable_count_triggers
ALTER TABLE subscribers
    ENABLE TRIGGER subscribers_count_inserts,
    ENABLE TRIGGER subscribers_count_updates,
    ENABLE TRIGGER subscribers_count_deletes,
    ENABLE TRIGGER subscribers_count_truncates;

-- name: clear_counts
DELETE FROM subscriber_counts;

-- name: analyze_subscribers
ANALYZE subscribers, subscriber_counts;

-- name: create_import_table
-- A staging table, local to the import's transaction, that COPY fills with each batch before
-- the upsert applies it.
CREATE TEMP TABLE subscribers_import (
    msisdn bigint, departement text COLLATE "C", commune text COLLATE "C",
    cell_id text COLLATE "C", lang text COLLATE "C", test_group boolean
) ON COMMIT DROP;

-- name: clear_import_table
-- Emptied after each batch is applied, for the next one.
TRUNCATE subscribers_import;

-- name: apply_import
-- Insert new subscribers and update changed ones. Unchanged rows are filtered out before the
-- write, so they are neither rewritten nor locked: re-importing the same file writes nothing.
-- The count triggers see only the rows that changed.
WITH changed AS (
    SELECT i.msisdn, i.departement, i.commune, i.cell_id, i.lang, i.test_group
    FROM subscribers_import i
    LEFT JOIN subscribers s ON s.msisdn = i.msisdn
    WHERE s.msisdn IS NULL
       OR (s.departement, s.commune, s.cell_id, s.lang, s.test_group)
          IS DISTINCT FROM (i.departement, i.commune, i.cell_id, i.lang, i.test_group)
), written AS (
    INSERT INTO subscribers AS s (msisdn, departement, commune, cell_id, lang, test_group)
    SELECT msisdn, departement, commune, cell_id, lang, test_group FROM changed
    ORDER BY msisdn
    ON CONFLICT (msisdn) DO UPDATE
    SET departement = excluded.departement, commune = excluded.commune,
        cell_id = excluded.cell_id, lang = excluded.lang, test_group = excluded.test_group,
        updated_at = now()
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted)::bigint AS inserted,
       count(*) FILTER (WHERE NOT inserted)::bigint AS updated
FROM written;

-- name: total_subscribers
SELECT coalesce(sum(n), 0)::bigint FROM subscriber_counts WHERE kind = 'departement';

-- name: area_counts
-- Recipients per (département, language) from the maintained counts: the sum of n * sign over
-- the (kind, departement, area) keys given as parallel arrays; test group only when $5.
SELECT k.departement, c.lang, sum(c.n * k.sign)::bigint AS n
FROM unnest($1::text[], $2::text[], $3::text[], $4::int[]) AS k (kind, departement, area, sign)
JOIN subscriber_counts c
  ON c.kind = k.kind AND c.departement = k.departement AND c.area = k.area
WHERE NOT $5::boolean OR c.test_group
GROUP BY k.departement, c.lang;

-- name: selection_counts
-- Recipients per language of one département's selection, counted from the rows (for mixes of
-- communes, cells and exclusions that the maintained counts cannot add up exactly).
-- $1 département, $2 communes (NULL: all), $3 cells, $4 excluded communes, $5 excluded cells,
-- $6 test group only.
SELECT lang, count(*)::bigint AS n
FROM subscribers
WHERE departement = $1
  AND ($2::text[] IS NULL OR commune = ANY($2::text[]) OR cell_id = ANY($3::text[]))
  AND ($4::text[] IS NULL OR (commune = ANY($4::text[])) IS NOT TRUE)
  AND ($5::text[] IS NULL OR (cell_id = ANY($5::text[])) IS NOT TRUE)
  AND (NOT $6::boolean OR test_group)
GROUP BY lang;

-- name: cell_departements
-- The départements where each of the cells $1 has subscribers.
SELECT area AS cell_id, array_agg(DISTINCT departement ORDER BY departement) AS departements
FROM subscriber_counts
WHERE kind = 'cell' AND area = ANY($1::text[]) AND n > 0
GROUP BY area;

-- name: chunk_starts
-- The first msisdn of every run of $2 recipients of département $1 (test group only when $3),
-- in key order: each step skips $2 entries of the covering index from the previous start, so
-- the whole département costs one index-only pass and no sort or window.
WITH RECURSIVE starts (msisdn) AS (
    (SELECT msisdn FROM subscribers
     WHERE departement = $1 AND (NOT $3::boolean OR test_group)
     ORDER BY msisdn LIMIT 1)
    UNION ALL
    SELECT (SELECT s.msisdn FROM subscribers s
            WHERE s.departement = $1 AND (NOT $3::boolean OR s.test_group)
              AND s.msisdn > starts.msisdn
            ORDER BY s.msisdn OFFSET $2 - 1 LIMIT 1)
    FROM starts WHERE starts.msisdn IS NOT NULL
)
SELECT msisdn FROM starts WHERE msisdn IS NOT NULL;

-- name: chunk_starts_selection
-- Like chunk_starts, for a selection within the département: $4 communes (NULL: all), $5 cells,
-- $6 excluded communes, $7 excluded cells (NULL: none).
WITH RECURSIVE starts (msisdn) AS (
    (SELECT msisdn FROM subscribers
     WHERE departement = $1 AND (NOT $3::boolean OR test_group)
       AND ($4::text[] IS NULL OR commune = ANY($4::text[]) OR cell_id = ANY($5::text[]))
       AND (commune = ANY($6::text[])) IS NOT TRUE
       AND (cell_id = ANY($7::text[])) IS NOT TRUE
     ORDER BY msisdn LIMIT 1)
    UNION ALL
    SELECT (SELECT s.msisdn FROM subscribers s
            WHERE s.departement = $1 AND (NOT $3::boolean OR s.test_group)
              AND ($4::text[] IS NULL OR s.commune = ANY($4::text[])
                   OR s.cell_id = ANY($5::text[]))
              AND (s.commune = ANY($6::text[])) IS NOT TRUE
              AND (s.cell_id = ANY($7::text[])) IS NOT TRUE
              AND s.msisdn > starts.msisdn
            ORDER BY s.msisdn OFFSET $2 - 1 LIMIT 1)
    FROM starts WHERE starts.msisdn IS NOT NULL
)
SELECT msisdn FROM starts WHERE msisdn IS NOT NULL;

-- name: set_chunk_selection
-- The cells and exclusions of département $2's chunks of broadcast $1 (after insert_chunk).
UPDATE broadcast_chunks SET cells = $3, exclude_communes = $4, exclude_cells = $5
WHERE broadcast_id = $1 AND departement = $2;

-- name: chunk_selection
-- The cell and exclusion parts of a chunk's selection (see broadcast_chunks).
SELECT cells, exclude_communes, exclude_cells
FROM broadcast_chunks WHERE broadcast_id = $1 AND chunk_no = $2;

-- name: stream_chunk
-- The recipients of one chunk, in key order (used as COPY (...) TO STDOUT, whose arguments are
-- inlined as constants: a NULL filter folds away, and a whole département is an index-only
-- scan of subscribers_by_departement). $1 département, $2..$3 msisdn range, $4 communes (NULL:
-- all), $5 test group only, $6 cells, $7 excluded communes, $8 excluded cells; $9 (NULL: none)
-- the broadcast whose present numbers (broadcast_present, in the départements $10) get that text
-- instead.
SELECT msisdn, lang
FROM subscribers
WHERE departement = $1 AND msisdn BETWEEN $2 AND $3
  AND ($4::text[] IS NULL OR commune = ANY($4::text[]) OR cell_id = ANY($6::text[]))
  AND (NOT $5::boolean OR test_group)
  AND ($7::text[] IS NULL OR (commune = ANY($7::text[])) IS NOT TRUE)
  AND ($8::text[] IS NULL OR (cell_id = ANY($8::text[])) IS NOT TRUE)
  AND ($9::bigint IS NULL OR NOT EXISTS (
      SELECT 1 FROM broadcast_present p WHERE p.broadcast_id = $9
                                          AND p.departement = ANY($10::text[]) AND p.msisdn = subscribers.msisdn))
ORDER BY msisdn

-- name: subscribers_in_departements
-- Every subscriber of the départements $1, with their language (the demo checks each got the
-- text of its group).
SELECT msisdn, departement, lang FROM subscribers WHERE departement = ANY($1::text[]);
