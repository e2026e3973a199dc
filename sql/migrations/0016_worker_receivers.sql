-- Workers say, with their heartbeat, how many of their binds can receive receipts (transceivers,
-- receivers) and what is wrong with their SMSCs (an empty message_id...): `status` can then say
-- whether anyone is bound to receive the receipts still awaited, and `check` what an SMSC does.
ALTER TABLE workers
    ADD COLUMN receivers     integer NOT NULL DEFAULT 0,
    ADD COLUMN smsc_problems text[]  NOT NULL DEFAULT '{}';
