-- Rooms hold the per-room message counter: taking the next id is one row update, which serialises writers
-- of the same room on any database, where MAX(id)+1 would race on a database with concurrent writers.
CREATE TABLE rooms (
    name    TEXT   PRIMARY KEY,
    last_id BIGINT NOT NULL
);
INSERT INTO rooms (name, last_id) SELECT room, MAX(id) FROM messages GROUP BY room;

-- A client id names one message of its user: a message re-sent with the same id is the same message.
-- SQLite's version of this migration first clears duplicates written before it; PostgreSQL support came
-- after, so no PostgreSQL database holds any.
CREATE UNIQUE INDEX messages_user_client_id ON messages (user_id, client_id) WHERE client_id IS NOT NULL;
