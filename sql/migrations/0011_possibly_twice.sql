-- Parts the SMSC may have received twice (issue 20): the pool counts each part it sends again
-- while its first copy may have been accepted (in flight on a lost connection, resent after a
-- response timeout); the engine adds them up here with each COPY of outcomes. The report shows
-- them, with the parts recorded twice, as "possibly sent twice" instead of a "0 duplicates"
-- read from the outcome rows alone.
ALTER TABLE broadcasts ADD COLUMN possibly_twice bigint NOT NULL DEFAULT 0;

COMMENT ON COLUMN broadcasts.possibly_twice IS
    'parts sent again while their first copy may have been accepted (counted by the SMPP pool)';
