-- The audit log of governance decisions (docs/audit.md): an append-only chain whose records
-- are MAC'd over their fields and the MAC of the record before them, and the sealed head
-- (last seq and MAC, MAC'd again), rewritten in the same transaction as every append.
CREATE TABLE audit_log (
    seq        INTEGER PRIMARY KEY,
    at         INTEGER NOT NULL,
    profile_id TEXT,
    kind       TEXT NOT NULL,
    actor      TEXT NOT NULL,
    subject    TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    details    TEXT NOT NULL,
    prev_hash  BLOB NOT NULL,
    hash       BLOB NOT NULL
);
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash BLOB NOT NULL,
    mac  BLOB NOT NULL
);
-- Records are never changed or removed by the engine. The triggers stop mistakes, not an
-- attacker (who can drop them); the MACs are what an attacker cannot get past.
CREATE TRIGGER audit_log_append_only_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
END;
CREATE TRIGGER audit_log_append_only_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit records are append-only');
END;
