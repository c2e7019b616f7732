-- Commands are stored in the order of their id (UUID v7, time-ordered) in one b-tree: an
-- insert touches the table's last page only, instead of the rowid table, the id index and
-- the finished-time index. The purge of finished commands ranges over the id instead.
CREATE TABLE commands_v7 (
    id             TEXT PRIMARY KEY,
    profile_id     TEXT NOT NULL,
    application_id TEXT,
    kind           TEXT NOT NULL,
    payload        TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    outcome        TEXT,
    created_at     INTEGER NOT NULL,
    finished_at    INTEGER
) WITHOUT ROWID;
INSERT INTO commands_v7 (id, profile_id, application_id, kind, payload, status, outcome,
    created_at, finished_at)
SELECT id, profile_id, application_id, kind, payload, status, outcome, created_at, finished_at
FROM commands;
DROP TABLE commands;
ALTER TABLE commands_v7 RENAME TO commands;
CREATE INDEX commands_pending ON commands (created_at) WHERE status = 'pending';
