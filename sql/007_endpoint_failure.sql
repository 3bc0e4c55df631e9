-- requires: foreign_keys off
-- Endpoint health automation (docs/reliability.md, "When an endpoint keeps failing").
--
-- The deliveries table is rebuilt so that its status may be 'held' (kept, not sent, while the
-- endpoint is disabled by the failure rule or by a 410). SQLite cannot change a CHECK in place;
-- this is its documented rebuild, run with foreign keys off so that dropping the old table does
-- not cascade into attempts, and checked with foreign_key_check before it commits.
CREATE TABLE deliveries_new (
    id                TEXT PRIMARY KEY,
    event_id          TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    endpoint_id       TEXT NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    user_id           INTEGER NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('pending', 'held', 'succeeded', 'failed', 'dead')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   INTEGER,
    lease_until       INTEGER,
    lease_owner       TEXT,
    last_attempt_at   INTEGER,
    last_status_code  INTEGER,
    last_error_code   TEXT,
    last_error        TEXT,
    created_at        INTEGER NOT NULL,
    finished_at       INTEGER
);
INSERT INTO deliveries_new (id, event_id, endpoint_id, user_id, status, attempts, next_attempt_at,
                            lease_until, lease_owner, last_attempt_at, last_status_code,
                            last_error_code, last_error, created_at, finished_at)
    SELECT id, event_id, endpoint_id, user_id, status, attempts, next_attempt_at, lease_until,
           lease_owner, last_attempt_at, last_status_code, last_error_code, last_error, created_at,
           finished_at
    FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_new RENAME TO deliveries;
CREATE INDEX deliveries_due ON deliveries(user_id, next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX deliveries_due_time ON deliveries(next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX deliveries_leased ON deliveries(user_id, lease_until) WHERE lease_until IS NOT NULL;
CREATE INDEX deliveries_event ON deliveries(event_id);
CREATE INDEX deliveries_endpoint ON deliveries(endpoint_id, id);
CREATE INDEX deliveries_user ON deliveries(user_id, id);
CREATE INDEX deliveries_status ON deliveries(status, id);
CREATE INDEX deliveries_finished ON deliveries(finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX deliveries_user_status ON deliveries(user_id, status, id);
-- Held deliveries by endpoint (re-enabling sends or discards them) and by age (hold retention).
CREATE INDEX deliveries_held ON deliveries(endpoint_id, id) WHERE status = 'held';
CREATE INDEX deliveries_held_age ON deliveries(created_at) WHERE status = 'held';

-- The failure record of an endpoint (model::health::Failure): when failures began with no 2xx
-- since, how many deliveries went dead since then and when the first and the last did. And why
-- it is disabled: 'manual', 'gone' (a 410) or 'sustained_failure' (the rule).
ALTER TABLE endpoints ADD COLUMN fail_since INTEGER;
ALTER TABLE endpoints ADD COLUMN dead_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE endpoints ADD COLUMN first_dead_at INTEGER;
ALTER TABLE endpoints ADD COLUMN last_dead_at INTEGER;
ALTER TABLE endpoints ADD COLUMN last_success_at INTEGER;
ALTER TABLE endpoints ADD COLUMN disabled_kind TEXT
    CHECK (disabled_kind IN ('manual', 'gone', 'sustained_failure'));
ALTER TABLE endpoints ADD COLUMN disabled_at INTEGER;
UPDATE endpoints SET disabled_kind = CASE WHEN disabled_reason LIKE '%410%' THEN 'gone' ELSE 'manual' END,
                     disabled_at = updated_at
    WHERE active = 0;

-- The outbox of operational events: written in the transaction that changes the state they
-- report, then delivered by the dispatcher to each channel until it takes them.
CREATE TABLE notices (
    id                TEXT PRIMARY KEY,               -- ntc_…, also the event id receivers see
    type              TEXT NOT NULL,                  -- endpoint.failing, endpoint.disabled, …
    user_id           INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    endpoint_id       TEXT,                           -- kept when the endpoint is deleted
    payload           TEXT NOT NULL,                  -- the v1 envelope, as sent
    created_at        INTEGER NOT NULL,
    webhook_state     TEXT NOT NULL CHECK (webhook_state IN ('pending', 'sent', 'none')),
    webhook_attempts  INTEGER NOT NULL DEFAULT 0,
    webhook_next_at   INTEGER,
    webhook_error     TEXT,
    email_state       TEXT NOT NULL CHECK (email_state IN ('pending', 'sent', 'none')),
    email_attempts    INTEGER NOT NULL DEFAULT 0,
    email_next_at     INTEGER,
    email_error       TEXT,
    lease_until       INTEGER,
    lease_owner       TEXT
);
CREATE INDEX notices_webhook_due ON notices(webhook_next_at) WHERE webhook_state = 'pending';
CREATE INDEX notices_email_due ON notices(email_next_at) WHERE email_state = 'pending';
CREATE INDEX notices_user ON notices(user_id, id);
