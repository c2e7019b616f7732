-- Idempotency-Key memory (docs/api/README.md §4.7): one row per (scope, path, key); `reply` is set once
-- the request was accepted.
CREATE TABLE idempotency_slots (
    scope      TEXT NOT NULL,
    path       TEXT NOT NULL,
    key        TEXT NOT NULL,
    body_hash  BLOB NOT NULL,
    reply      TEXT,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (scope, path, key)
) WITHOUT ROWID;
CREATE INDEX idempotency_slots_created ON idempotency_slots (created_at);
