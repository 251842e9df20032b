-- Since when a site has been unhealthy (Unix ms; NULL while healthy): in the store, so the
-- failover timer survives restarts and every replica sees the same one.
ALTER TABLE sites ADD COLUMN unhealthy_since BIGINT;
