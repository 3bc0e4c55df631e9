-- Metrics (issue 28, docs/operator.md "Monitoring"). Counters that only ever grow, kept by the
-- processes that cause them (the dispatcher adds what it did about once a second and when it
-- ends; the CGI adds each inbound request and each delivery it holds at intake), so that a
-- scrape reads them in one small query and counts every process, whichever host it ran on.
CREATE TABLE metric_counters (
    name    TEXT NOT NULL,
    labels  TEXT NOT NULL DEFAULT '',      -- the series' labels, as the exposition format writes them
    value   REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (name, labels)
) WITHOUT ROWID;

-- How many deliveries wait in the queue, kept exact by triggers: a count(*) of a million queue
-- rows is what a scrape must never do.
CREATE TABLE queue_size (
    shard  INTEGER PRIMARY KEY,
    n      INTEGER NOT NULL
);
INSERT INTO queue_size (shard, n) SELECT 0, count(*) FROM queue;
CREATE TRIGGER queue_size_insert AFTER INSERT ON queue
BEGIN
    UPDATE queue_size SET n = n + 1 WHERE shard = 0;
END;
CREATE TRIGGER queue_size_delete AFTER DELETE ON queue
BEGIN
    UPDATE queue_size SET n = n - 1 WHERE shard = 0;
END;
