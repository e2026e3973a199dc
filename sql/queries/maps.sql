-- Queries of the console's map: outlines to draw, the cells a target selected, and how far each
-- area of a broadcast has got. Reads only.

-- name: map_departement_outlines
-- The départements whose outlines are $1 (codes) and $2 (GeoJSON geometries, parallel arrays:
-- the package's vendored file), with their names and regions, simplified by $3 degrees for
-- drawing (a map of France needs ~1 km, not the 200 m the cells are placed with).
SELECT d.code, d.name, d.region_code, r.name AS region_name,
       ST_AsGeoJSON(ST_SimplifyPreserveTopology(ST_GeomFromGeoJSON(x.geometry), $3), 4)
           AS geometry
FROM unnest($1::text[], $2::text[]) AS x (code, geometry)
JOIN departements d ON d.code = x.code
JOIN regions r ON r.code = d.region_code
ORDER BY d.code;

-- name: map_region_outlines
-- The regions, each the union of its départements' outlines ($1 codes, $2 GeoJSON, parallel
-- arrays), simplified by $3 degrees: dissolved here rather than vendored a second time.
SELECT r.code, r.name,
       -- (the départements' shared borders do not meet exactly: a plain union left slivers,
       -- 33 holes in Île-de-France drawn as stray lines; out 200 m and back closes them)
       ST_AsGeoJSON(ST_SimplifyPreserveTopology(
           ST_Buffer(ST_Buffer(ST_UnaryUnion(ST_Collect(ST_GeomFromGeoJSON(x.geometry))), 0.002),
                     -0.002),
           $3), 4) AS geometry
FROM unnest($1::text[], $2::text[]) AS x (code, geometry)
JOIN departements d ON d.code = x.code
JOIN regions r ON r.code = d.region_code
GROUP BY r.code, r.name
ORDER BY r.code;

-- name: map_cell_outlines
-- The coverage of the cells $1, to draw what a target selected.
SELECT cell_id, departement, ST_AsGeoJSON(coverage, 4) AS geometry
FROM cells WHERE cell_id = ANY($1::text[])
ORDER BY cell_id;

-- name: map_areas_progress
-- Broadcast $1 per département: its recipients and parts (the planned groups), its chunks, all
-- and done (a done chunk has had every recipient's outcome recorded), and its parts delivered
-- (a DELIVRD receipt: the receipt roll-up per area, a few rows whatever the broadcast's size).
SELECT g.departement, g.recipients, g.parts, coalesce(c.chunks, 0) AS chunks,
       coalesce(c.done, 0) AS done, coalesce(r.parts, 0) AS delivered
FROM (SELECT departement, sum(recipients)::bigint AS recipients,
             sum(recipients::bigint * parts)::bigint AS parts
      FROM broadcast_groups WHERE broadcast_id = $1 GROUP BY departement) g
LEFT JOIN receipt_area_rollup r
       ON r.broadcast_id = $1 AND r.departement = g.departement AND r.stat = 'DELIVRD'
LEFT JOIN (SELECT departement, count(*)::int AS chunks, count(*) FILTER (WHERE done)::int AS done
           FROM broadcast_chunks WHERE broadcast_id = $1 GROUP BY departement) c
       ON c.departement = g.departement
ORDER BY g.departement;
