-- Receipts at speed (issue 22): the index on receipts (smsc, message_id) of 0001 served matching
-- at read time; receipts are matched when recorded (0013) and nothing reads them by message id
-- any more, while every receipt recorded paid for its entry (a random key in a text B-tree).
DROP INDEX IF EXISTS receipts_by_message;
