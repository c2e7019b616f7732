CREATE TABLE devices (
    id                       TEXT PRIMARY KEY,
    profile_id               TEXT NOT NULL REFERENCES profiles (id),
    request_command_id       TEXT NOT NULL UNIQUE,
    name                     TEXT NOT NULL,
    description              TEXT,
    status                   TEXT NOT NULL,
    roles                    TEXT NOT NULL,
    public_key               TEXT,
    meta                     TEXT NOT NULL,
    client_id                TEXT UNIQUE,
    client_secret_hash       TEXT,
    bus_password_hash        TEXT,
    created_at               INTEGER NOT NULL,
    approved_at              INTEGER,
    removed_at               INTEGER,
    configuration_issued_at  INTEGER,
    storage_registered_at    INTEGER
);
CREATE INDEX devices_profile ON devices (profile_id, created_at);

CREATE TABLE data_tokens (
    token               TEXT PRIMARY KEY,
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
CREATE INDEX data_tokens_profile ON data_tokens (profile_id, status, created_at);
CREATE INDEX data_tokens_expiry ON data_tokens (expires_at) WHERE status = 'reserved';

-- The authoritative layer-2 header of each stored version.
CREATE TABLE token_versions (
    token        TEXT NOT NULL REFERENCES data_tokens (token),
    version      INTEGER NOT NULL,
    header       BLOB NOT NULL,
    digest       TEXT NOT NULL,
    total_size   INTEGER NOT NULL,
    chunk_count  INTEGER NOT NULL,
    committed    INTEGER NOT NULL,
    PRIMARY KEY (token, version)
);

CREATE TABLE replicas (
    token      TEXT NOT NULL,
    version    INTEGER NOT NULL,
    device_id  TEXT NOT NULL,
    state      TEXT NOT NULL,
    PRIMARY KEY (token, version, device_id)
);
CREATE INDEX replicas_device ON replicas (device_id);

-- Layer-2 sealed chunks only: the client payload never reaches disk unsealed.
CREATE TABLE spool (
    token        TEXT NOT NULL,
    version      INTEGER NOT NULL,
    chunk_index  INTEGER NOT NULL,
    sealed       BLOB NOT NULL,
    PRIMARY KEY (token, version, chunk_index)
);

CREATE TABLE token_events (
    profile_id  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    context     TEXT NOT NULL,
    at          INTEGER NOT NULL
);
CREATE INDEX token_events_profile ON token_events (profile_id, at);
