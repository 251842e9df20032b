-- LCM subscriptions.
CREATE TABLE lcm_subscriptions (
    id TEXT PRIMARY KEY,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
