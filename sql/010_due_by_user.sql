-- Every retry moved a delivery within two due indexes: deliveries_due (user_id,
-- next_attempt_at), which the claim walks, and deliveries_due_time (next_attempt_at), which
-- only the queue's due count, its oldest due time and "anything due?" read. With retry jitter
-- each move lands on a random page of each, so the second index was a fifth of the pages the
-- dispatcher wrote per commit. Those readers now seek deliveries_due user by user, hopping over
-- the users with pending work (store::queue::PENDING_USERS): about 1 µs per such user.
-- PostgreSQL keeps the index (its dispatcher's cost is round trips, not pages).
DROP INDEX deliveries_due_time;
