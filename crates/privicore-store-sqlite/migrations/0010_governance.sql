-- Governance (docs/api/voting-and-policy.md §1.2, §1.3, §5): when a device last gained the
-- authenticator role, each profile's voting defaults, named voting configurations and
-- policies. Names are unique per profile case-insensitively (`name_key` is the lower-cased
-- name); a deleted policy keeps its row, for the pools that name it, with `name_key` NULL so
-- the name is free again.
ALTER TABLE devices ADD COLUMN authenticator_registered_at INTEGER;

CREATE TABLE voting_defaults (
    profile_id          TEXT PRIMARY KEY REFERENCES profiles (id),
    strategy            TEXT NOT NULL,
    strategy_params     INTEGER NOT NULL,
    quorum_size         INTEGER NOT NULL,
    time_limit          INTEGER NOT NULL,
    number_of_attempts  INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE voting_configurations (
    id                   TEXT PRIMARY KEY,
    profile_id           TEXT NOT NULL REFERENCES profiles (id),
    name                 TEXT NOT NULL,
    name_key             TEXT NOT NULL,
    strategy             TEXT NOT NULL,
    percentage_required  INTEGER,
    time_limit           INTEGER NOT NULL,
    quorum_size          INTEGER,
    number_of_attempts   INTEGER,
    -- Comma-separated device identifiers; empty = every authenticator of the profile.
    device_ids           TEXT NOT NULL,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
);
CREATE UNIQUE INDEX voting_configurations_name ON voting_configurations (profile_id, name_key);
CREATE INDEX voting_configurations_profile ON voting_configurations (profile_id, created_at);

CREATE TABLE policies (
    id                       TEXT PRIMARY KEY,
    profile_id               TEXT NOT NULL REFERENCES profiles (id),
    name                     TEXT NOT NULL,
    name_key                 TEXT,
    description              TEXT,
    template_id              TEXT NOT NULL,
    -- Comma-separated event ids in ascending numeric order.
    event_ids                TEXT NOT NULL,
    -- A JSON object.
    configuration            TEXT NOT NULL,
    voting_configuration_id  TEXT REFERENCES voting_configurations (id),
    status                   TEXT NOT NULL,
    created_at               INTEGER NOT NULL,
    updated_at               INTEGER NOT NULL,
    activated_at             INTEGER,
    deactivated_at           INTEGER,
    deleted_at               INTEGER
);
CREATE UNIQUE INDEX policies_name ON policies (profile_id, name_key);
CREATE INDEX policies_profile ON policies (profile_id, status, created_at);
CREATE INDEX policies_voting_configuration ON policies (voting_configuration_id);
