-- Login links are single-use: the nonce of every redeemed link is kept until the link expires.
CREATE TABLE login_links_used (
    nonce       TEXT PRIMARY KEY,
    expires_at  INTEGER NOT NULL
);
CREATE INDEX login_links_used_expiry ON login_links_used(expires_at);
