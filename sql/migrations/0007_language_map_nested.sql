-- A broadcast's language map as structured data: {"75": {"fr": 3, "en": 4}} (département ->
-- subscriber language -> group number) instead of {"75|fr": 3} strings split back by the engine.
UPDATE broadcasts b
SET language_map = coalesce((
    SELECT jsonb_object_agg(dep, langs)
    FROM (
        SELECT split_part(e.key, '|', 1) AS dep,
               jsonb_object_agg(split_part(e.key, '|', 2), e.value) AS langs
        FROM jsonb_each(b.language_map) AS e
        GROUP BY 1
    ) AS per_departement
), '{}'::jsonb)
WHERE EXISTS (SELECT 1 FROM jsonb_object_keys(b.language_map) AS k WHERE k LIKE '%|%');

COMMENT ON COLUMN broadcasts.language_map IS
    'département -> subscriber language -> group_no (the group whose text that language gets)';
