-- MEAO package management: one dialect-neutral schema for SQLite and PostgreSQL.

CREATE TABLE app_packages (
    id TEXT PRIMARY KEY,
    app_d_id TEXT,
    app_d_version TEXT,
    onboarding_state TEXT NOT NULL,
    operational_state TEXT NOT NULL,
    usage_state TEXT NOT NULL,
    create_request TEXT NOT NULL,
    content_hash TEXT,
    details TEXT,
    appd TEXT,
    failure TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
-- NULLs are distinct in both dialects: only onboarded packages claim their (appDId, version).
CREATE UNIQUE INDEX app_packages_appd ON app_packages (app_d_id, app_d_version);

CREATE TABLE pkg_subscriptions (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE notifications (
    id TEXT PRIMARY KEY,
    subscription_id TEXT NOT NULL,
    callback_uri TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX notifications_due ON notifications (state, next_attempt_at);
