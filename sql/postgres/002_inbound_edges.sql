-- The edges of inbound reception (issue 24, docs/inbound.md).
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
