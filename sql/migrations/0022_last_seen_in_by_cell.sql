-- Issue 23's polygon preview at speed: `last_seen_in` read the cells' numbers with
-- `cell_id = ANY(cells)`. For a département-sized polygon (7,400 cells, 30,000 numbers among
-- 1.2M) PostgreSQL planned that as a (parallel) sequential scan of all of `locations`, 100 ms
-- and more when its pages were not in shared buffers: 270-320 ms of the preview's 340, against a
-- 300 ms target. Each distinct cell is now looked up in `locations_by_cell` (an index-only
-- nested loop: ~25 ms, whatever the table's size); nothing else changes.
CREATE OR REPLACE FUNCTION last_seen_in(cells text[])
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
                     FROM (SELECT DISTINCT c FROM unnest(cells) AS c) AS u
                     JOIN locations l ON l.cell_id = u.c;
        RETURN;
    END IF;
    RETURN QUERY EXECUTE $q$
    WITH base AS MATERIALIZED (
        SELECT l.msisdn, l.cell_id, l.seen_at, l.lang, l.test_group, l.country
        FROM (SELECT DISTINCT c FROM unnest($1) AS c) AS u
        JOIN locations l ON l.cell_id = u.c
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
