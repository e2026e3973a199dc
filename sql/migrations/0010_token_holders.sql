-- Tokens belong to a named person (issue 19): the two-person rule compares holders, not tokens,
-- so a second token of the creator cannot approve. A token minted by an admin for someone else
-- waits (`pending`) until a second admin, a different person, activates it.

ALTER TABLE api_tokens ADD COLUMN holder text;
UPDATE api_tokens SET holder = name;  -- until now the name named the person
ALTER TABLE api_tokens
    ALTER COLUMN holder SET NOT NULL,
    ADD CONSTRAINT api_tokens_holder_shape CHECK (holder ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$'),
    ADD COLUMN pending boolean NOT NULL DEFAULT false,
    ADD COLUMN activated_by text,
    ADD COLUMN activated_at timestamptz;

CREATE INDEX api_tokens_by_holder ON api_tokens (lower(holder));
