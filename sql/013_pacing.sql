-- Paced delivery (issue 26, docs/pacing.md): an endpoint's own limits, the pause its receiver
-- asked for, and the pacing state every dispatcher shares.
--
-- `max_per_second` and `max_in_flight` are the endpoint's settings (NULL: no limit).
-- `paused_until` is when a 429, or a 503 with `Retry-After`, lets the endpoint be sent to again;
-- the dispatcher that recorded the answer writes it with the endpoint's failure record.
ALTER TABLE endpoints ADD COLUMN max_per_second REAL;
ALTER TABLE endpoints ADD COLUMN max_in_flight INTEGER;
ALTER TABLE endpoints ADD COLUMN paused_until INTEGER;
ALTER TABLE endpoints ADD COLUMN paused_status INTEGER;
CREATE INDEX endpoints_paused ON endpoints(paused_until) WHERE paused_until IS NOT NULL;

-- What the claims of a limited endpoint's deliveries share, across dispatchers and runs: when
-- the next request may start (`next_at`, one every 1/max_per_second) and where the next
-- delivery that must wait is put (`parked_until`, so that waiting deliveries are spread one per
-- slot instead of all coming due at once). Written only by claims (which hold the endpoint's
-- user), never by records, so the two never wait for each other.
CREATE TABLE endpoint_pacing (
    endpoint_id   TEXT PRIMARY KEY REFERENCES endpoints(id) ON DELETE CASCADE,
    next_at       INTEGER NOT NULL DEFAULT 0,
    parked_until  INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- A queue row a claim moved to a later time because its endpoint's limits or pause did not let
-- it go yet (1), rather than a retry's schedule (0): a change of the limits brings parked rows
-- back at once, and a finished request of an endpoint at its `max_in_flight` wakes the next one.
ALTER TABLE queue ADD COLUMN parked INTEGER NOT NULL DEFAULT 0;
-- The next parked delivery's time, for a dispatcher with nothing due now (only parked rows
-- are in it).
CREATE INDEX queue_parked ON queue(next_attempt_at) WHERE parked = 1;
