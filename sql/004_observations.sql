-- What the CGI has seen, for `webhooks doctor` (e.g. whether API requests arrive with an
-- Authorization header: a missing CGIPassAuth silently drops it). Updated at most once a minute.
CREATE TABLE observations (
    name   TEXT PRIMARY KEY,
    at     INTEGER NOT NULL
) WITHOUT ROWID;
