-- Edge sites (MEC hosts) of the inventory.
CREATE TABLE sites (
    id TEXT PRIMARY KEY,
    spec TEXT NOT NULL,
    healthy BIGINT NOT NULL,
    free_capacity TEXT,
    last_error TEXT,
    refreshed_at BIGINT NOT NULL
);
