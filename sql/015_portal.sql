-- Portal links (issue 27, docs/embedding.md): revoking a user's sessions also refuses the links
-- issued to them before it and not yet opened. One row per user: the time of the last
-- revocation (Unix ms). Purged once no link issued before it can still be valid.
CREATE TABLE session_revocations (
    user_name   TEXT PRIMARY KEY,
    revoked_at  INTEGER NOT NULL
);
