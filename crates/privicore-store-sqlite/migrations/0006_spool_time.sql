-- The spool keeps an object at most 24 h after its commit (docs/api/devices-and-storage.md §5.2.7):
-- each copy records when it was spooled. Copies from before this migration count from now.
ALTER TABLE spool ADD COLUMN spooled_at INTEGER NOT NULL DEFAULT 0;
UPDATE spool SET spooled_at = CAST(strftime('%s', 'now') AS INTEGER);
