-- Directories, their memberships and invitations (docs/api/directory.md).
CREATE TABLE directories (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    name_key    TEXT NOT NULL,
    description TEXT,
    owner_id    TEXT NOT NULL REFERENCES profiles (id),
    meta        TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    UNIQUE (owner_id, name_key)
);

CREATE TABLE directory_members (
    directory_id TEXT NOT NULL REFERENCES directories (id),
    profile_id   TEXT NOT NULL REFERENCES profiles (id),
    role         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    status       TEXT NOT NULL,
    display_name TEXT,
    email        TEXT,
    attributes   TEXT NOT NULL,
    joined_at    INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (directory_id, profile_id)
);
CREATE INDEX directory_members_profile ON directory_members (profile_id);

CREATE TABLE directory_invitations (
    id           TEXT PRIMARY KEY,
    directory_id TEXT NOT NULL REFERENCES directories (id),
    invited_id   TEXT NOT NULL REFERENCES profiles (id),
    invited_by   TEXT NOT NULL REFERENCES profiles (id),
    role         TEXT NOT NULL,
    message      TEXT,
    status       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    processed_at INTEGER
);
CREATE INDEX directory_invitations_directory ON directory_invitations (directory_id, created_at);
CREATE INDEX directory_invitations_invited ON directory_invitations (invited_id, created_at);
