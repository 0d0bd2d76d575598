-- Rooms hold the per-room message counter: taking the next id is one row update, which serialises writers
-- of the same room on any database, where MAX(id)+1 would race on a database with concurrent writers.
CREATE TABLE rooms (
    name    TEXT    PRIMARY KEY,
    last_id INTEGER NOT NULL
);
INSERT INTO rooms (name, last_id) SELECT room, MAX(id) FROM messages GROUP BY room;

-- A client id names one message of its user: a message re-sent with the same id is the same message.
-- Earlier duplicates (none were refused before this migration) keep their text but lose the id.
UPDATE messages SET client_id = NULL
WHERE client_id IS NOT NULL
  AND rowid NOT IN (SELECT MIN(rowid) FROM messages WHERE client_id IS NOT NULL GROUP BY user_id, client_id);
CREATE UNIQUE INDEX messages_user_client_id ON messages (user_id, client_id) WHERE client_id IS NOT NULL;
