-- Inbound sources (docs/inbound.md): webhooks from the host application's providers, verified,
-- deduplicated, logged byte for byte and relayed to forward destinations.
--
-- A source relays through the ordinary dispatcher: its forward destinations are endpoints of
-- its own user, named 'source:{name}' (a colon no real user name may carry), so retries, leases,
-- the SSRF policy, health, the failure rule and the delivery log all apply to them unchanged.

-- A relayed event's payload is the provider's raw body (a BLOB, byte-exact), sent with its own
-- content type; NULL content_type is the JSON envelope of an ordinary event.
ALTER TABLE events ADD COLUMN content_type TEXT;
ALTER TABLE events ADD COLUMN source_id TEXT;

CREATE TABLE sources (
    id                   TEXT PRIMARY KEY,
    name                 TEXT NOT NULL UNIQUE,
    provider             TEXT NOT NULL
        CHECK (provider IN ('stripe', 'github', 'shopify', 'slack', 'standard', 'postmark', 'circle', 'hmac')),
    user_id              INTEGER NOT NULL REFERENCES users(id),
    token_hash           TEXT NOT NULL UNIQUE,      -- SHA-256 of the URL token: the lookup
    token                BLOB NOT NULL,             -- the token itself, sealed, to show the URL again
    settings             TEXT NOT NULL DEFAULT '{}',
    api_key              BLOB,                      -- circle: sealed key-server API key
    max_body             INTEGER,                   -- NULL: WEBHOOKS_INBOUND_MAX_BODY
    expected_gap_ms      INTEGER,                   -- source.silent after this long without an accepted request
    active               INTEGER NOT NULL DEFAULT 1,
    last_accepted_at     INTEGER,
    last_auth_seen_at    INTEGER,                   -- last request that carried an Authorization header
    silent_since         INTEGER,                   -- set when source.silent was raised; cleared by an accept
    failing_since        INTEGER,                   -- set when source.verification_failing was raised
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);

-- Secrets, newest first is primary; an older one keeps verifying until expires_at (rotation).
CREATE TABLE source_keys (
    id          TEXT PRIMARY KEY,
    source_id   TEXT NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    secret      BLOB NOT NULL,                      -- XChaCha20-Poly1305: nonce || ciphertext
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER
);
CREATE INDEX source_keys_source ON source_keys(source_id, created_at);

-- Circle's public keys (DER SubjectPublicKeyInfo), fetched once and kept for good, or pasted.
CREATE TABLE source_public_keys (
    source_id   TEXT NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    key_id      TEXT NOT NULL,
    public_key  BLOB NOT NULL,
    origin      TEXT NOT NULL CHECK (origin IN ('fetched', 'pasted')),
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (source_id, key_id)
) WITHOUT ROWID;

-- Every request to a known source, rejected ones included. Headers are stored redacted; the
-- body byte-exact (NULL once past WEBHOOKS_INBOUND_BODY_RETENTION, or when over the limit).
CREATE TABLE inbound_requests (
    id                TEXT PRIMARY KEY,
    source_id         TEXT NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    received_at       INTEGER NOT NULL,
    remote_addr       TEXT NOT NULL DEFAULT '',
    headers           TEXT NOT NULL,               -- JSON [[name, value], …], redacted
    content_type      TEXT,
    body              BLOB,
    body_size         INTEGER NOT NULL,
    body_hash         TEXT,
    outcome           TEXT NOT NULL CHECK (outcome IN ('accepted', 'duplicate', 'rejected')),
    reason            TEXT,                         -- model::inbound::Reason, for rejects
    dedupe_key        TEXT,
    dedupe_signed     INTEGER NOT NULL DEFAULT 1,
    duplicate_of      TEXT,                         -- the accepted request a duplicate repeats
    replay_of         TEXT,                         -- same body accepted under another unsigned id within 24 h
    kind              TEXT,                         -- the provider's event type
    event_id          TEXT,                         -- the relayed event
    rechecked_at      INTEGER
);
-- The duplicate check: one accepted request per provider event id and source, for as long as
-- the metadata is kept (WEBHOOKS_INBOUND_RETENTION, 180 days by default).
CREATE UNIQUE INDEX inbound_dedupe ON inbound_requests(source_id, dedupe_key) WHERE outcome = 'accepted';
CREATE INDEX inbound_source ON inbound_requests(source_id, received_at);
CREATE INDEX inbound_outcome ON inbound_requests(outcome, received_at);
CREATE INDEX inbound_received ON inbound_requests(received_at);
CREATE INDEX inbound_replay ON inbound_requests(source_id, body_hash) WHERE outcome = 'accepted';
CREATE INDEX inbound_bodies ON inbound_requests(received_at) WHERE body IS NOT NULL;

-- Hourly counters per source, outcome and reject reason ('' for accepted and duplicate).
CREATE TABLE source_hours (
    source_id  TEXT NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    hour       INTEGER NOT NULL,                   -- Unix ms of the hour's start
    outcome    TEXT NOT NULL,
    reason     TEXT NOT NULL DEFAULT '',
    n          INTEGER NOT NULL,
    PRIMARY KEY (source_id, hour, outcome, reason)
) WITHOUT ROWID;
CREATE INDEX source_hours_hour ON source_hours(hour);

-- Operational notices about a source name it.
ALTER TABLE notices ADD COLUMN source_id TEXT;
