-- The event outbox also feeds the portal's live updates and activity feed: who made the change
-- (the API caller's identity; NULL for the MEAO's own work), and an index for reading the
-- recent events by time.
ALTER TABLE events ADD COLUMN actor TEXT;
CREATE INDEX events_created ON events (created_at);
