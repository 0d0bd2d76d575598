-- Rooms have a kind (issue 15): public rooms, which anyone may join, private rooms, which only their members
-- see, and direct messages between two users. A private room has an owner, who adds and removes members.
-- Rooms made before this are public.
ALTER TABLE rooms ADD COLUMN kind TEXT NOT NULL DEFAULT 'public' CHECK (kind IN ('public', 'private', 'dm'));
ALTER TABLE rooms ADD COLUMN owner_id INTEGER REFERENCES users (id);

-- Members: for a private room or a DM, who may see it at all; for a public room, whose room list it is in
-- (joined on some device and not left). read_upto is the id of the last message the user has read there;
-- it never moves back.
CREATE TABLE room_members (
    room      TEXT    NOT NULL REFERENCES rooms (name),
    user_id   INTEGER NOT NULL REFERENCES users (id),
    added_at  INTEGER NOT NULL, -- unix milliseconds
    read_upto INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room, user_id)
);
-- A user's room list, on every device.
CREATE INDEX room_members_user ON room_members (user_id);
