-- The version of each instance's desired configuration received from the MEAO over the link
-- (kept after the instance is removed: a resent removal is recognised).
CREATE TABLE desired_versions (
    app_instance_id TEXT PRIMARY KEY,
    version BIGINT NOT NULL
);
