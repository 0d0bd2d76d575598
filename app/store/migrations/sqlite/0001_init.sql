-- Accounts. E-mails are stored in lower case; NOCASE also guards against a differently-cased duplicate
-- written by hand.
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    email         TEXT    NOT NULL UNIQUE COLLATE NOCASE,
    name          TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL -- unix milliseconds
);

-- Messages, numbered per room: (room, id) orders a room's history and is what clients resume from.
CREATE TABLE messages (
    room       TEXT    NOT NULL,
    id         INTEGER NOT NULL,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    user_name  TEXT    NOT NULL,
    text       TEXT    NOT NULL,
    client_id  TEXT,
    created_at INTEGER NOT NULL, -- unix milliseconds
    PRIMARY KEY (room, id)
);
