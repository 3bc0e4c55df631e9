-- Circle key ids the key server did not know, so that a request naming one again within a few
-- minutes is refused without asking the server again; and, with the keys fetched, the count of
-- key-server requests per source per minute (a flood of made-up key ids is a flood of fetches
-- otherwise). docs/inbound/circle.md.
CREATE TABLE source_key_misses (
    source_id  TEXT NOT NULL REFERENCES sources(id) ON DELETE CASCADE,
    key_id     TEXT NOT NULL,
    at         INTEGER NOT NULL,
    PRIMARY KEY (source_id, key_id)
) WITHOUT ROWID;
CREATE INDEX source_key_misses_at ON source_key_misses(at);
