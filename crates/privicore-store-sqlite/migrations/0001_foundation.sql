-- Command log: persisted before the 202, finished exactly once.
CREATE TABLE commands (
    id             TEXT PRIMARY KEY,
    profile_id     TEXT NOT NULL,
    application_id TEXT,
    kind           TEXT NOT NULL,
    payload        TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    outcome        TEXT,
    created_at     INTEGER NOT NULL,
    finished_at    INTEGER
);
CREATE INDEX commands_pending ON commands (created_at) WHERE status = 'pending';
CREATE INDEX commands_finished ON commands (finished_at) WHERE status <> 'pending';

CREATE TABLE profiles (
    id                        TEXT PRIMARY KEY,
    username                  TEXT NOT NULL,
    username_key              TEXT NOT NULL UNIQUE,
    kind                      TEXT NOT NULL,
    status                    TEXT NOT NULL,
    password_hash             TEXT,
    public_key                TEXT,
    public_key_registered_at  INTEGER,
    created_at                INTEGER NOT NULL
);

-- Secrets are stored only as SHA-256 digests (hex).
CREATE TABLE auth_tokens (
    hash           TEXT PRIMARY KEY,
    profile_id     TEXT NOT NULL REFERENCES profiles (id),
    application_id TEXT,
    scopes         TEXT NOT NULL,
    issued_at      INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    revoked_at     INTEGER
);
CREATE INDEX auth_tokens_profile ON auth_tokens (profile_id);
CREATE INDEX auth_tokens_expiry ON auth_tokens (expires_at);

CREATE TABLE qr_tokens (
    profile_id  TEXT PRIMARY KEY REFERENCES profiles (id),
    hash        TEXT NOT NULL UNIQUE,
    expires_at  INTEGER NOT NULL
);

CREATE TABLE engine_keys (
    key_id      TEXT PRIMARY KEY,
    private_hex TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
