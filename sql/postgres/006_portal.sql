-- Portal links (issue 27): see sql/015_portal.sql.
CREATE TABLE session_revocations (
    user_name   TEXT PRIMARY KEY,
    revoked_at  BIGINT NOT NULL
);
