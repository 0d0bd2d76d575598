-- Sessions: one per login (app.Session). A token names its session (jti) and the session's generation; a
-- refresh moves the generation on, and the token of the one before stays valid until previous_until, for
-- the requests already sent with it. A log out deletes the row; every token of the session then fails.
CREATE TABLE sessions (
    id             TEXT    PRIMARY KEY,
    user_id        INTEGER NOT NULL REFERENCES users (id),
    generation     INTEGER NOT NULL,
    previous_until INTEGER NOT NULL, -- unix milliseconds
    created_at     INTEGER NOT NULL, -- unix milliseconds
    expires_at     INTEGER NOT NULL  -- unix milliseconds: created_at + SESSION_MAX
);
CREATE INDEX sessions_user ON sessions (user_id);
-- Logins delete the sessions that expired, of every user, through this index.
CREATE INDEX sessions_expires ON sessions (expires_at);
