-- Reference placeholders: 0002 seeds every département's fallback_number with a FICTIONAL number
-- (ARCEP's range for fiction, 01 99 00 00 00 - 01 99 00 99 99) so that a demo or a drill never
-- calls a real line. Sent live, every outage text would tell the public to call a number nobody
-- answers. Such values are marked: `broadcaster check` fails and names their areas, a live send
-- whose texts carry one is refused, and `broadcaster areas set-var` clears the mark.
ALTER TABLE area_variables ADD COLUMN placeholder boolean NOT NULL DEFAULT false;

COMMENT ON COLUMN area_variables.placeholder IS
    'a reference value nobody has confirmed (a fictional fallback number): live sends refuse it';

-- Values still in the fiction range are placeholders, whoever set them: nobody answers them.
UPDATE area_variables
SET placeholder = true
WHERE name = 'fallback_number'
  AND regexp_replace(value, '[ .-]', '', 'g') ~ '^(0|\+33)19900[0-9]{4}$';
