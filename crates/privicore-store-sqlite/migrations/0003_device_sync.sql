-- The last synchronization of each storage device, for List storage devices.
ALTER TABLE devices ADD COLUMN last_sync_id TEXT;
ALTER TABLE devices ADD COLUMN last_sync_status TEXT;
ALTER TABLE devices ADD COLUMN last_sync_started_at INTEGER;
ALTER TABLE devices ADD COLUMN last_sync_finished_at INTEGER;
