-- The dashboard counts a user's deliveries by status (up to a cap) and the delivery log filters
-- them by status: both walk this index instead of every delivery the user has.
CREATE INDEX deliveries_user_status ON deliveries(user_id, status, id);
