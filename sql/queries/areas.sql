-- name: list_departements
-- Every département with its region, for targeting.
SELECT d.code, d.name, d.region_code, d.default_language, r.name AS region_name
FROM departements d JOIN regions r ON r.code = d.region_code
ORDER BY d.code;

-- name: area_variables
-- Variables of the given départements ($1 text[]).
SELECT departement, name, value FROM area_variables WHERE departement = ANY($1::text[]);

-- name: departement_populations
SELECT code, population FROM departements ORDER BY code;

-- name: subscriber_counts_by_departement
-- Subscribers per département (all, and in the test group), for `broadcaster areas`.
SELECT d.code, d.name, d.region_code,
       count(s.msisdn)::bigint AS subscribers,
       count(s.msisdn) FILTER (WHERE s.test_group)::bigint AS test_group
FROM departements d LEFT JOIN subscribers s ON s.departement = d.code
GROUP BY d.code, d.name, d.region_code
ORDER BY d.code;
