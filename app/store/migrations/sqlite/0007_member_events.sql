-- A room's log holds more than messages (issue 15): a member added, removed or leaving is an event in it,
-- with an id of the room's sequence, so that live delivery, history and resume all see it in its place.
-- kind is NULL for a message; for a member event (member_added, member_removed, member_left) user_id is who
-- did it, and subject_id and subject_name whom it was done to. The event and the change of room_members it
-- records are written in one transaction.
ALTER TABLE messages ADD COLUMN kind TEXT CHECK (kind IN ('member_added', 'member_removed', 'member_left'));
ALTER TABLE messages ADD COLUMN subject_id INTEGER REFERENCES users (id);
ALTER TABLE messages ADD COLUMN subject_name TEXT;

-- A user's room list has a version, moved on by every change of their memberships, so that a client can
-- tell an older list that arrives late (lists of several nodes are not ordered) from the current one.
ALTER TABLE users ADD COLUMN list_version INTEGER NOT NULL DEFAULT 0;
