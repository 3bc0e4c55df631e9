-- Paced delivery (issue 26): see sql/013_pacing.sql and docs/pacing.md.
ALTER TABLE endpoints ADD COLUMN max_per_second DOUBLE PRECISION;
ALTER TABLE endpoints ADD COLUMN max_in_flight BIGINT;
ALTER TABLE endpoints ADD COLUMN paused_until BIGINT;
ALTER TABLE endpoints ADD COLUMN paused_status BIGINT;
CREATE INDEX endpoints_paused ON endpoints(paused_until) WHERE paused_until IS NOT NULL;

CREATE TABLE endpoint_pacing (
    endpoint_id   TEXT PRIMARY KEY REFERENCES endpoints(id) ON DELETE CASCADE,
    next_at       BIGINT NOT NULL DEFAULT 0,
    parked_until  BIGINT NOT NULL DEFAULT 0
);

ALTER TABLE queue ADD COLUMN parked BIGINT NOT NULL DEFAULT 0;
CREATE INDEX queue_parked ON queue(next_attempt_at) WHERE parked = 1;
