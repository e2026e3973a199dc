-- A matched receipt keeps the département it was counted under (issue 22): the process that
-- sent the part knows its recipient's home as the chunk read it and matches nearly every receipt
-- in memory, with no lookup; the database path looks the home up. Counted from the receipt row,
-- the per-area roll-up and its recount (sql/queries/rollups.sql) agree even when a subscriber
-- import moved the recipient between the send and the receipt ('': a number no longer in the
-- index). NULL on receipts that name no part, and on those recorded before (or by a worker
-- still running the code before) this migration: the recounts read today's home for them.
-- No backfill: rewriting every receipt would hold this table's lock for as long as it took,
-- and every process migrates when it starts (a send waiting on it during an emergency).
ALTER TABLE receipts ADD COLUMN departement text;
