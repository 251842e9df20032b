-- The event outbox: one CloudEvent per state change of a package, instance, LCM operation
-- occurrence or site, written in the transaction of the change and published to Kafka.
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    resource_id TEXT NOT NULL,
    version BIGINT NOT NULL,
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    published_at BIGINT
);
CREATE UNIQUE INDEX events_by_resource ON events (kind, resource_id, version);
CREATE INDEX events_pending ON events (published_at, created_at);
