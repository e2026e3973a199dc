-- Each outcome keeps the group its part was sent in (broadcast_groups.group_no: the area and the
-- text's language), as the sending process knew it: the after-action report counts per area and
-- per language from it, the same a month later, after subscriber imports moved recipients or
-- removed their numbers (it read today's home and language, and dropped numbers no longer in
-- the index). NULL on outcomes recorded before (or by a worker still running the code before)
-- this migration: the report reads today's home for them, as it did.
-- No backfill: rewriting every outcome would hold this table's lock for as long as it took,
-- and every process migrates when it starts (a send waiting on it during an emergency).
ALTER TABLE deliveries ADD COLUMN group_no integer;
