-- The national subscriber index at 10M rows: byte-wise text keys, maintained counts per area,
-- and the cell and exclusion parts of a broadcast's work chunks.

-- Area codes and languages compare byte-wise ("C"): index builds and sorts are several times
-- faster than under a linguistic collation, and the key order is the same on every server.
ALTER TABLE subscribers
    ALTER COLUMN departement TYPE text COLLATE "C",
    ALTER COLUMN commune TYPE text COLLATE "C",
    ALTER COLUMN cell_id TYPE text COLLATE "C",
    ALTER COLUMN lang TYPE text COLLATE "C";

-- Commune targets are counted from subscriber_counts and streamed inside their département's
-- key range (the covering index), so this index only slowed every import down.
DROP INDEX subscribers_by_commune;

-- Subscribers per area, language and test-group flag, kept exact by the triggers below (and
-- rebuilt by bulk loads, which disable them): any target is counted from here in milliseconds.
-- kind 'departement' has area '' (the whole département); 'commune' the INSEE code; 'cell' the
-- cell id (a cell may serve several départements: one row per département). Rows may reach n = 0.
CREATE TABLE subscriber_counts (
    kind        text NOT NULL CHECK (kind IN ('departement', 'commune', 'cell')),
    departement text COLLATE "C" NOT NULL,
    area        text COLLATE "C" NOT NULL,
    lang        text COLLATE "C" NOT NULL,
    test_group  boolean NOT NULL,
    n           bigint NOT NULL,
    PRIMARY KEY (kind, departement, area, lang, test_group)
);
-- Which départements a cell (or commune) has subscribers in.
CREATE INDEX subscriber_counts_by_area ON subscriber_counts (kind, area) WHERE n > 0;

-- Adds the net change of one statement to the counts. Keys are updated in key order, so that
-- concurrent writers queue instead of deadlocking.
CREATE FUNCTION subscriber_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO subscriber_counts AS c (kind, departement, area, lang, test_group, n)
        SELECT a.kind, r.departement, a.area, r.lang, r.test_group, count(*)
        FROM new_rows r
        CROSS JOIN LATERAL (VALUES ('departement', ''), ('commune', r.commune),
                                   ('cell', r.cell_id)) AS a (kind, area)
        WHERE a.area IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5
        ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT (kind, departement, area, lang, test_group) DO UPDATE SET n = c.n + excluded.n;
    ELSIF TG_OP = 'UPDATE' THEN
        INSERT INTO subscriber_counts AS c (kind, departement, area, lang, test_group, n)
        SELECT a.kind, r.departement, a.area, r.lang, r.test_group, sum(r.delta)
        FROM (
            SELECT departement, commune, cell_id, lang, test_group, -1 AS delta FROM old_rows
            UNION ALL
            SELECT departement, commune, cell_id, lang, test_group, 1 AS delta FROM new_rows
        ) r
        CROSS JOIN LATERAL (VALUES ('departement', ''), ('commune', r.commune),
                                   ('cell', r.cell_id)) AS a (kind, area)
        WHERE a.area IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5
        HAVING sum(r.delta) <> 0
        ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT (kind, departement, area, lang, test_group) DO UPDATE SET n = c.n + excluded.n;
    ELSE
        INSERT INTO subscriber_counts AS c (kind, departement, area, lang, test_group, n)
        SELECT a.kind, r.departement, a.area, r.lang, r.test_group, -count(*)
        FROM old_rows r
        CROSS JOIN LATERAL (VALUES ('departement', ''), ('commune', r.commune),
                                   ('cell', r.cell_id)) AS a (kind, area)
        WHERE a.area IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5
        ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT (kind, departement, area, lang, test_group) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END;
$$;

CREATE FUNCTION subscriber_counts_clear() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM subscriber_counts;
    RETURN NULL;
END;
$$;

CREATE TRIGGER subscribers_count_inserts AFTER INSERT ON subscribers
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION subscriber_counts_apply();
CREATE TRIGGER subscribers_count_updates AFTER UPDATE ON subscribers
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION subscriber_counts_apply();
CREATE TRIGGER subscribers_count_deletes AFTER DELETE ON subscribers
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION subscriber_counts_apply();
CREATE TRIGGER subscribers_count_truncates AFTER TRUNCATE ON subscribers
    FOR EACH STATEMENT EXECUTE FUNCTION subscriber_counts_clear();

INSERT INTO subscriber_counts (kind, departement, area, lang, test_group, n)
SELECT a.kind, s.departement, a.area, s.lang, s.test_group, count(*)
FROM subscribers s
CROSS JOIN LATERAL (VALUES ('departement', ''), ('commune', s.commune), ('cell', s.cell_id))
    AS a (kind, area)
WHERE a.area IS NOT NULL
GROUP BY 1, 2, 3, 4, 5;

-- A chunk's selection within its département: `communes` NULL is the whole département;
-- otherwise the subscribers of those communes or of `cells`. Then, in both cases, minus the
-- subscribers of `exclude_communes` or `exclude_cells` (NULL: none).
ALTER TABLE broadcast_chunks
    ADD COLUMN cells text[],
    ADD COLUMN exclude_communes text[],
    ADD COLUMN exclude_cells text[];
