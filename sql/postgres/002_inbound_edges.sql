-- The edges of inbound reception and of sign-in (issue 24, docs/inbound.md, docs/pages.md).
--
-- A relayed inbound request flagged as a suspected replay (its body accepted under another,
-- unsigned, provider id within 24 hours) says so to its forward destinations: the id of the
-- request it repeats, sent as X-QSM-Replay-Of.
ALTER TABLE events ADD COLUMN replay_of TEXT;

-- Every request to a Circle key server, whatever it answered, so that the per-minute cap holds
-- when the server fails too (only keys fetched and ids it did not know were counted, so 25 junk
-- requests against a server answering 429 made 25 fetches). Purged after a day.
CREATE TABLE source_key_fetches (
    source_id  TEXT NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    at         BIGINT NOT NULL
);
CREATE INDEX source_key_fetches_at ON source_key_fetches(source_id, at);

-- Rejected requests' bodies are kept within a budget per source per hour
-- (WEBHOOKS_INBOUND_REJECT_BUDGET): the bytes of the bodies kept, and the rejects past the
-- budget whose bodies were dropped, by hour, outcome and reason.
ALTER TABLE source_hours ADD COLUMN stored_bytes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE source_hours ADD COLUMN dropped_bodies BIGINT NOT NULL DEFAULT 0;

-- Sign-in sessions, server-side (docs/pages.md): a session cookie signs in only while its row is
-- here and not ended, so that signing out ends it for good, and `webhooks sessions revoke` (or
-- DELETE /api/v1/users/{user}/sessions) ends every session of a user. Purged once expired.
CREATE TABLE sessions (
    sid         TEXT PRIMARY KEY,
    user_name   TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    ended_at    BIGINT
);
CREATE INDEX sessions_user ON sessions(user_name);
CREATE INDEX sessions_expiry ON sessions(expires_at);
