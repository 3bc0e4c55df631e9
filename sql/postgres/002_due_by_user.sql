-- As sql/010_due_by_user.sql: the due count, the oldest due time and "anything due?" seek
-- deliveries_due user by user, so each retry no longer rewrites a second due index.
DROP INDEX deliveries_due_time;
