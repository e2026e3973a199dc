-- Progress from maintained counters (issue 22): `status`, the console, the API and /metrics read
-- a handful of rows whatever the size of the broadcast, instead of scanning its outcomes.
-- Written in the same transaction as each outcome COPY (store/chunks.record_outcomes) and each
-- receipt batch (receipts.sql `receipts_match`); `rollup_recount` in rollups.sql recounts them
-- from the outcomes (the test compares both).

-- Parts per broadcast × SMSC × outcome (submit_sm_resp status; -1 no answer).
CREATE TABLE outcome_rollup (
    broadcast_id bigint NOT NULL,
    smsc         text NOT NULL,
    status       integer NOT NULL,
    parts        bigint NOT NULL,
    PRIMARY KEY (broadcast_id, smsc, status)
);

-- Per-recipient counts of a broadcast (as delivery_summary derives them from the outcomes).
CREATE TABLE recipient_rollup (
    broadcast_id bigint PRIMARY KEY,
    recorded     bigint NOT NULL DEFAULT 0,
    accepted     bigint NOT NULL DEFAULT 0,
    failed       bigint NOT NULL DEFAULT 0,
    duplicates   bigint NOT NULL DEFAULT 0
);

-- Parts with a matched receipt of each stat (a part reported twice with one stat counts once).
CREATE TABLE receipt_rollup (
    broadcast_id bigint NOT NULL,
    stat         text NOT NULL,
    parts        bigint NOT NULL,
    max_s        double precision,
    PRIMARY KEY (broadcast_id, stat)
);

-- Delay from submission to receipt, per stat, in buckets 10% wide (bucket b holds delays from
-- 0.01 s × 1.1^b): the percentiles of `status` without a sort of every receipt.
CREATE TABLE receipt_delays (
    broadcast_id bigint NOT NULL,
    stat         text NOT NULL,
    bucket       smallint NOT NULL,
    n            bigint NOT NULL,
    PRIMARY KEY (broadcast_id, stat, bucket)
);

-- What was recorded before this migration.
INSERT INTO outcome_rollup
SELECT broadcast_id, smsc, status, count(*) FROM deliveries GROUP BY 1, 2, 3;

INSERT INTO recipient_rollup
SELECT broadcast_id, count(*), count(*) FILTER (WHERE accepted_parts = parts),
       count(*) FILTER (WHERE failed_parts > 0), coalesce(sum(extra_rows), 0)
FROM (
    SELECT broadcast_id, msisdn, max(parts) AS parts,
           count(DISTINCT part) FILTER (WHERE status = 0) AS accepted_parts,
           count(*) FILTER (WHERE status <> 0) AS failed_parts,
           count(*) - count(DISTINCT part) AS extra_rows
    FROM deliveries GROUP BY broadcast_id, msisdn
) per_recipient
GROUP BY broadcast_id;

INSERT INTO receipt_rollup
SELECT broadcast_id, stat, count(*), max(delay_s)
FROM (SELECT DISTINCT ON (broadcast_id, msisdn, part, stat) broadcast_id, stat, delay_s
      FROM receipts WHERE match = 'matched'
      ORDER BY broadcast_id, msisdn, part, stat, received_at) first
GROUP BY 1, 2;

INSERT INTO receipt_delays
SELECT broadcast_id, stat,
       least(greatest(floor(ln(greatest(delay_s, 0.01) / 0.01) / ln(1.1)), 0), 200)::smallint,
       count(*)
FROM (SELECT DISTINCT ON (broadcast_id, msisdn, part, stat) broadcast_id, stat, delay_s
      FROM receipts WHERE match = 'matched'
      ORDER BY broadcast_id, msisdn, part, stat, received_at) first
GROUP BY 1, 2, 3;
