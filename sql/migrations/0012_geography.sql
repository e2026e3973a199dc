-- Geography (issue 23): PostGIS, radio cells with their coverage, where people were last seen
-- (home subscribers and inbound visitors), and the present-mode parts of a broadcast's chunks.

-- PostGIS is the geometry engine; nothing else gives the same answers, so there is no fallback.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'postgis') THEN
        RAISE EXCEPTION 'PostGIS is not installed on this PostgreSQL server (major version %): '
            'install Debian''s postgresql-%-postgis-3 (`make test` and `make demo` do it: '
            'apt-get install postgresql-%-postgis-3), then run `broadcaster db migrate` again',
            current_setting('server_version_num')::int / 10000,
            current_setting('server_version_num')::int / 10000,
            current_setting('server_version_num')::int / 10000;
    END IF;
END
$$;
CREATE EXTENSION IF NOT EXISTS postgis;

-- Département outlines (IGN Admin Express, Licence Ouverte, via france-geojson), loaded from
-- the package's vendored GeoJSON the first time cells are imported or synthesised: they give
-- each cell its département (whose texts and fallback numbers its present subscribers get).
CREATE TABLE departement_shapes (
    code  text COLLATE "C" PRIMARY KEY REFERENCES departements (code),
    geom  geometry(MultiPolygon, 4326) NOT NULL
);
CREATE INDEX departement_shapes_geom ON departement_shapes USING gist (geom);

