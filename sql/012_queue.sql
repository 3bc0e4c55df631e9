-- requires: foreign_keys off
-- The queue beside the record (issue 26, docs/architecture.md "The queue and the record").
--
-- A delivery is a row of `deliveries` (the record: what, to whom, how it ended) and, while it
-- waits to be sent, a row of `queue` (when it is due, who holds it, how many attempts so far).
-- Claiming, retrying and releasing write the narrow queue row and its three small indexes; the
-- record, with its six indexes for the log and the dashboard, is written when the delivery is
-- created, held, and when it ends. Before, each retry rewrote the record's due, leased, status
-- and (user, status) indexes; most of the dispatcher's WAL pages were those.
--
-- `queue.status` is what the log shows while a delivery waits: `pending` (not tried since it
-- was queued) or `failed` (will retry). The record then says `pending`; it never says `failed`.
--
-- Ordered delivery (docs/ordering.md): an endpoint with `ordering = 'fifo'` numbers the
-- deliveries it gets (`fifo_next`, kept in the delivery's `fifo_seq`); each of its queue rows
-- carries its key (the event's `ordering_key`, '' for none) and number, and only the first of
-- a key (its head) has a due time: the others wait with `next_attempt_at` NULL until the head
-- leaves the queue. A head that went dead under `fifo_on_dead = 'block'` stays, `blocked`,
-- until a person retries or discards it.
-- The table is rebuilt without its queue columns, with foreign keys off so that dropping the old
-- table does not cascade into attempts, and checked with foreign_key_check before it commits.
ALTER TABLE endpoints ADD COLUMN ordering TEXT NOT NULL DEFAULT 'none' CHECK (ordering IN ('none', 'fifo'));
ALTER TABLE endpoints ADD COLUMN fifo_on_dead TEXT NOT NULL DEFAULT 'continue'
    CHECK (fifo_on_dead IN ('continue', 'block'));
ALTER TABLE endpoints ADD COLUMN fifo_next INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN ordering_key TEXT;
-- Custom headers (names in clear, the name → value JSON sealed like secrets) and an extra
-- signature for receivers in the field (docs/signing.md, "Custom headers", "Spatie").
ALTER TABLE endpoints ADD COLUMN header_names TEXT NOT NULL DEFAULT '[]';
ALTER TABLE endpoints ADD COLUMN headers_sealed BLOB;
ALTER TABLE endpoints ADD COLUMN signature_compat TEXT NOT NULL DEFAULT 'none'
    CHECK (signature_compat IN ('none', 'spatie'));

CREATE TABLE queue (
    delivery_id       TEXT PRIMARY KEY REFERENCES deliveries(id) ON DELETE CASCADE,
    user_id           INTEGER NOT NULL,
    endpoint_id       TEXT NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('pending', 'failed', 'blocked')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    next_attempt_at   INTEGER,
    lease_until       INTEGER,
    lease_owner       TEXT,
    ordering_key      TEXT,
    fifo_seq          INTEGER
) WITHOUT ROWID;
INSERT INTO queue (delivery_id, user_id, endpoint_id, status, attempts, next_attempt_at, lease_until, lease_owner)
    SELECT id, user_id, endpoint_id, status, attempts, coalesce(next_attempt_at, created_at), lease_until, lease_owner
    FROM deliveries WHERE status IN ('pending', 'failed');

CREATE TABLE deliveries_new (
    id                TEXT PRIMARY KEY,
    event_id          TEXT NOT NULL REFERENCES events(id) ON DELETE CASCADE,
    endpoint_id       TEXT NOT NULL REFERENCES endpoints(id) ON DELETE CASCADE,
    user_id           INTEGER NOT NULL,
    status            TEXT NOT NULL CHECK (status IN ('pending', 'held', 'succeeded', 'dead')),
    attempts          INTEGER NOT NULL DEFAULT 0,
    last_attempt_at   INTEGER,
    last_status_code  INTEGER,
    last_error_code   TEXT,
    last_error        TEXT,
    created_at        INTEGER NOT NULL,
    finished_at       INTEGER,
    fifo_seq          INTEGER
);
INSERT INTO deliveries_new (id, event_id, endpoint_id, user_id, status, attempts, last_attempt_at,
                            last_status_code, last_error_code, last_error, created_at, finished_at)
    SELECT id, event_id, endpoint_id, user_id, CASE status WHEN 'failed' THEN 'pending' ELSE status END,
           attempts, last_attempt_at, last_status_code, last_error_code, last_error, created_at, finished_at
    FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_new RENAME TO deliveries;
CREATE INDEX deliveries_event ON deliveries(event_id);
CREATE INDEX deliveries_endpoint ON deliveries(endpoint_id, id);
CREATE INDEX deliveries_user ON deliveries(user_id, id);
CREATE INDEX deliveries_status ON deliveries(status, id);
CREATE INDEX deliveries_finished ON deliveries(finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX deliveries_user_status ON deliveries(user_id, status, id);
CREATE INDEX deliveries_held ON deliveries(endpoint_id, id) WHERE status = 'held';
CREATE INDEX deliveries_held_age ON deliveries(created_at) WHERE status = 'held';

-- The claim walks a user's due rows; the per-user cap counts its live leases; the log's
-- `failed` filter and the dashboard's count read the failed rows newest first; a FIFO key's
-- rows in order.
CREATE INDEX queue_due ON queue(user_id, next_attempt_at) WHERE next_attempt_at IS NOT NULL;
CREATE INDEX queue_leased ON queue(user_id, lease_until) WHERE lease_until IS NOT NULL;
CREATE INDEX queue_failed ON queue(delivery_id, user_id) WHERE status = 'failed';
CREATE INDEX queue_fifo ON queue(endpoint_id, ordering_key, fifo_seq) WHERE ordering_key IS NOT NULL;
CREATE INDEX queue_blocked ON queue(user_id, endpoint_id) WHERE status = 'blocked';
