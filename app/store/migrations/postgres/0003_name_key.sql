-- A user's name is unique by its key (app.NameKey: the PRECIS UsernameCaseMapped profile), which SQL cannot
-- compute: the store writes it with each new user, and fills it in for earlier users when it opens
-- (backfillNameKeys). Earlier databases may hold names that have the same key, or that the profile
-- refuses: those users keep a NULL key, which the unique index allows any number of, so this migration
-- cannot fail on them.
ALTER TABLE users ADD COLUMN name_key TEXT;
CREATE UNIQUE INDEX users_name_key ON users (name_key);
