-- What is unread is what others wrote: one's own messages (sent from another device, or over REST) are no
-- news to oneself, and neither are member events, which a room shows but no chat counts. Unread counts
-- count the messages of others after what a member has read, with this index.
DROP INDEX messages_news;
CREATE INDEX messages_news ON messages (room, id, user_id) WHERE kind IS NULL;
