-- A room's log holds more than messages (issues 15 and 16): member events and changes to messages are
-- entries of it, each with an id of the room's sequence, so that live delivery, history and resume all see
-- them in their place. kind is NULL for a message. For a member event (member_added, member_removed,
-- member_left) user_id is who did it, and subject_id and subject_name whom it was done to; the event and the
-- change of room_members it records are written in one transaction. For a change (edit, delete, react,
-- unreact) user_id is who made it, target_id the message it changes, and text the new text (edit) or the
-- emoji (react, unreact); the change is applied to its message, or to reactions, in the same transaction.
ALTER TABLE messages ADD COLUMN kind TEXT CHECK (kind IN ('member_added', 'member_removed', 'member_left', 'edit', 'delete', 'react', 'unreact'));
ALTER TABLE messages ADD COLUMN subject_id INTEGER REFERENCES users (id);
ALTER TABLE messages ADD COLUMN subject_name TEXT;
ALTER TABLE messages ADD COLUMN target_id INTEGER;
-- A message's current state: when it was last edited (unix milliseconds), and whether it was deleted (a
-- tombstone keeps its place and its id, and loses its text and reactions).
ALTER TABLE messages ADD COLUMN edited_at INTEGER;
ALTER TABLE messages ADD COLUMN deleted BOOLEAN NOT NULL DEFAULT FALSE;

-- The news of a room: its messages and member events, not the changes to messages. Unread counts count
-- these, after what a member has read, from the index alone.
CREATE INDEX messages_news ON messages (room, id) WHERE kind IS NULL OR kind NOT IN ('edit', 'delete', 'react', 'unreact');

-- Who reacted to which message with which emoji: one row each, so a user reacts once per emoji.
CREATE TABLE reactions (
    room       TEXT    NOT NULL,
    message_id INTEGER NOT NULL,
    emoji      TEXT    NOT NULL,
    user_id    INTEGER NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL, -- unix milliseconds
    PRIMARY KEY (room, message_id, emoji, user_id)
);

-- A user's room list has a version, moved on by every change of their memberships, so that a client can
-- tell an older list that arrives late (lists of several nodes are not ordered) from the current one.
ALTER TABLE users ADD COLUMN list_version INTEGER NOT NULL DEFAULT 0;
