-- Portal sessions, shared by the replicas: the SHA-256 digest of the cookie's token (never
-- the token), the user, role and CSRF token, and the idle and absolute expiry (Unix seconds).
CREATE TABLE portal_sessions (
    digest TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    role TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created BIGINT NOT NULL,
    idle_until BIGINT NOT NULL,
    absolute_until BIGINT NOT NULL
);
CREATE INDEX portal_sessions_created ON portal_sessions (created);
