-- Durable multi-step operations: one row per saga, updated after every step.
CREATE TABLE sagas (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    params TEXT NOT NULL,
    outputs TEXT NOT NULL,
    cursor_pos BIGINT NOT NULL,
    direction TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT,
    lease_owner TEXT,
    lease_until BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX sagas_by_status ON sagas (status, lease_until);
