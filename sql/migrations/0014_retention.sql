-- Retention (issue 25): outcomes and receipts partitioned by month, so old data leaves by dropping
-- a partition (no DELETE of millions of rows, no bloat, no vacuum debt); the audit log append-only
-- for the service's database role.
--
-- Why by month on submitted_at / received_at, not by broadcast: retention is a matter of age, and
-- a month is the unit a data-protection policy speaks in; a few dozen partitions keep planning
-- cheap, while one per broadcast (drills every week, test sends) would be thousands, each created
-- by DDL on the path of creating a broadcast, and unmatched receipts have no broadcast at all.
-- A broadcast that spans a month's end has outcomes in two partitions; a purge drops a partition
-- only when its whole month is older than the retention and no unfinished broadcast has a row
-- in it. Months are UTC months. A DEFAULT partition catches rows of a month whose partition was
-- not created in time (never lost); `retention_ensure_partitions` moves them out when it creates
-- that month, and is run by this migration, by `broadcaster db purge` and by serve's scheduler.

-- Each table is rebuilt partitioned with the columns, defaults, checks and indexes it has now
-- (whatever earlier migrations gave it), then its rows are copied in below.
CREATE FUNCTION pg_temp.partition_by_month(tbl text, col text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    definitions text[];
    definition text;
    old_index text;
BEGIN
    SELECT array_agg(indexdef ORDER BY indexname) INTO definitions
    FROM pg_indexes WHERE schemaname = 'public' AND tablename = tbl;
    FOR old_index IN SELECT indexname FROM pg_indexes
                     WHERE schemaname = 'public' AND tablename = tbl LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', old_index, left('b0014_' || old_index, 63));
    END LOOP;
    EXECUTE format('ALTER TABLE %I RENAME TO %I', tbl, tbl || '_before_0014');
    EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS '
                   'INCLUDING GENERATED INCLUDING STORAGE INCLUDING COMMENTS) '
                   'PARTITION BY RANGE (%I)', tbl, tbl || '_before_0014', col);
    FOREACH definition IN ARRAY coalesce(definitions, '{}') LOOP
        EXECUTE definition;  -- `CREATE INDEX name ON public.tbl ...`: now the partitioned table
    END LOOP;
    EXECUTE format('CREATE TABLE %I PARTITION OF %I DEFAULT', tbl || '_default', tbl);
END
$$;
SELECT pg_temp.partition_by_month('deliveries', 'submitted_at');
SELECT pg_temp.partition_by_month('receipts', 'received_at');

-- The month partitions from `since` (or the oldest row in DEFAULT) to `months_ahead` months
-- after the current one, for both tables; rows of those months in DEFAULT are moved in.
-- Returns the number created. SECURITY DEFINER: the service's role may run it, owning no table.
CREATE FUNCTION retention_ensure_partitions(since timestamptz, months_ahead integer)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    parent text;
    col text;
    month timestamp;
    last timestamp := date_trunc('month', now() AT TIME ZONE 'UTC')
                      + make_interval(months => months_ahead);
    lo timestamptz;
    hi timestamptz;
    part text;
    made integer := 0;
    oldest timestamptz;
    waiting boolean;
BEGIN
    FOR parent, col IN VALUES ('deliveries', 'submitted_at'), ('receipts', 'received_at') LOOP
        -- From `since`, or earlier if older rows wait in DEFAULT (written while no one made
        -- their month's partition): they get theirs, and leave with it.
        EXECUTE format('SELECT min(%I) FROM %I', col, parent || '_default') INTO oldest;
        month := date_trunc('month', least(since, oldest, now()) AT TIME ZONE 'UTC');
        WHILE month <= last LOOP
            part := format('%s_%s', parent, to_char(month, 'YYYY_MM'));
            lo := month AT TIME ZONE 'UTC';
            hi := (month + interval '1 month') AT TIME ZONE 'UTC';
            waiting := false;
            IF hi <= since THEN  -- a month before `since`: made only for rows waiting in DEFAULT
                EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I WHERE %I >= $1 AND %I < $2)',
                               parent || '_default', col, col) INTO waiting USING lo, hi;
            END IF;
            IF to_regclass(part) IS NULL AND (hi > since OR waiting) THEN
                EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                               part, parent);
                -- Writers of rows that would land in DEFAULT wait the few milliseconds this
                -- takes (ATTACH needs that lock anyway): none slips in between move and attach.
                EXECUTE format('LOCK TABLE %I IN ACCESS EXCLUSIVE MODE', parent || '_default');
                EXECUTE format('WITH moved AS (DELETE FROM %I WHERE %I >= $1 AND %I < $2 '
                               'RETURNING *) INSERT INTO %I SELECT * FROM moved',
                               parent || '_default', col, col, part) USING lo, hi;
                EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                               parent, part, lo, hi);
                made := made + 1;
            END IF;
            month := month + interval '1 month';
        END LOOP;
    END LOOP;
    RETURN made;
END
$$;

SELECT retention_ensure_partitions(
    least((SELECT min(submitted_at) FROM deliveries_before_0014),
          (SELECT min(received_at) FROM receipts_before_0014), now()),
    2);
INSERT INTO deliveries SELECT * FROM deliveries_before_0014;
INSERT INTO receipts SELECT * FROM receipts_before_0014;
DROP TABLE deliveries_before_0014;
DROP TABLE receipts_before_0014;

