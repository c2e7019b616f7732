-- OAuth applications, authorization requests and grants (docs/api/oauth.md).
CREATE TABLE oauth_applications (
    id                         TEXT PRIMARY KEY,
    profile_id                 TEXT NOT NULL REFERENCES profiles (id),
    name                       TEXT NOT NULL,
    name_key                   TEXT NOT NULL,
    description                TEXT,
    client_id                  TEXT NOT NULL UNIQUE,
    secret_hash                TEXT,
    redirect_uri               TEXT NOT NULL,
    scopes                     TEXT NOT NULL,
    created_at                 INTEGER NOT NULL,
    configuration_retrieved_at INTEGER,
    UNIQUE (profile_id, name_key)
);

CREATE TABLE oauth_requests (
    id             TEXT PRIMARY KEY,
    application_id TEXT NOT NULL REFERENCES oauth_applications (id),
    profile_id     TEXT NOT NULL REFERENCES profiles (id),
    nonce          TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    expires_at     INTEGER NOT NULL,
    code_hash      TEXT UNIQUE,
    exchanged_at   INTEGER,
    grant_id       TEXT,
    UNIQUE (application_id, nonce)
);

CREATE TABLE oauth_grants (
    id                 TEXT PRIMARY KEY,
    profile_id         TEXT NOT NULL REFERENCES profiles (id),
    application_id     TEXT NOT NULL REFERENCES oauth_applications (id),
    scopes             TEXT NOT NULL,
    access_hash        TEXT NOT NULL,
    refresh_hash       TEXT NOT NULL UNIQUE,
    refresh_expires_at INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    revoked_at         INTEGER
);
CREATE INDEX oauth_grants_application ON oauth_grants (application_id);

-- Refresh tokens already rotated away: presenting one again revokes its grant.
CREATE TABLE oauth_used_refresh (
    hash     TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL REFERENCES oauth_grants (id)
);
