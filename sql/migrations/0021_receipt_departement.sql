-- A matched receipt keeps the département it was counted under (issue 22): the process that
-- sent the part knows its recipient's home as the chunk read it and matches nearly every receipt
-- in memory, with no lookup; the database path looks the home up. Counted from the receipt row,
-- the per-area roll-up and its recount (sql/queries/rollups.sql) agree even when a subscriber
-- import moved the recipient between the send and the receipt ('': a number no longer in the
-- index). NULL on receipts that name no part.
ALTER TABLE receipts ADD COLUMN departement text;

UPDATE receipts r
SET departement = coalesce((SELECT s.departement FROM subscribers s WHERE s.msisdn = r.msisdn), '')
WHERE r.match = 'matched';
