-- Accounts. E-mails are stored in lower case; the unique index on lower(email) also refuses a
-- differently-cased duplicate written by hand, as SQLite's COLLATE NOCASE does, and serves the lookup.
CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    email         TEXT   NOT NULL,
    name          TEXT   NOT NULL,
    password_hash TEXT   NOT NULL,
    created_at    BIGINT NOT NULL -- unix milliseconds
);
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- Messages, numbered per room: (room, id) orders a room's history and is what clients resume from.
CREATE TABLE messages (
    room       TEXT   NOT NULL,
    id         BIGINT NOT NULL,
    user_id    BIGINT NOT NULL REFERENCES users (id),
    user_name  TEXT   NOT NULL,
    text       TEXT   NOT NULL,
    client_id  TEXT,
    created_at BIGINT NOT NULL, -- unix milliseconds
    PRIMARY KEY (room, id)
);
