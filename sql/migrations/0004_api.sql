-- The HTTP trigger: API tokens (stored hashed), idempotency keys, and where a broadcast came from
-- (which token, which request, which CAP alert) so that CAP Update/Cancel can find it again.

-- Bearer tokens. Only the SHA-256 of the token is stored, with a short prefix to recognise it
-- in listings; the token itself is shown once, when it is created.
CREATE TABLE api_tokens (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$'),
    role         text NOT NULL CHECK (role IN ('operator', 'approver', 'admin')),
    prefix       text NOT NULL,
    token_hash   text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz,
    revoked_by   text
);

-- A retried create with the same Idempotency-Key (same token) returns the same broadcast;
-- the same key with a different request is refused.
CREATE TABLE api_idempotency_keys (
    token_id      bigint NOT NULL REFERENCES api_tokens (id),
    key           text NOT NULL,
    request_hash  text NOT NULL,
    broadcast_id  bigint REFERENCES broadcasts (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (token_id, key)
);

-- Which token created an API broadcast, and in which request: the two-person rule compares
-- the approver with this token and its holder.
CREATE TABLE api_broadcast_origins (
    broadcast_id   bigint PRIMARY KEY REFERENCES broadcasts (id) ON DELETE CASCADE,
    token_id       bigint NOT NULL REFERENCES api_tokens (id),
    request_id     text NOT NULL
);

-- Every CAP message acted upon (Actual and Exercise; Test/Draft are only validated), so that a
-- retried message is recognised and a later Update/Cancel finds what it refers to.
CREATE TABLE cap_messages (
    sender        text NOT NULL,
    identifier    text NOT NULL,
    sent          text NOT NULL,
    status        text NOT NULL,
    msg_type      text NOT NULL,
    body_hash     text NOT NULL,
    token_id      bigint NOT NULL REFERENCES api_tokens (id),
    broadcast_id  bigint REFERENCES broadcasts (id),
    result        jsonb NOT NULL DEFAULT '{}',
    received_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (sender, identifier)
);

CREATE INDEX audit_log_by_subject ON audit_log (subject, id);
