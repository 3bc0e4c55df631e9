-- Every retry moved a delivery within two due indexes: deliveries_due (user_id,
-- next_attempt_at), which the claim walks, and deliveries_due_time (next_attempt_at), which
-- only the queue's due count, its oldest due time and "anything due?" read. With retry jitter
-- each move lands on a random page of each, so the second index was a fifth of the pages the
-- dispatcher wrote per commit. Those readers now seek deliveries_due user by user, hopping over
-- the users with pending work (store::deliveries::PENDING_USERS), which costs one seek per such
-- user. Measured in docs/benchmarks.md ("bookkeeping alone").
DROP INDEX deliveries_due_time;
