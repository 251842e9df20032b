-- Keys the MEAO generates once and every replica sharing the database uses (token signing
-- when none is configured, the derivation key of the applications' Mp1 credentials).
CREATE TABLE keys (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- The Mp1 credential of each application instance at a site's MEP (a relocating instance has
-- one at each site until the old one is released). Only identifiers are stored: a secret is
-- derived from the credentials key, the instance and the credential id.
CREATE TABLE app_credentials (
    app_instance_id TEXT NOT NULL,
    site_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    credential_id TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    previous_credential_id TEXT,
    previous_not_after BIGINT,
    PRIMARY KEY (app_instance_id, site_id)
);