-- The month partitions of `parent` ('deliveries' or 'receipts'), oldest first, with their upper
-- bound (partitions are named parent_YYYY_MM), whether an unfinished broadcast (in a state of
-- `active`) has a row in it, and their rows when the month ended before `cutoff` (else NULL).
CREATE FUNCTION retention_partitions(parent text, active text[], cutoff timestamptz)
RETURNS TABLE (partition_name text, upper_bound timestamptz, holds_active boolean,
               row_count bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    part text;
BEGIN
    IF parent NOT IN ('deliveries', 'receipts') THEN
        RAISE EXCEPTION 'retention_partitions: % is not a partitioned outcome table', parent;
    END IF;
    FOR part IN
        SELECT c.relname FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = parent::regclass AND c.relname ~ ('^' || parent || '_[0-9]{4}_[0-9]{2}$')
        ORDER BY c.relname
    LOOP
        partition_name := part;
        upper_bound := (to_date(right(part, 7), 'YYYY_MM') + interval '1 month')::timestamp
                       AT TIME ZONE 'UTC';
        EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I x JOIN broadcasts b ON b.id = x.broadcast_id '
                       'WHERE b.state = ANY($1))', part)
            INTO holds_active USING active;
        row_count := NULL;
        IF upper_bound <= cutoff THEN
            EXECUTE format('SELECT count(*) FROM %I', part) INTO row_count;
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;

-- Drop one month partition of `parent` whose whole month ends before `cutoff`, unless an
-- unfinished broadcast has a row in it (checked again here, under lock). Returns the rows
-- dropped, or NULL when it refused. The service's role may call it; it owns no table.
CREATE FUNCTION retention_drop_partition(parent text, part text, cutoff timestamptz, active text[])
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    upper_bound timestamptz;
    rows_dropped bigint;
    busy boolean;
BEGIN
    IF parent NOT IN ('deliveries', 'receipts') OR part !~ ('^' || parent || '_[0-9]{4}_[0-9]{2}$')
       OR NOT EXISTS (SELECT 1 FROM pg_inherits
                      WHERE inhparent = parent::regclass AND inhrelid = to_regclass(part)) THEN
        RAISE EXCEPTION 'retention_drop_partition: % is not a month partition of %', part, parent;
    END IF;
    upper_bound := (to_date(right(part, 7), 'YYYY_MM') + interval '1 month')::timestamp
                   AT TIME ZONE 'UTC';
    IF upper_bound > cutoff THEN
        RETURN NULL;
    END IF;
    EXECUTE format('LOCK TABLE %I IN SHARE MODE', part);
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM %I x JOIN broadcasts b ON b.id = x.broadcast_id '
                   'WHERE b.state = ANY($1))', part) INTO busy USING active;
    IF busy THEN
        RETURN NULL;
    END IF;
    EXECUTE format('SELECT count(*) FROM %I', part) INTO rows_dropped;
    EXECUTE format('ALTER TABLE %I DETACH PARTITION %I', parent, part);
    EXECUTE format('DROP TABLE %I', part);
    RETURN rows_dropped;
END
$$;

-- The report of a finished broadcast, saved by the purge before its outcomes leave: `status` and
-- `report` read it once the outcomes are gone (the after-action record stays).
CREATE TABLE broadcast_reports (
    broadcast_id bigint PRIMARY KEY REFERENCES broadcasts (id) ON DELETE CASCADE,
    report       jsonb NOT NULL,
    saved_at     timestamptz NOT NULL DEFAULT now()
);

-- The broadcasts with outcomes in a month partition of deliveries (whose reports a purge saves).
CREATE FUNCTION retention_partition_broadcasts(part text)
RETURNS SETOF bigint LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = public, pg_temp
AS $$
BEGIN
    IF part !~ '^deliveries_[0-9]{4}_[0-9]{2}$' THEN
        RAISE EXCEPTION 'retention_partition_broadcasts: % is not a month of deliveries', part;
    END IF;
    RETURN QUERY EXECUTE format('SELECT DISTINCT broadcast_id FROM %I', part);
END
$$;

-- Delete audit entries older than `cutoff`, never younger than a year: the one way the service's
-- role can remove audit entries (it has no DELETE on audit_log).
CREATE FUNCTION retention_purge_audit(cutoff timestamptz)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    removed bigint;
BEGIN
    IF cutoff > now() - interval '365 days' THEN
        RAISE EXCEPTION 'the audit log is kept at least a year (cutoff %)', cutoff;
    END IF;
    DELETE FROM audit_log WHERE at < cutoff;
    GET DIAGNOSTICS removed = ROW_COUNT;
    RETURN removed;
END
$$;

-- The service's role: everything the API, the console, the workers and the scheduler do, but no
-- UPDATE, DELETE or TRUNCATE of the audit log. It cannot log in until a DBA gives it a password
-- (ALTER ROLE broadcaster_service LOGIN PASSWORD '...'); migrations run as the owner.
-- Created here when the migrating user may create roles; otherwise a DBA creates it first
-- (CREATE ROLE broadcaster_service) and the grants below follow when this runs.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'broadcaster_service')
       AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_user
                   AND (rolsuper OR rolcreaterole)) THEN
        BEGIN
            CREATE ROLE broadcaster_service NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- created meanwhile by a migration of another database of this server
        END;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'broadcaster_service') THEN
        EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO broadcaster_service',
                       current_database());
        GRANT USAGE ON SCHEMA public TO broadcaster_service;
        GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public
            TO broadcaster_service;
        GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO broadcaster_service;
        REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM broadcaster_service;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public
            GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON TABLES TO broadcaster_service;
        ALTER DEFAULT PRIVILEGES IN SCHEMA public
            GRANT USAGE, SELECT ON SEQUENCES TO broadcaster_service;
    ELSE
        RAISE NOTICE 'role broadcaster_service not created (no CREATEROLE): see README';
    END IF;
END
$$;
