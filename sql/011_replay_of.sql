-- A relayed inbound request flagged as a suspected replay (its body accepted under another,
-- unsigned, provider id within 24 hours) says so to its forward destinations: the id of the
-- request it repeats, sent as X-QSM-Replay-Of.
ALTER TABLE events ADD COLUMN replay_of TEXT;
