-- name: list_departements
-- Every département with its region, for targeting.
SELECT d.code, d.name, d.region_code, d.default_language, r.name AS region_name
FROM departements d JOIN regions r ON r.code = d.region_code
ORDER BY d.code;

-- name: area_variables
-- Variables of the given départements ($1 text[]), and whether each is a reference placeholder.
SELECT departement, name, value, placeholder
FROM area_variables WHERE departement = ANY($1::text[]);

-- name: placeholder_area_variables
-- Every area variable still at its reference placeholder, for `broadcaster check`.
SELECT v.departement, d.name AS departement_label, v.name, v.value
FROM area_variables v JOIN departements d ON d.code = v.departement
WHERE v.placeholder
ORDER BY v.name, v.departement;

-- name: accept_placeholders_for_rehearsal
-- A rehearsal database (the demo's, the load tests', the test suite's) takes the reference
-- placeholders as its values. Never on a database that reaches the public.
UPDATE area_variables SET placeholder = false WHERE placeholder;

-- name: departement_populations
SELECT code, population FROM departements ORDER BY code;

-- name: subscriber_counts_by_departement
-- Subscribers per département (all, and in the test group), for `broadcaster areas`.
SELECT d.code, d.name, d.region_code, r.name AS region_name,
       coalesce(sum(c.n), 0)::bigint AS subscribers,
       coalesce(sum(c.n) FILTER (WHERE c.test_group), 0)::bigint AS test_group
FROM departements d
JOIN regions r ON r.code = d.region_code
LEFT JOIN subscriber_counts c ON c.kind = 'departement' AND c.departement = d.code
GROUP BY d.code, d.name, d.region_code, r.name
ORDER BY d.code;

-- name: subscriber_counts_by_region
SELECT r.code, r.name, count(DISTINCT d.code)::int AS departements,
       coalesce(sum(c.n), 0)::bigint AS subscribers,
       coalesce(sum(c.n) FILTER (WHERE c.test_group), 0)::bigint AS test_group
FROM regions r
JOIN departements d ON d.region_code = r.code
LEFT JOIN subscriber_counts c ON c.kind = 'departement' AND c.departement = d.code
GROUP BY r.code, r.name
ORDER BY r.code;

-- name: subscriber_counts_in_departement
-- The communes and cells of département $1 that have subscribers, with their counts.
SELECT kind, area, sum(n)::bigint AS subscribers,
       (sum(n) FILTER (WHERE test_group))::bigint AS test_group
FROM subscriber_counts
WHERE departement = $1 AND kind IN ('commune', 'cell')
GROUP BY kind, area
HAVING sum(n) > 0
ORDER BY kind DESC, area;

-- name: list_area_variables
-- Every variable of départements $1 (NULL: all), with when it last changed.
SELECT v.departement, d.name AS departement_label, v.name, v.value, v.placeholder, v.updated_at
FROM area_variables v JOIN departements d ON d.code = v.departement
WHERE $1::text[] IS NULL OR v.departement = ANY($1::text[])
ORDER BY v.departement, v.name;

-- name: area_variable_names
SELECT DISTINCT name FROM area_variables ORDER BY name;

-- name: lock_area_variable
-- The current value and placeholder mark (no row if none), locked until the change is recorded.
SELECT value, placeholder FROM area_variables WHERE departement = $1 AND name = $2 FOR UPDATE;

-- name: upsert_area_variable
-- A value a person set: never a placeholder.
INSERT INTO area_variables (departement, name, value, placeholder, updated_at)
VALUES ($1, $2, $3, false, now())
ON CONFLICT (departement, name)
DO UPDATE SET value = excluded.value, placeholder = false, updated_at = now();

-- name: area_variable_history
-- The recorded changes of départements' variables ($1 text[], NULL: all), newest first.
SELECT id, at, actor, subject, details
FROM audit_log
WHERE action = 'area_variable_set'
  AND ($1::text[] IS NULL OR details ->> 'departement' = ANY($1::text[]))
ORDER BY id DESC
LIMIT $2;
