-- The queue beside the record (issue 26; sql/012_queue.sql says why). A delivery waiting to be
-- sent has a `queue` row (due time, lease, attempts so far, `pending` or `failed`); the record
-- in `deliveries` changes when it is created, held and when it ends, and never says `failed`.
-- Ordered delivery: see sql/012_queue.sql and docs/ordering.md.
ALTER TABLE endpoints ADD COLUMN ordering TEXT NOT NULL DEFAULT 'none' CHECK (ordering IN ('none', 'fifo'));
ALTER TABLE endpoints ADD COLUMN fifo_on_dead TEXT NOT NULL DEFAULT 'continue'
    CHECK (fifo_on_dead IN ('continue', 'block'));
ALTER TABLE endpoints ADD COLUMN fifo_next BIGINT NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN ordering_key TEXT;
ALTER TABLE endpoints ADD COLUMN header_names TEXT NOT NULL DEFAULT '[]';
ALTER TABLE endpoints ADD COLUMN headers_sealed BYTEA;
ALTER TABLE endpoints ADD COLUMN signature_compat TEXT NOT NULL DEFAULT 'none'
    CHECK (signature_compat IN ('none', 'spatie'));
ALTER TABLE deliveries ADD COLUMN fifo_seq BIGINT;

CREATE TABLE queue (
    delivery_id       TEXT PRIMARY KEY REFERENCES deliveries(id) ON DELETE CASCADE,
    user_id           BIGINT NOT NULL,
    endpoint_id       TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('pending', 'failed', 'blocked')),
    attempts          BIGINT NOT NULL DEFAULT 0,
    next_attempt_at   BIGINT,
    lease_until       BIGINT,
    lease_owner       TEXT,
    ordering_key      TEXT,
    fifo_seq          BIGINT
);
INSERT INTO queue (delivery_id, user_id, endpoint_id, status, attempts, next_attempt_at, lease_until, lease_owner)
    SELECT id, user_id, endpoint_id, status, attempts, coalesce(next_attempt_at, created_at), lease_until, lease_owner
    FROM deliveries WHERE status IN ('pending', 'failed');
UPDATE deliveries SET status = 'pending' WHERE status = 'failed';
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status_check;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status_check CHECK (status IN ('pending', 'held', 'succeeded', 'dead'));
-- Their indexes (deliveries_due, deliveries_due_time, deliveries_leased) go with them.
ALTER TABLE deliveries DROP COLUMN next_attempt_at, DROP COLUMN lease_until, DROP COLUMN lease_owner;

CREATE INDEX queue_due ON queue(user_id, next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX queue_leased ON queue(user_id, lease_until) WHERE lease_until IS NOT NULL;
CREATE INDEX queue_failed ON queue(delivery_id, user_id) WHERE status = 'failed';
CREATE INDEX queue_fifo ON queue(endpoint_id, ordering_key, fifo_seq) WHERE ordering_key IS NOT NULL;
CREATE INDEX queue_blocked ON queue(user_id, endpoint_id) WHERE status = 'blocked';
-- The whole queue by due time, for "anything due?", the due count and the oldest due time
-- (SQLite seeks queue_due user by user instead: its cost is pages, PostgreSQL's round trips).
CREATE INDEX queue_due_time ON queue(next_attempt_at) WHERE next_attempt_at IS NOT NULL;
ALTER TABLE queue SET (autovacuum_vacuum_scale_factor = 0.02, autovacuum_analyze_scale_factor = 0.02,
                       fillfactor = 80);
