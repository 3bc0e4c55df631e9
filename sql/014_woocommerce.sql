-- requires: foreign_keys off
-- WooCommerce as an inbound provider (issue 27, docs/inbound/woocommerce.md): the sources
-- table is rebuilt with 'woocommerce' in its provider CHECK (SQLite cannot change a CHECK in
-- place), every row and column as it was.
CREATE TABLE sources_new (
    id                   TEXT PRIMARY KEY,
    name                 TEXT NOT NULL UNIQUE,
    provider             TEXT NOT NULL
        CHECK (provider IN ('stripe', 'github', 'shopify', 'slack', 'standard', 'postmark', 'circle', 'hmac',
                            'woocommerce')),
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
INSERT INTO sources_new SELECT id, name, provider, user_id, token_hash, token, settings, api_key, max_body,
    expected_gap_ms, active, last_accepted_at, last_auth_seen_at, silent_since, failing_since, created_at, updated_at
    FROM sources;
DROP TABLE sources;
ALTER TABLE sources_new RENAME TO sources;
