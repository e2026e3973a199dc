-- A receipt's stat that says its part did not reach the handset has one home in SQL, this
-- function, as it has one in Python (smpp/receipts.py UNDELIVERED_STATS: every final stat but
-- DELIVRD; a test holds the two equal). The after-action report's statements wrote the list
-- seven times, and left ACCEPTD (final: accepted on the subscriber's behalf by customer
-- service, never shown on the phone) out: such parts read as still awaiting a receipt.
-- A plain SQL expression: inlined where it is called.
CREATE FUNCTION receipt_undelivered(stat text) RETURNS boolean
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT stat IN ('UNDELIV', 'EXPIRED', 'REJECTD', 'DELETED', 'UNKNOWN', 'ACCEPTD') $$;
