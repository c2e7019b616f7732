-- Durable throttle counters (docs/api/README.md §3.5): failed password checks per username and client
-- address, per username, and registrations per address, so a restart does not reset them.
CREATE TABLE throttle_counters (
    key        TEXT PRIMARY KEY,
    count      INTEGER NOT NULL,
    window_end INTEGER NOT NULL,
    last_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX throttle_counters_window_end ON throttle_counters (window_end);
