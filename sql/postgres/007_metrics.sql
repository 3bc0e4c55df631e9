-- Metrics (issue 28): see sql/016_metrics.sql. The queue's size is kept in 16 rows, one chosen
-- by the backend's process id, so that concurrent dispatchers and intakes do not queue up
-- behind one counter row; statement triggers add a whole batch's rows at once.
CREATE TABLE metric_counters (
    name    TEXT NOT NULL,
    labels  TEXT NOT NULL DEFAULT '',
    value   DOUBLE PRECISION NOT NULL DEFAULT 0,
    PRIMARY KEY (name, labels)
);

CREATE TABLE queue_size (
    shard  INTEGER PRIMARY KEY,
    n      BIGINT NOT NULL
);
-- (no row for an empty queue: `migrate-store` copies only into an empty database)
INSERT INTO queue_size (shard, n) SELECT 0, count(*) FROM queue HAVING count(*) > 0;

CREATE FUNCTION queue_size_added() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queue_size (shard, n)
        SELECT pg_backend_pid() % 16, count(*) FROM added HAVING count(*) > 0
        ON CONFLICT (shard) DO UPDATE SET n = queue_size.n + excluded.n;
    RETURN NULL;
END $$;
CREATE FUNCTION queue_size_removed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO queue_size (shard, n)
        SELECT pg_backend_pid() % 16, -count(*) FROM removed HAVING count(*) > 0
        ON CONFLICT (shard) DO UPDATE SET n = queue_size.n + excluded.n;
    RETURN NULL;
END $$;
CREATE TRIGGER queue_size_insert AFTER INSERT ON queue
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION queue_size_added();
CREATE TRIGGER queue_size_delete AFTER DELETE ON queue
    REFERENCING OLD TABLE AS removed FOR EACH STATEMENT EXECUTE FUNCTION queue_size_removed();
