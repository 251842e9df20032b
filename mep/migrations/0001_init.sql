-- MEP schema: one dialect-neutral set for SQLite and PostgreSQL.
-- Bodies are the ETSI JSON representations; key columns are duplicated for lookups.

CREATE TABLE app_instances (
    app_instance_id TEXT PRIMARY KEY,
    app_info TEXT NOT NULL,
    state TEXT NOT NULL,
    pending_action TEXT,
    action_deadline BIGINT,
    updated_at BIGINT NOT NULL
);

CREATE TABLE services (
    ser_instance_id TEXT PRIMARY KEY,
    app_instance_id TEXT NOT NULL,
    ser_name TEXT NOT NULL,
    body TEXT NOT NULL,
    etag BIGINT NOT NULL,
    last_heartbeat BIGINT NOT NULL
);
CREATE INDEX services_by_app ON services (app_instance_id);

CREATE TABLE traffic_rules (
    app_instance_id TEXT NOT NULL,
    traffic_rule_id TEXT NOT NULL,
    body TEXT NOT NULL,
    etag BIGINT NOT NULL,
    PRIMARY KEY (app_instance_id, traffic_rule_id)
);

CREATE TABLE dns_rules (
    app_instance_id TEXT NOT NULL,
    dns_rule_id TEXT NOT NULL,
    body TEXT NOT NULL,
    etag BIGINT NOT NULL,
    PRIMARY KEY (app_instance_id, dns_rule_id)
);

CREATE TABLE subscriptions (
    subscription_id TEXT PRIMARY KEY,
    app_instance_id TEXT NOT NULL,
    subscription_type TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX subscriptions_by_app ON subscriptions (app_instance_id);

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
