-- Each receipt keeps the number of the batch that stored it (issue 22). An SMSC may send a
-- receipt twice; the roll-ups count a part once per stat, with the first copy stored (of its
-- batch, the first received). The recounts (sql/queries/rollups.sql) took the first copy
-- received, another one when a copy received earlier was stored later (held by a worker until
-- its part was recorded, while another stored the SMSC's next copy): its own delay bucket and
-- perhaps another home. They now take the first batch's copy, as the roll-ups did. Batches are
-- stored one at a time (`receipts_lock`), numbered in that order (the column's default numbers
-- the rows a worker still running the code before this one stores, in their order; that code
-- takes no lock: copies it stores at the same time as another worker may still be counted twice,
-- until every worker runs this code). NULL: recorded before this migration, taken as stored
-- first (duplicates stored before it recount by their reception, as they did).
-- No backfill: every process migrates when it starts, and rewriting every receipt would hold
-- this table's lock for as long as it took.
CREATE SEQUENCE receipt_batches;
ALTER TABLE receipts ADD COLUMN batch bigint;
ALTER TABLE receipts ALTER COLUMN batch SET DEFAULT nextval('receipt_batches');
