-- name: departement_shapes_loaded
SELECT count(*)::int FROM departement_shapes;

-- name: insert_departement_shape
-- $1 code, $2 GeoJSON geometry (vendored outlines; unknown codes are skipped).
INSERT INTO departement_shapes (code, geom)
SELECT $1, ST_Multi(ST_GeomFromGeoJSON($2))
WHERE EXISTS (SELECT 1 FROM departements WHERE code = $1)
ON CONFLICT (code) DO NOTHING;

-- name: create_cell_staging
CREATE TEMP TABLE cell_staging (
    line int, cell_id text COLLATE "C", technology text, lat double precision,
    lon double precision, azimuth double precision, beam double precision,
    range_m double precision, coverage text, departement text COLLATE "C"
) ON COMMIT DROP;

-- name: cell_staging_placed
-- Each staged cell with the département its site stands in (given, else the outline that covers
-- it, else the nearest one) and the distance in km from that outline (0 inside): far sites are
-- rejected. The geodesic distance, costly on an outline, is computed only for sites outside.
SELECT st.line, st.cell_id, coalesce(inside.code, near.code) AS departement,
       CASE WHEN inside.code IS NOT NULL THEN 0.0
            ELSE ST_Distance(near.geom::geography, p.pt::geography) / 1000 END AS km
FROM cell_staging st
CROSS JOIN LATERAL (SELECT ST_SetSRID(ST_MakePoint(st.lon, st.lat), 4326) AS pt) p
LEFT JOIN LATERAL (
    SELECT ds.code FROM departement_shapes ds
    WHERE (st.departement IS NULL OR ds.code = st.departement) AND ST_Covers(ds.geom, p.pt)
    LIMIT 1
) inside ON true
LEFT JOIN LATERAL (
    SELECT ds.code, ds.geom FROM departement_shapes ds
    WHERE inside.code IS NULL AND (st.departement IS NULL OR ds.code = st.departement)
    ORDER BY ds.geom <-> p.pt
    LIMIT 1
) near ON true
WHERE inside.code IS NOT NULL OR near.code IS NOT NULL
ORDER BY st.line;

-- name: upsert_cells
-- The staged cells whose lines are in $1, placed in the départements $2 (parallel arrays);
-- coverage: the given polygon (WKT), else computed from the sector's parameters.
INSERT INTO cells AS c (cell_id, technology, lat, lon, azimuth, beam, range_m, departement,
                        coverage)
SELECT st.cell_id, st.technology, st.lat, st.lon, st.azimuth, st.beam, st.range_m, k.dep,
       coalesce(ST_GeomFromText(st.coverage, 4326),
                sector_coverage(st.lat, st.lon, st.azimuth, st.beam, st.range_m))
FROM unnest($1::int[], $2::text[]) AS k (line, dep)
JOIN cell_staging st ON st.line = k.line
ON CONFLICT (cell_id) DO UPDATE
SET technology = excluded.technology, lat = excluded.lat, lon = excluded.lon,
    azimuth = excluded.azimuth, beam = excluded.beam, range_m = excluded.range_m,
    departement = excluded.departement, coverage = excluded.coverage, updated_at = now();

-- name: synth_cells
-- $1 sites (three 120° sectors each) spread over the départements by population: $2 of them
-- clustered around a point of each département (a city), the rest spread over its outline.
-- Ranges follow the spacing of the département's sites (dense Paris: a few hundred metres;
-- rural Lozère: kilometres), city sectors a third of the rural ones.
WITH quota AS (
    SELECT d.code, s.geom,
           greatest(1, round($1::numeric * d.population / sum(d.population) OVER ()))::int AS n
    FROM departements d JOIN departement_shapes s ON s.code = d.code
), spaced AS (
    SELECT q.*, least(15000, sqrt(ST_Area(q.geom::geography) / q.n)) AS spacing FROM quota q
), sites AS (
    SELECT q.code, 'city' AS kind, q.spacing,
           ST_Project(ST_PointOnSurface(q.geom)::geography,
                      4000 * sqrt(-2 * ln(1 - random())),
                      2 * pi() * random())::geometry AS site,
           i
    FROM spaced q, generate_series(1, (q.n * $2::float8)::int) AS i
    UNION ALL
    SELECT q.code, 'rural', q.spacing, (ST_Dump(ST_GeneratePoints(q.geom,
                                greatest(1, q.n - (q.n * $2::float8)::int)))).geom, 0
    FROM spaced q
), numbered AS (
    SELECT code, kind, spacing, site,
           row_number() OVER (ORDER BY code, kind, i) AS site_no
    FROM sites
)
INSERT INTO cells (cell_id, technology, lat, lon, azimuth, beam, range_m, departement, coverage)
SELECT 'S' || n.code || '-' || n.site_no || '-' || sector,
       CASE WHEN n.kind = 'city' THEN '4G' ELSE '2G' END,
       ST_Y(n.site), ST_X(n.site), sector * 120, 120, r.range_m, n.code,
       sector_coverage(ST_Y(n.site), ST_X(n.site), sector * 120, 120, r.range_m)
