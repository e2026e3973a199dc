-- name: insert_token
INSERT INTO api_tokens (name, role, prefix, token_hash, created_by, holder, pending)
VALUES ($1, $2, $3, $4, $5, $6, $7)
RETURNING id, name, holder, role, prefix, created_by, created_at, pending;

-- name: token_by_hash
SELECT id, name, holder, role, pending, revoked_at FROM api_tokens WHERE token_hash = $1;

-- name: touch_token
-- Record use at most once a minute (one write per minute per token, not per request).
UPDATE api_tokens SET last_used_at = now()
WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < now() - interval '60 seconds');

-- name: list_tokens
SELECT id, name, holder, role, prefix, created_by, created_at, pending, activated_by,
       activated_at, last_used_at, revoked_at, revoked_by
FROM api_tokens ORDER BY id;

-- name: get_token
SELECT id, name, holder, role, prefix, created_by, created_at, pending, activated_by,
       activated_at, last_used_at, revoked_at, revoked_by
FROM api_tokens WHERE id = $1;

-- name: revoke_token
UPDATE api_tokens SET revoked_at = now(), revoked_by = $2
WHERE id = $1 AND revoked_at IS NULL
RETURNING id, name, holder, role, prefix, created_by, created_at, pending, activated_by,
          activated_at, last_used_at, revoked_at, revoked_by;

-- name: activate_token
-- A pending token becomes usable ($2: the second admin who activates it).
UPDATE api_tokens SET pending = false, activated_by = $2, activated_at = now()
WHERE id = $1 AND pending AND revoked_at IS NULL
RETURNING id, name, holder, role, prefix, created_by, created_at, pending, activated_by,
          activated_at, last_used_at, revoked_at, revoked_by;

-- name: claim_idempotency_key
-- Take the key inside the create's transaction: a concurrent retry waits here, then sees it.
INSERT INTO api_idempotency_keys (token_id, key, request_hash) VALUES ($1, $2, $3)
ON CONFLICT DO NOTHING
RETURNING token_id;

-- name: get_idempotency_key
SELECT request_hash, broadcast_id, created_at FROM api_idempotency_keys
WHERE token_id = $1 AND key = $2;

-- name: set_idempotency_broadcast
UPDATE api_idempotency_keys SET broadcast_id = $3 WHERE token_id = $1 AND key = $2;

-- name: insert_origin
INSERT INTO api_broadcast_origins (broadcast_id, token_id, request_id) VALUES ($1, $2, $3);

-- name: get_origin
SELECT o.token_id, t.name AS token_name, t.holder, o.request_id
FROM api_broadcast_origins o JOIN api_tokens t ON t.id = o.token_id
WHERE o.broadcast_id = $1;

-- name: insert_audit
INSERT INTO audit_log (actor, action, subject, details) VALUES ($1, $2, $3, $4::jsonb)
RETURNING id, at;

-- name: list_audit
-- Newest first; $2 (an id, or NULL) pages back from before that entry.
SELECT id, at, actor, action, subject, details FROM audit_log
WHERE ($2::bigint IS NULL OR id < $2)
ORDER BY id DESC
LIMIT $1;

-- name: audit_of_subject
SELECT id, at, actor, action, subject, details FROM audit_log
WHERE subject = $1 ORDER BY id LIMIT $2;

-- name: get_cap_message
SELECT sender, identifier, sent, status, msg_type, body_hash, broadcast_id, result
FROM cap_messages WHERE sender = $1 AND identifier = $2;

-- name: insert_cap_message
INSERT INTO cap_messages (sender, identifier, sent, status, msg_type, body_hash, token_id,
                          broadcast_id, result)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb);

-- name: cap_referenced_broadcasts
-- Broadcasts created by the CAP messages named as (sender, identifier) pairs, newest first.
SELECT c.sender, c.identifier, c.broadcast_id, b.kind, b.state
FROM cap_messages c
JOIN unnest($1::text[], $2::text[]) AS r (sender, identifier)
  ON r.sender = c.sender AND r.identifier = c.identifier
JOIN broadcasts b ON b.id = c.broadcast_id
ORDER BY c.broadcast_id DESC;

-- name: follow_ups
SELECT id, kind, state, template, recipients, created_at FROM broadcasts
WHERE parent_id = $1 ORDER BY id;

-- name: broadcasts_by_state
SELECT kind, state, count(*)::bigint AS n FROM broadcasts GROUP BY kind, state;

-- name: active_progress
-- Unfinished broadcasts (in the states $1) with their chunk progress (cheap: no scan of the
-- outcomes: the parts come from the roll-ups, migration 0015).
SELECT b.id, b.kind, b.state, b.recipients, b.parts,
       count(c.chunk_no)::bigint AS chunks_total,
       count(c.chunk_no) FILTER (WHERE c.done)::bigint AS chunks_done,
       (SELECT coalesce(sum(o.parts), 0) FROM outcome_rollup o
        WHERE o.broadcast_id = b.id AND o.status = 0)::bigint AS parts_accepted,
       (SELECT coalesce(sum(o.parts), 0) FROM outcome_rollup o
        WHERE o.broadcast_id = b.id AND o.status <> 0)::bigint AS parts_failed,
       (SELECT coalesce(sum(r.parts), 0) FROM receipt_rollup r
        WHERE r.broadcast_id = b.id AND r.stat = 'DELIVRD')::bigint AS parts_delivered
FROM broadcasts b
LEFT JOIN broadcast_chunks c ON c.broadcast_id = b.id
WHERE b.state = ANY($1::text[])
GROUP BY b.id
ORDER BY b.id
LIMIT 100;

-- name: lock_cap_message
-- Serialise the handling of one CAP (sender, identifier) until the transaction ends.
SELECT pg_advisory_xact_lock(hashtextextended('cap:' || $1 || ':' || $2, 0));

-- name: broadcast_thread
-- The broadcasts $1 and every update/all-clear that follows them, with who created them.
WITH RECURSIVE thread AS (
    SELECT id FROM broadcasts WHERE id = ANY($1::bigint[])
    UNION
    SELECT b.id FROM broadcasts b JOIN thread t ON b.parent_id = t.id
)
SELECT b.id, b.kind, b.state, b.created_by, o.token_id, tk.holder
FROM thread t
JOIN broadcasts b ON b.id = t.id
LEFT JOIN api_broadcast_origins o ON o.broadcast_id = b.id
LEFT JOIN api_tokens tk ON tk.id = o.token_id
ORDER BY b.id;

-- name: metrics_sightings_pending
-- Location sightings awaiting compaction, as of the table's last ANALYZE (every ingest and
-- compaction ends with one; autovacuum too): no scan of the table. -1: never analyzed.
SELECT greatest(0, reltuples)::bigint FROM pg_class
WHERE oid = to_regclass('location_sightings') AND relkind = 'r'
UNION ALL SELECT 0
LIMIT 1;
