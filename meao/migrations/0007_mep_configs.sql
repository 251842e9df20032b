-- The MEAO-MEP link: each instance's desired configuration at a site's MEP with its version
-- (config NULL: removal, kept as a tombstone), what the MEP acknowledged or refused, and the
-- status it last reported.
CREATE TABLE mep_configs (
    site_id TEXT NOT NULL,
    app_instance_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    config TEXT,
    graceful_timeout BIGINT NOT NULL,
    acked_version BIGINT NOT NULL DEFAULT 0,
    refused_version BIGINT NOT NULL DEFAULT 0,
    error TEXT,
    status TEXT,
    status_at BIGINT,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (site_id, app_instance_id)
);
