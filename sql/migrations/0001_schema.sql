-- Core schema: areas, subscribers, broadcasts and their append-only outcomes.
-- Applied by `broadcaster db migrate`; recorded in schema_migrations.

CREATE TABLE regions (
    code        text PRIMARY KEY,            -- INSEE region code, e.g. '11' (Île-de-France)
    name        text NOT NULL
);

CREATE TABLE departements (
    code             text PRIMARY KEY,       -- '75', '2A', '971'
    name             text NOT NULL,
    region_code      text NOT NULL REFERENCES regions (code),
    population       integer NOT NULL CHECK (population > 0),
    default_language text NOT NULL DEFAULT 'fr'
);

-- Per-area template variables (each département's fallback numbers, prefecture name...).
CREATE TABLE area_variables (
    departement text NOT NULL REFERENCES departements (code),
    name        text NOT NULL CHECK (name ~ '^[a-z][a-z0-9_]*$'),
    value       text NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (departement, name)
);

-- The subscriber index. MSISDN in international form without '+', stored as bigint:
-- E.164 has at most 15 digits and never a leading zero, and integer keys make keyset scans cheap.
CREATE TABLE subscribers (
    msisdn      bigint PRIMARY KEY CHECK (msisdn BETWEEN 10000000 AND 999999999999999),
    departement text NOT NULL REFERENCES departements (code),
    commune     text CHECK (commune ~ '^[0-9][0-9AB][0-9]{3}$'),
    cell_id     text,
    lang        text NOT NULL CHECK (lang ~ '^[a-z]{2}$'),
    test_group  boolean NOT NULL DEFAULT false,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
-- Covering index for département targets: an index-only scan streams (msisdn, lang) in order.
CREATE INDEX subscribers_by_departement
    ON subscribers (departement, msisdn) INCLUDE (lang, test_group);
CREATE INDEX subscribers_by_commune ON subscribers (commune) WHERE commune IS NOT NULL;

CREATE TABLE broadcasts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text NOT NULL CHECK (kind IN ('live', 'drill')),
    state         text NOT NULL CHECK (state IN ('draft', 'pending_approval', 'approved',
                      'running', 'paused', 'completed', 'cancelled', 'expired', 'failed')),
    template      text NOT NULL,
    variables     jsonb NOT NULL DEFAULT '{}',
    target        jsonb NOT NULL,            -- the normalised target, as planned
    language_map  jsonb NOT NULL DEFAULT '{}', -- "dep|subscriber lang" -> group_no
    priority      integer NOT NULL DEFAULT 0,
    recipients    integer NOT NULL DEFAULT 0,
    parts         integer NOT NULL DEFAULT 0,
    created_by    text NOT NULL DEFAULT 'cli',
    approved_by   text,
    parent_id     bigint REFERENCES broadcasts (id),  -- the broadcast an update/all-clear follows
    reached_only  boolean NOT NULL DEFAULT false,     -- only recipients the parent reached
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    expires_at    timestamptz NOT NULL
);

CREATE INDEX broadcasts_runnable ON broadcasts (priority DESC, id)
    WHERE state IN ('approved', 'running');

-- One rendered, encoded text per (département, language) group, fixed at planning time so that
-- a resumed or scaled-out run sends exactly the text that was previewed.
CREATE TABLE broadcast_groups (
    broadcast_id bigint NOT NULL REFERENCES broadcasts (id) ON DELETE CASCADE,
    group_no     integer NOT NULL,
    departement  text NOT NULL,
    lang         text NOT NULL,
    body         text NOT NULL,
    encoding     text NOT NULL CHECK (encoding IN ('gsm7', 'ucs2')),
    parts        integer NOT NULL,
    recipients   integer NOT NULL,
    PRIMARY KEY (broadcast_id, group_no),
    UNIQUE (broadcast_id, departement, lang)
);

-- Work units: an msisdn range of one département, leased by one engine at a time.
CREATE TABLE broadcast_chunks (
    broadcast_id  bigint NOT NULL REFERENCES broadcasts (id) ON DELETE CASCADE,
    chunk_no      integer NOT NULL,
    departement   text NOT NULL,
    communes      text[],                    -- NULL: the whole département
    msisdn_from   bigint NOT NULL,           -- inclusive
    msisdn_to     bigint NOT NULL,           -- inclusive
    done          boolean NOT NULL DEFAULT false,
    claims        integer NOT NULL DEFAULT 0,  -- >1: claimed before, may hold recorded parts
    leased_by     text,
    lease_until   timestamptz,
    PRIMARY KEY (broadcast_id, chunk_no)
);
CREATE INDEX broadcast_chunks_todo ON broadcast_chunks (broadcast_id, chunk_no) WHERE NOT done;

-- Append-only outcome of each submitted part (written with COPY, never updated).
-- status: the SMPP command_status of submit_sm_resp (0 = accepted); -1 = no response (timeout,
-- disconnect) after all retries; message_id is a string, never parsed as a number.
CREATE TABLE deliveries (
    broadcast_id bigint NOT NULL,
    msisdn       bigint NOT NULL,
    part         smallint NOT NULL,
    parts        smallint NOT NULL,
    status       integer NOT NULL,
    message_id   text,
    smsc         text NOT NULL,
    submitted_at timestamptz NOT NULL,
    answered_at  timestamptz NOT NULL
);
CREATE INDEX deliveries_by_broadcast ON deliveries (broadcast_id, msisdn);

-- Append-only delivery receipts, matched to deliveries by (smsc, message_id).
CREATE TABLE receipts (
    smsc        text NOT NULL,
    message_id  text NOT NULL,
    stat        text NOT NULL,
    err         text,
    done_at     timestamptz,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX receipts_by_message ON receipts (smsc, message_id);

CREATE TABLE audit_log (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at         timestamptz NOT NULL DEFAULT now(),
    actor      text NOT NULL,
    action     text NOT NULL,
    subject    text,
    details    jsonb NOT NULL DEFAULT '{}'
);
