-- Parts with a matched receipt of each stat per département of the recipient's home (as the
-- after-action report groups them): the console map colours each area by its delivered share
-- from these few rows, live, whatever the size of the broadcast (issue 24). Written with
-- receipt_rollup by the receipt matching (sql/queries/receipts.sql).
CREATE TABLE receipt_area_rollup (
    broadcast_id bigint NOT NULL,
    departement  text NOT NULL,
    stat         text NOT NULL,
    parts        bigint NOT NULL,
    PRIMARY KEY (broadcast_id, departement, stat)
);

-- What was recorded before this migration ('' for numbers no longer in the index).
INSERT INTO receipt_area_rollup
SELECT first.broadcast_id, coalesce(s.departement, ''), first.stat, count(*)
FROM (SELECT DISTINCT ON (broadcast_id, msisdn, part, stat) broadcast_id, msisdn, stat
      FROM receipts WHERE match = 'matched'
      ORDER BY broadcast_id, msisdn, part, stat, received_at) first
LEFT JOIN subscribers s ON s.msisdn = first.msisdn
GROUP BY 1, 2, 3;