-- One row per antenna sector. Coverage is given (WKT/GeoJSON) or computed from the sector's
-- parameters (`sector_coverage`). departement: where the site stands.
CREATE TABLE cells (
    cell_id     text COLLATE "C" PRIMARY KEY CHECK (cell_id ~ '^[A-Za-z0-9._:-]{1,32}$'),
    technology  text NOT NULL CHECK (technology IN ('2G', '3G', '4G', '5G')),
    lat         double precision NOT NULL CHECK (lat BETWEEN -90 AND 90),
    lon         double precision NOT NULL CHECK (lon BETWEEN -180 AND 180),
    azimuth     double precision CHECK (azimuth >= 0 AND azimuth < 360),
    beam        double precision CHECK (beam > 0 AND beam <= 360),
    range_m     double precision CHECK (range_m > 0 AND range_m <= 100000),
    departement text COLLATE "C" NOT NULL REFERENCES departements (code),
    coverage    geometry(Polygon, 4326) NOT NULL CHECK (ST_IsValid(coverage)),
    -- Geodesic area of the coverage, once (previews weigh overspill by it).
    area_m2     double precision GENERATED ALWAYS AS (ST_Area(coverage::geography)) STORED,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX cells_coverage ON cells USING gist (coverage);
CREATE INDEX cells_by_departement ON cells (departement, cell_id);

-- A sector's coverage: the site, then the arc of `range_m` metres from azimuth - beam/2 to
-- azimuth + beam/2 (geodesic, ST_Project), closed back at the site; a full circle when the beam
-- is 360 (an omnidirectional cell).
CREATE FUNCTION sector_coverage(
    lat double precision, lon double precision, azimuth double precision,
    beam double precision, range_m double precision
) RETURNS geometry LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN beam >= 360 THEN
            ST_Buffer(ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography, range_m, 16)::geometry
        ELSE ST_MakePolygon(ST_MakeLine(ARRAY(
            SELECT ST_SetSRID(ST_MakePoint(lon, lat), 4326)
            UNION ALL
            (SELECT ST_Project(ST_SetSRID(ST_MakePoint(lon, lat), 4326)::geography, range_m,
                               radians(azimuth - beam / 2 + beam * i / 12.0))::geometry
             FROM generate_series(0, 12) AS i ORDER BY i)
            UNION ALL
            SELECT ST_SetSRID(ST_MakePoint(lon, lat), 4326))))
    END
$$;

-- Where each number was last seen: home subscribers and inbound visitors (numbers the home index
-- does not know). Kept apart from `subscribers` so that the high-rate location updates touch
-- neither the national index nor its maintained counts. lang and test_group are copied from the
-- subscriber (visitors: lang from their country, never in the test group) at each update.
CREATE TABLE locations (
    msisdn      bigint PRIMARY KEY CHECK (msisdn BETWEEN 10000000 AND 999999999999999),
    cell_id     text COLLATE "C" NOT NULL,
    seen_at     timestamptz NOT NULL,
    lang        text COLLATE "C" NOT NULL CHECK (lang ~ '^[a-z]{2}$'),
    test_group  boolean NOT NULL DEFAULT false,
    -- A visitor's SIM country (ISO 3166, 'ZZ' unknown); NULL for a home subscriber.
    country     text COLLATE "C" CHECK (country ~ '^[A-Z]{2}$')
) WITH (fillfactor = 90);
-- Present-mode selection: the numbers in a set of cells, seen since a time, index-only.
CREATE INDEX locations_by_cell ON locations (cell_id, seen_at)
    INCLUDE (msisdn, lang, test_group, country);

-- The language a visitor gets from their SIM's country (a broadcast may override it).
CREATE TABLE country_languages (
    country text COLLATE "C" PRIMARY KEY CHECK (country ~ '^[A-Z]{2}$'),
    lang    text COLLATE "C" NOT NULL CHECK (lang ~ '^[a-z]{2}$')
);
INSERT INTO country_languages (country, lang) VALUES
    ('FR', 'fr'), ('BE', 'fr'), ('LU', 'fr'), ('MC', 'fr'), ('CH', 'fr'), ('CA', 'en'),
    ('GB', 'en'), ('IE', 'en'), ('US', 'en'), ('AU', 'en'), ('NZ', 'en'), ('IN', 'en'),
    ('DE', 'de'), ('AT', 'de'), ('LI', 'de'),
    ('ES', 'es'), ('MX', 'es'), ('AR', 'es'), ('CO', 'es'), ('CL', 'es'),
    ('IT', 'it'), ('SM', 'it'), ('PT', 'pt'), ('BR', 'pt'), ('NL', 'nl'),
    ('PL', 'pl'), ('RO', 'ro'), ('GR', 'el'), ('SE', 'sv'), ('NO', 'no'), ('DK', 'da'),
    ('FI', 'fi'), ('CZ', 'cs'), ('HU', 'hu'), ('RU', 'ru'), ('UA', 'uk'), ('TR', 'tr'),
    ('CN', 'zh'), ('JP', 'ja'), ('KR', 'ko'), ('MA', 'ar'), ('DZ', 'ar'), ('TN', 'ar');

-- The numbers a broadcast reaches because they are present: taken from `locations` when the
-- broadcast is created (what its preview counted: seen within the window in its cells), each
-- with the département of their cell and their language (a visitor's as the broadcast
-- overrides it). One row per number (a number has one location): nobody gets two present texts,
-- and a resident chunk of the same broadcast leaves these numbers out. Streamed by range like
-- the subscriber index. Written in key order with one index and no foreign key (like
-- deliveries): 100k rows cost a few hundred milliseconds when the broadcast is created.
CREATE TABLE broadcast_present (
    broadcast_id bigint NOT NULL,
    departement  text COLLATE "C" NOT NULL,
    msisdn       bigint NOT NULL,
    lang         text COLLATE "C" NOT NULL,
    test_group   boolean NOT NULL
);
CREATE INDEX broadcast_present_by_departement
    ON broadcast_present (broadcast_id, departement, msisdn) INCLUDE (lang, test_group);

-- Present-mode chunks (source 'present') stream a msisdn range of one département's
-- broadcast_present rows; `present_cells` and `present_window` say where they came from. A
-- resident chunk ('home') with `present_departements` set belongs to a broadcast that also
-- reaches the present (in those départements): it leaves out the numbers in broadcast_present
-- (one message per MSISDN).
ALTER TABLE broadcast_chunks
    ADD COLUMN source text NOT NULL DEFAULT 'home' CHECK (source IN ('home', 'present')),
    ADD COLUMN present_cells text[],
    ADD COLUMN present_window interval,
    ADD COLUMN present_departements text[];
