-- Endpoint health without scanning the delivery log: the latest attempt on the endpoint row, and
-- attempt outcomes per hour (the 24-hour success rate sums at most 24 rows).
ALTER TABLE endpoints ADD COLUMN last_attempt_at INTEGER;
ALTER TABLE endpoints ADD COLUMN last_status_code INTEGER;
ALTER TABLE endpoints ADD COLUMN last_error_code TEXT;

CREATE TABLE endpoint_stats (
    endpoint_id  TEXT NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    hour         INTEGER NOT NULL,             -- Unix ms of the hour's start
    succeeded    INTEGER NOT NULL DEFAULT 0,
    failed       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (endpoint_id, hour)
) WITHOUT ROWID;
CREATE INDEX endpoint_stats_hour ON endpoint_stats(hour);
