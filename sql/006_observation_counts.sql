-- `webhooks doctor` tells a missing CGIPassAuth from a client that sent no token by how many API
-- requests in a row arrived without an Authorization header: `count` holds that streak.
ALTER TABLE observations ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
