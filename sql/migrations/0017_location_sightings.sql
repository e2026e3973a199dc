-- Location updates arrive append-only (issue 23): COPY into `location_sightings`, no index, no
-- lookup, no UPDATE, so ingest runs at COPY speed (an upsert into the ~6M rows of `locations`
-- with its two indexes ran at 11-23k updates/s on 10M subscribers: every update touched random
-- pages of both indexes and of the subscriber index). Compaction (`locations compact`, and
-- `serve` every `locations_compact_interval_s`) later folds the sightings into `locations` with
-- the set-based upsert and deletes them. Selection reads both through `last_seen_in`, so a
-- sighting counts from the moment its COPY commits; the two give the same answers before and
-- after a compaction.
CREATE TABLE location_sightings (
    msisdn  bigint NOT NULL,
    cell_id text COLLATE "C" NOT NULL,
    seen_at timestamptz NOT NULL,
    -- The SIM's country (ISO 3166, 'ZZ' unknown) from the MCC or the number's calling code,
    -- resolved at ingest; it is the number's country only if the home index does not know it.
    country text COLLATE "C" NOT NULL
) WITH (autovacuum_vacuum_insert_scale_factor = 0.05);

-- A compaction moves many rows of `locations`: their pages lose their all-visible bit and the
-- index-only scans of selection fetch those from the heap until a vacuum. Vacuumed after 1% of
-- its rows changed, not the default 20%.
ALTER TABLE locations SET (autovacuum_vacuum_scale_factor = 0.01,
                           autovacuum_analyze_scale_factor = 0.02);

-- Every number whose last sighting (in `locations` or pending in `location_sightings`, the
-- newest wins; a tie goes to `locations`) is in one of the cells `cells`, fresh or stale, with
-- its language, test-group flag and (visitors) country. A pending sighting takes them as its
-- compaction will: from the subscriber index, else (a visitor) from its country
-- (country_languages, English when none). The pending sightings are read in two passes: the
-- numbers pending in the cells, then every pending sighting of those numbers and of the numbers
-- compacted in the cells (they may have moved away since).
-- PL/pgSQL with EXECUTE: each call is planned for its own array of cells (a cached generic
-- plan would hash-join all of `locations`).
CREATE FUNCTION last_seen_in(cells text[])
RETURNS TABLE (msisdn bigint, cell_id text, seen_at timestamptz, lang text, test_group boolean,
               country text)
LANGUAGE plpgsql STABLE
ROWS 100000  -- a département's numbers: joins against it are planned as hash joins
SET work_mem = '64MB'  -- its hashes of a département's numbers stay in memory
AS $fn$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM location_sightings) THEN  -- all compacted: the index alone
        RETURN QUERY SELECT l.msisdn, l.cell_id::text, l.seen_at, l.lang::text, l.test_group,
                            l.country::text
                     FROM locations l WHERE l.cell_id = ANY(cells);
        RETURN;
    END IF;
    RETURN QUERY EXECUTE $q$
    WITH base AS MATERIALIZED (
        SELECT l.msisdn, l.cell_id, l.seen_at, l.lang, l.test_group, l.country
        FROM locations l WHERE l.cell_id = ANY($1)
    ), touched AS MATERIALIZED (
        -- Every pending sighting of the numbers pending in the cells or compacted there.
        SELECT s.msisdn, s.cell_id, s.seen_at, s.country FROM location_sightings s
        WHERE s.msisdn IN (SELECT i.msisdn FROM location_sightings i WHERE i.cell_id = ANY($1)
                           UNION ALL
                           SELECT b.msisdn FROM base b)
    ), pending AS MATERIALIZED (
        SELECT DISTINCT ON (t.msisdn) t.msisdn, t.cell_id, t.seen_at, t.country
        FROM touched t
        ORDER BY t.msisdn, t.seen_at DESC, t.cell_id  -- a tie: as a compaction batch breaks it
    )
    SELECT b.msisdn, b.cell_id, b.seen_at, b.lang, b.test_group, b.country
    FROM base b
    WHERE NOT EXISTS (SELECT 1 FROM pending p WHERE p.msisdn = b.msisdn AND p.seen_at > b.seen_at)
    UNION ALL
    SELECT p.msisdn, p.cell_id, p.seen_at, coalesce(sub.lang, cl.lang, 'en')::text,
           coalesce(sub.test_group, false),
           (CASE WHEN sub.msisdn IS NULL THEN p.country END)::text
    FROM pending p
    -- Looked up by key (OFFSET 0: never a hash join over the whole table).
    LEFT JOIN LATERAL (SELECT l.seen_at FROM locations l
                       WHERE l.msisdn = p.msisdn OFFSET 0) b ON true
    LEFT JOIN LATERAL (SELECT s.msisdn, s.lang, s.test_group FROM subscribers s
                       WHERE s.msisdn = p.msisdn OFFSET 0) sub ON true
    LEFT JOIN country_languages cl ON cl.country = p.country
    WHERE p.cell_id = ANY($1) AND (b.seen_at IS NULL OR p.seen_at > b.seen_at)
    $q$ USING cells;
END
$fn$;