FROM numbered n
CROSS JOIN generate_series(0, 2) AS sector
CROSS JOIN LATERAL (
    SELECT greatest(200, least(20000, n.spacing * (0.6 + 0.4 * random())
                                     * CASE WHEN n.kind = 'city' THEN 0.33 ELSE 1 END)) AS range_m
) r
ON CONFLICT (cell_id) DO NOTHING;

-- name: count_cells
SELECT count(*)::bigint FROM cells;

-- name: shape_cells
-- The cells whose coverage meets a shape: the WKT polygon $1, or (with $1 NULL) the circle of
-- $4 metres around ($2 lat, $3 lon), geodesic.
WITH shape AS (
    SELECT CASE WHEN $1::text IS NOT NULL THEN ST_GeomFromText($1, 4326)
                ELSE ST_Buffer(ST_SetSRID(ST_MakePoint($3, $2), 4326)::geography, $4, 32)::geometry
           END AS g
)
SELECT c.cell_id, c.departement
FROM cells c, shape
WHERE ST_Intersects(c.coverage, shape.g)
ORDER BY c.cell_id;

-- name: shape_cells_inside
-- shape_cells ($1-$4), with each cell's coverage area (m²) and the part of it inside the shape:
-- all of it when the cell lies within; else its area times the planar share of it inside (the
-- shape clipped to the cell's box first: the overlay then handles a few vertices, not all).
WITH shape AS (
    SELECT CASE WHEN $1::text IS NOT NULL THEN ST_GeomFromText($1, 4326)
                ELSE ST_Buffer(ST_SetSRID(ST_MakePoint($3, $2), 4326)::geography, $4, 32)::geometry
           END AS g
)
SELECT c.cell_id, c.departement, c.area_m2,
       CASE WHEN ST_Within(c.coverage, shape.g) THEN c.area_m2
            ELSE c.area_m2 * ST_Area(ST_Intersection(c.coverage,
                                                     ST_ClipByBox2D(shape.g, c.coverage::box2d)))
                 / nullif(ST_Area(c.coverage), 0)
       END AS inside_m2
FROM cells c, shape
WHERE ST_Intersects(c.coverage, shape.g)
ORDER BY c.cell_id;

-- name: shape_meets_cells_flipped
-- Would the shape meet a cell with latitude and longitude swapped (the usual mistake)?
SELECT EXISTS (SELECT 1 FROM cells WHERE ST_Intersects(coverage,
                                                       ST_FlipCoordinates(ST_GeomFromText($1, 4326))));

-- name: departement_cells
-- (cell, département) of every cell standing in the départements $1.
SELECT cell_id, departement FROM cells WHERE departement = ANY($1::text[]) ORDER BY cell_id;

-- name: known_cells
-- Which of the cell ids $1 exist, with their département.
SELECT cell_id, departement FROM cells WHERE cell_id = ANY($1::text[]);

-- name: present_counts
-- Numbers last seen within $3 seconds in the cells $1 (standing in départements $2, parallel
-- arrays), per (département, language, visitor's country); test group only when $4.
SELECT k.departement, l.lang, l.country, count(*)::bigint AS n
FROM unnest($1::text[], $2::text[]) AS k (cell_id, departement)
JOIN last_seen_in($1::text[]) l ON l.cell_id = k.cell_id
WHERE l.seen_at >= now() - make_interval(secs => $3) AND (NOT $4::boolean OR l.test_group)
GROUP BY 1, 2, 3;
-- name: presence_counts
-- Every number last seen in the cells $1 (standing in départements $2, parallel arrays), per
-- (département, language, visitor's country, seen within $3 seconds or stale), in one pass
-- (last_seen_in: compacted locations and pending sightings); test group only when $4.
SELECT k.departement, l.lang, l.country,
       l.seen_at >= now() - make_interval(secs => $3) AS fresh, count(*)::bigint AS n
FROM unnest($1::text[], $2::text[]) AS k (cell_id, departement)
JOIN last_seen_in($1::text[]) l ON l.cell_id = k.cell_id
WHERE NOT $4::boolean OR l.test_group
GROUP BY 1, 2, 3, 4;
-- name: selection_counts_absent
-- selection_counts ($1-$6) minus the subscribers present (last seen within $8 seconds) in the
-- cells $7: in a target that reaches both, those get the present text instead.
SELECT s.lang, count(*)::bigint AS n
FROM subscribers s
WHERE s.departement = $1
  AND ($2::text[] IS NULL OR s.commune = ANY($2::text[]) OR s.cell_id = ANY($3::text[]))
  AND ($4::text[] IS NULL OR (s.commune = ANY($4::text[])) IS NOT TRUE)
  AND ($5::text[] IS NULL OR (s.cell_id = ANY($5::text[])) IS NOT TRUE)
  AND (NOT $6::boolean OR s.test_group)
  AND NOT EXISTS (SELECT 1 FROM last_seen_in($7::text[]) l  -- an anti-join: called once
                  WHERE l.msisdn = s.msisdn AND l.seen_at >= now() - make_interval(secs => $8))
GROUP BY s.lang;
-- name: snapshot_present
-- Broadcast $1 reaches the numbers last seen within $4 seconds in the cells $2 (standing in the
-- départements $3, parallel arrays); test group only when $7. A visitor from a country in $5
-- reads the language at the same place in $6 (the broadcast's override), else their own.
INSERT INTO broadcast_present (broadcast_id, msisdn, departement, lang, test_group)
SELECT $1::bigint, l.msisdn, k.departement,
       coalesce(($6::text[])[array_position($5::text[], l.country::text)], l.lang), l.test_group
FROM unnest($2::text[], $3::text[]) AS k (cell_id, departement)
JOIN last_seen_in($2::text[]) l ON l.cell_id = k.cell_id
WHERE l.seen_at >= now() - make_interval(secs => $4) AND (NOT $7::boolean OR l.test_group)
ORDER BY k.departement, l.msisdn;  -- in key order: the indexes are appended to, not scattered
-- name: present_numbers
-- The numbers broadcast $1's present part took, with their département and language.
SELECT msisdn, departement, lang FROM broadcast_present WHERE broadcast_id = $1 ORDER BY msisdn;

-- name: present_chunk_starts
-- The first msisdn of every run of $3 present numbers of broadcast $1 in département $2.
SELECT msisdn FROM (
    SELECT msisdn, row_number() OVER (ORDER BY msisdn) AS rn
    FROM broadcast_present WHERE broadcast_id = $1 AND departement = $2
) s
WHERE (rn - 1) % $3 = 0
ORDER BY msisdn;

-- name: set_chunk_presence
-- The present-mode part of the chunks $2 of broadcast $1: source, cells, window, and (home
-- chunks) the départements of the present numbers to leave out.
UPDATE broadcast_chunks SET source = $3, present_cells = $4, present_window = $5,
                            present_departements = $6
WHERE broadcast_id = $1 AND chunk_no = ANY($2::int[]);

-- name: stream_present
-- A present-mode chunk's numbers, in key order (COPY, arguments inlined): broadcast $1's
-- present numbers of département $2 in $3..$4; with $5 only those broadcast $5 reached.
SELECT p.msisdn, p.lang
FROM broadcast_present p
WHERE p.broadcast_id = $1 AND p.departement = $2 AND p.msisdn BETWEEN $3 AND $4
  AND ($5::bigint IS NULL OR EXISTS (SELECT 1 FROM deliveries d
                                     WHERE d.broadcast_id = $5 AND d.msisdn = p.msisdn
                                       AND d.status = 0))
ORDER BY p.msisdn

-- name: stream_present_drill
-- stream_present ($1-$5) for a drill, with each row's test_group flag (checked by the engine).
SELECT p.msisdn, p.lang, p.test_group
FROM broadcast_present p
WHERE p.broadcast_id = $1 AND p.departement = $2 AND p.msisdn BETWEEN $3 AND $4
  AND ($5::bigint IS NULL OR EXISTS (SELECT 1 FROM deliveries d
                                     WHERE d.broadcast_id = $5 AND d.msisdn = p.msisdn
                                       AND d.status = 0))
ORDER BY p.msisdn

-- name: recorded_parts_present
-- Parts of a present-mode chunk's numbers that already have an outcome (skipped on resume).
SELECT d.msisdn, d.part FROM deliveries d
WHERE d.broadcast_id = $1 AND d.msisdn BETWEEN $2 AND $3;

-- name: all_cell_ids
-- Every imported cell id (location lines naming another are rejected).
SELECT cell_id FROM cells;

-- name: pending_sightings
SELECT count(*)::bigint FROM location_sightings;

-- name: analyze_sightings
-- After an ingest or a compaction: selection plans its passes over the pending sightings by
-- their size (autovacuum would tell it a minute later; a plan made for an empty table scans a
-- million rows once per number). Sampled: ~0.1 s at a million rows.
ANALYZE location_sightings;

-- name: lock_location_compaction
-- One compaction at a time (session-level: held across its batches).
SELECT pg_try_advisory_lock(hashtext('broadcaster.location_compaction'));

-- name: unlock_location_compaction
SELECT pg_advisory_unlock(hashtext('broadcaster.location_compaction'));

-- name: compact_locations
-- Fold up to $1 pending sightings into locations and delete them, in one statement: the newest
-- per number; home subscribers keep their language and test-group flag, a number the home index
-- does not know is a visitor, with its sighting's country and that country's language (English
-- when none is known); an older sighting never overwrites a newer location. The same rules as
-- last_seen_in's, so selection answers the same before and after.
WITH moved AS (
    DELETE FROM location_sightings
    WHERE ctid = ANY (ARRAY(SELECT ctid FROM location_sightings LIMIT $1))
    RETURNING msisdn, cell_id, seen_at, country
), latest AS (
    SELECT DISTINCT ON (m.msisdn) m.msisdn, m.cell_id, m.seen_at, m.country
    FROM moved m
    ORDER BY m.msisdn, m.seen_at DESC, m.cell_id  -- a tie: as last_seen_in breaks it
), resolved AS (
    -- Looked up by key (the batch is sorted by msisdn): never a scan of the whole index
    -- (OFFSET 0 keeps the planner from turning the lookup into a hash join over it).
    SELECT x.msisdn, x.cell_id, x.seen_at, s.lang AS home_lang, s.test_group,
           CASE WHEN s.msisdn IS NULL THEN x.country END AS country
    FROM latest x
    LEFT JOIN LATERAL (SELECT sub.msisdn, sub.lang, sub.test_group FROM subscribers sub
                       WHERE sub.msisdn = x.msisdn OFFSET 0) s ON true
), written AS (
    INSERT INTO locations AS l (msisdn, cell_id, seen_at, lang, test_group, country)
    SELECT r.msisdn, r.cell_id, r.seen_at, coalesce(r.home_lang, cl.lang, 'en'),
           coalesce(r.test_group, false), r.country
    FROM resolved r
    LEFT JOIN country_languages cl ON cl.country = r.country
    -- In the order of the by-cell index, whose pages every moved number touches at random
    -- otherwise: 1M sightings into 6.2M locations in 22 s this way, 35 s in msisdn order.
    ORDER BY r.cell_id, r.seen_at
    ON CONFLICT (msisdn) DO UPDATE
    SET cell_id = excluded.cell_id, seen_at = excluded.seen_at, lang = excluded.lang,
        test_group = excluded.test_group, country = excluded.country
    WHERE excluded.seen_at > l.seen_at
    RETURNING l.country IS NOT NULL AS visitor
)
SELECT (SELECT count(*) FROM moved)::bigint AS moved, count(*)::bigint AS written,
       count(*) FILTER (WHERE visitor)::bigint AS visitors
FROM written;
-- name: synth_locations
-- Synthetic location lines (CSV): about $1 % of the subscribers, each in a random cell of
-- their own département, plus $2 visitors (German, British, Spanish, Italian, US numbers) in
-- random cells; seen within the last $3 hours.
WITH counts AS (
    SELECT departement, count(*) AS n FROM cells GROUP BY 1
), numbered AS (
    SELECT cell_id, departement,
           row_number() OVER (PARTITION BY departement ORDER BY cell_id) AS k
    FROM cells
), everywhere AS (
    SELECT cell_id, row_number() OVER (ORDER BY cell_id) AS k FROM cells
), picked AS (
    SELECT s.msisdn, s.departement, 1 + floor(random() * c.n)::bigint AS k, random() AS age
    FROM subscribers s TABLESAMPLE BERNOULLI ($1) JOIN counts c USING (departement)
), visitors AS (
    SELECT (p.prefix || lpad(i::text, 8, '0'))::bigint AS msisdn,
           1 + floor(random() * (SELECT count(*) FROM cells))::bigint AS k, random() AS age
    FROM generate_series(1, $2::int) AS i
    CROSS JOIN LATERAL (SELECT (ARRAY['49151', '44770', '34612', '39320', '1202'])
                               [1 + i % 5] AS prefix) p
)
SELECT p.msisdn, n.cell_id, to_char((now() - p.age * make_interval(hours => $3))
                                    AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS seen_at
FROM picked p JOIN numbered n ON n.departement = p.departement AND n.k = p.k
UNION ALL
SELECT v.msisdn, e.cell_id, to_char((now() - v.age * make_interval(hours => $3))
                                    AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
FROM visitors v JOIN everywhere e ON e.k = v.k

-- name: location_batch_settings
-- A batch's sorts and hashes stay in memory; its commit does not wait for the disk (locations
-- are re-fed by the network all the time: a crash loses at most the last moments, never
-- consistency).
SET LOCAL work_mem = '256MB';
SET LOCAL synchronous_commit = off;

