-- Queries about the database itself (health checks, `broadcaster check`).

-- name: schema_version
-- The highest migration applied, NULL on a database that was never migrated.
SELECT max(version) AS version FROM schema_migrations;

-- name: server_version
-- The server's version number, e.g. 150019 for 15.19.
SELECT current_setting('server_version_num')::integer AS version;

-- name: ping
-- The database answers (readiness probes).
SELECT 1;
