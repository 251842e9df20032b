-- Named leases the replicas take turns on (the reconciliation of a site's workloads): held by
-- one owner until `lease_until` (Unix ms), then free for any replica.
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    lease_until BIGINT NOT NULL
);
