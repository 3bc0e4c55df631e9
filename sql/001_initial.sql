-- QSM Webhooks schema v1. Times are integer Unix milliseconds (UTC).

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

-- API tokens, stored as SHA-256 hashes; user_id NULL marks an application token.
CREATE TABLE tokens (
    id            TEXT PRIMARY KEY,
    user_id       INTEGER REFERENCES users(id) ON DELETE CASCADE,
    hash          TEXT NOT NULL UNIQUE,
    label         TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    last_used_at  INTEGER,
    revoked_at    INTEGER
);
CREATE INDEX tokens_user ON tokens(user_id);

CREATE TABLE endpoints (
    id               TEXT PRIMARY KEY,
    user_id          INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    url              TEXT NOT NULL,
    description      TEXT NOT NULL DEFAULT '',
    event_types      TEXT NOT NULL DEFAULT '[]',   -- JSON array of type filters; [] = every type
    active           INTEGER NOT NULL DEFAULT 1,
    disabled_reason  TEXT,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX endpoints_user ON endpoints(user_id, created_at);

-- Signing keys. The newest unexpired key is primary; an older one keeps signing until expires_at.
CREATE TABLE endpoint_keys (
    id           TEXT PRIMARY KEY,
    endpoint_id  TEXT NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    secret       BLOB NOT NULL,                    -- XChaCha20-Poly1305: nonce || ciphertext
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER
);
CREATE INDEX endpoint_keys_endpoint ON endpoint_keys(endpoint_id, created_at);

CREATE TABLE events (
    id                  TEXT PRIMARY KEY,
    user_id             INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    type                TEXT NOT NULL,
    idempotency_key     TEXT,
    request_hash        TEXT NOT NULL,
    payload             TEXT,                      -- the envelope as delivered; NULL once expired
    created_at          INTEGER NOT NULL,
    payload_expires_at  INTEGER                    -- set when the event's last delivery ends
);
CREATE UNIQUE INDEX events_idempotency ON events(user_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;
CREATE INDEX events_created ON events(created_at);
CREATE INDEX events_payload_expiry ON events(payload_expires_at)
    WHERE payload IS NOT NULL AND payload_expires_at IS NOT NULL;

-- One delivery per (event, endpoint). next_attempt_at is NULL once finished; while a dispatcher
-- holds the delivery it equals lease_until, so an abandoned lease makes the delivery due again.
CREATE TABLE deliveries (
    id                TEXT PRIMARY KEY,
    event_id          TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    endpoint_id       TEXT NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    user_id           INTEGER NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed', 'dead')),
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
CREATE INDEX deliveries_due ON deliveries(user_id, next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX deliveries_due_time ON deliveries(next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX deliveries_leased ON deliveries(user_id, lease_until) WHERE lease_until IS NOT NULL;
CREATE INDEX deliveries_event ON deliveries(event_id);
CREATE INDEX deliveries_endpoint ON deliveries(endpoint_id, id);
CREATE INDEX deliveries_user ON deliveries(user_id, id);
CREATE INDEX deliveries_status ON deliveries(status, id);
CREATE INDEX deliveries_finished ON deliveries(finished_at) WHERE finished_at IS NOT NULL;

-- Append-only summaries of every request made.
CREATE TABLE attempts (
    id                INTEGER PRIMARY KEY,
    delivery_id       TEXT NOT NULL REFERENCES deliveries(id) ON DELETE CASCADE,
    attempt           INTEGER NOT NULL,
    run_id            TEXT,
    started_at        INTEGER NOT NULL,
    duration_ms       INTEGER NOT NULL,
    status_code       INTEGER,
    error_code        TEXT,
    error             TEXT,
    response_snippet  TEXT,
    request_body      TEXT,                        -- only with WEBHOOKS_LOG_BODIES=true
    response_body     TEXT                         -- only with WEBHOOKS_LOG_BODIES=true
);
CREATE INDEX attempts_delivery ON attempts(delivery_id, attempt);

-- Dispatcher heartbeats: one row per run.
CREATE TABLE runs (
    id           TEXT PRIMARY KEY,
    started_at   INTEGER NOT NULL,
    finished_at  INTEGER,
    summary      TEXT
);
CREATE INDEX runs_started ON runs(started_at);
