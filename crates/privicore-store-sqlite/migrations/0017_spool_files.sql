-- The chunks of an upload are kept in a file per upload beside the database; their rows
-- name the file and the chunk's place in it (`sealed` is empty then). Rows without a file
-- hold the chunk themselves, as before.
ALTER TABLE spool ADD COLUMN file TEXT;
ALTER TABLE spool ADD COLUMN file_at INTEGER;
ALTER TABLE spool ADD COLUMN file_len INTEGER;
