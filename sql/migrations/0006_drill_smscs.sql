-- The SMSCs configured when a drill run started: the report gives each of them a row and fails
-- a drill in which one of them carried no part (an SMSC refusing binds must not go unnoticed
-- because the others carried everything). NULL: not recorded (runs from before this column,
-- missed or not started runs); the report then knows only the SMSCs that carried parts.
ALTER TABLE drill_runs ADD COLUMN smscs text[];
