-- Workers say they are alive (every few seconds), so that a status can tell the truth: an
-- approved broadcast with no live worker is waiting for one, and says so.
CREATE TABLE workers (
    name        text PRIMARY KEY,          -- host:pid, as it signs its chunk leases
    started_at  timestamptz NOT NULL DEFAULT now(),
    seen_at     timestamptz NOT NULL DEFAULT now(),
    running     bigint[] NOT NULL DEFAULT '{}'  -- the broadcasts it is sending now
);
