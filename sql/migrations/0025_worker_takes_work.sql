-- A one-shot `send` says it is alive too, with the binds it receives receipts on: while it ran,
-- `status` said "no process is bound to receive them" of the receipts it was receiving. It takes
-- no other broadcast, so it does not count as a worker a waiting broadcast can count on
-- (`workers_alive`): `takes_work` false.
ALTER TABLE workers ADD COLUMN takes_work boolean NOT NULL DEFAULT true;
