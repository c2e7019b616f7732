-- Versions, replicas and spool chunks were keyed by the token text, a UUID v4, so every
-- insert dirtied a random page of each of their key indexes: 35 % of all WAL frames under
-- store load. They are now keyed by the token's `seq`, which grows with reservation time,
-- so the rows of one commit land on the right-most pages. `seq` is an INTEGER PRIMARY KEY
-- (the rowid it copies could be renumbered by VACUUM; an alias cannot).
CREATE TABLE data_tokens_v5 (
    seq                 INTEGER PRIMARY KEY,
    token               TEXT NOT NULL UNIQUE,
    profile_id          TEXT NOT NULL REFERENCES profiles (id),
    application_id      TEXT,
    reserve_command_id  TEXT NOT NULL UNIQUE,
    status              TEXT NOT NULL,
    context             TEXT NOT NULL,
    expires_at          INTEGER,
    upload_salt         TEXT,
    version             INTEGER,
    stored_size         INTEGER,
    meta_file           TEXT,
    meta_risk           TEXT,
    meta_data           TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
);
INSERT INTO data_tokens_v5 (seq, token, profile_id, application_id, reserve_command_id, status,
    context, expires_at, upload_salt, version, stored_size, meta_file, meta_risk, meta_data,
    created_at, updated_at)
SELECT rowid, token, profile_id, application_id, reserve_command_id, status, context,
    expires_at, upload_salt, version, stored_size, meta_file, meta_risk, meta_data,
    created_at, updated_at
FROM data_tokens ORDER BY rowid;

CREATE TABLE token_versions_v5 (
    token_seq    INTEGER NOT NULL REFERENCES data_tokens_v5 (seq),
    version      INTEGER NOT NULL,
    header       BLOB NOT NULL,
    digest       TEXT NOT NULL,
    total_size   INTEGER NOT NULL,
    chunk_count  INTEGER NOT NULL,
    committed    INTEGER NOT NULL,
    PRIMARY KEY (token_seq, version)
) WITHOUT ROWID;
INSERT INTO token_versions_v5
SELECT t.seq, v.version, v.header, v.digest, v.total_size, v.chunk_count, v.committed
FROM token_versions v JOIN data_tokens_v5 t ON t.token = v.token;

CREATE TABLE replicas_v5 (
    token_seq  INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    device_id  TEXT NOT NULL,
    state      TEXT NOT NULL,
    PRIMARY KEY (token_seq, version, device_id)
) WITHOUT ROWID;
INSERT INTO replicas_v5
SELECT t.seq, r.version, r.device_id, r.state
FROM replicas r JOIN data_tokens_v5 t ON t.token = r.token;

CREATE TABLE spool_v5 (
    token_seq    INTEGER NOT NULL,
    version      INTEGER NOT NULL,
    chunk_index  INTEGER NOT NULL,
    sealed       BLOB NOT NULL,
    PRIMARY KEY (token_seq, version, chunk_index)
);
INSERT INTO spool_v5
SELECT t.seq, s.version, s.chunk_index, s.sealed
FROM spool s JOIN data_tokens_v5 t ON t.token = s.token;

DROP TABLE spool;
DROP TABLE replicas;
DROP TABLE token_versions;
DROP TABLE data_tokens;
ALTER TABLE data_tokens_v5 RENAME TO data_tokens;
ALTER TABLE token_versions_v5 RENAME TO token_versions;
ALTER TABLE replicas_v5 RENAME TO replicas;
ALTER TABLE spool_v5 RENAME TO spool;

CREATE INDEX data_tokens_profile ON data_tokens (profile_id, status, created_at);
CREATE INDEX data_tokens_expiry ON data_tokens (expires_at) WHERE status = 'reserved';
CREATE INDEX replicas_device ON replicas (device_id);
