-- Rooms exist before they are used (issue 15): POST /api/rooms makes one, POST /api/dms a DM, and general
-- always exists. A join, a history read or a message to a room that does not exist
-- gets not_found, which is also all a private room answers a non-member. Rows that earlier versions made for
-- rooms that never had a message go: nobody made those rooms on purpose.
DELETE FROM rooms WHERE last_id = 0 AND kind = 'public' AND name NOT IN (SELECT room FROM room_members);
INSERT INTO rooms (name, last_id) VALUES ('general', 0) ON CONFLICT (name) DO NOTHING;
