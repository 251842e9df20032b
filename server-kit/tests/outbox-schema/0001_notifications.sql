-- The notification outbox as the services' migrations create it.
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
