-- Receipts matched to the submission they answer when they are recorded, not when read.
-- An SMSC may write in its receipts, in decimal, the id its submit_sm_resp gave in hex (or the
-- reverse), and may reuse ids after a restart: comparing (smsc, message_id) as text at read time
-- attributed receipts to other messages and counted some twice. Each receipt now names the part
-- it answers (broadcast_id, msisdn, part) or says why it names none (`match`).

-- The comparable form of a message id is ltrim(upper(id), '0'): upper case, no leading zeros
-- (domain/receipt_ids.py `normalise`). Built-in functions, not a SQL function: the index is
-- written for every accepted part, on the hot path.
CREATE INDEX deliveries_by_message_key ON deliveries (smsc, ltrim(upper(message_id), '0'))
    WHERE status = 0;

ALTER TABLE receipts
    ADD COLUMN text_message_id text,
    ADD COLUMN reported_msisdn text,
    ADD COLUMN broadcast_id bigint,
    ADD COLUMN msisdn bigint,
    ADD COLUMN part smallint,
    ADD COLUMN delay_s double precision,
    ADD COLUMN match text NOT NULL DEFAULT 'unmatched'
        CHECK (match IN ('matched', 'unmatched', 'ambiguous'));

-- Receipts recorded before this migration: matched as they were read until now.
UPDATE receipts r
SET broadcast_id = d.broadcast_id, msisdn = d.msisdn, part = d.part, match = 'matched',
    delay_s = extract(epoch FROM r.received_at - d.submitted_at)
FROM deliveries d
WHERE d.smsc = r.smsc AND d.message_id = r.message_id AND d.status = 0;

CREATE INDEX receipts_by_part ON receipts (broadcast_id, msisdn, part) WHERE match = 'matched';
CREATE INDEX receipts_unattributed ON receipts (received_at) WHERE match <> 'matched';
