-- The metadata schema of SQLite migrations 0001-0015 as PostgreSQL has it. Identifiers
-- stay in their domain text form (UUIDs, `dtk-` tokens, hex digests of secrets), times
-- are the domain's unix seconds (BIGINT), sealed bytes and MACs are BYTEA. Keys that the
-- SQLite adapter computed as MAX(..) + 1 under its single writer are identity columns.

-- Command log: persisted before the 202, finished exactly once.
-- Ids are UUID v7 text compared by bytes (the purge ranges over them), whatever the
-- database's collation.
CREATE TABLE commands (
    id             TEXT COLLATE "C" PRIMARY KEY,
    profile_id     TEXT NOT NULL,
    application_id TEXT,
    kind           TEXT NOT NULL,
    payload        TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    outcome        TEXT,
    created_at     BIGINT NOT NULL,
    finished_at    BIGINT
);
CREATE INDEX commands_pending ON commands (created_at) WHERE status = 'pending';

CREATE TABLE profiles (
    id                        TEXT PRIMARY KEY,
    username                  TEXT NOT NULL,
    username_key              TEXT NOT NULL UNIQUE,
    kind                      TEXT NOT NULL,
    status                    TEXT NOT NULL,
    password_hash             TEXT,
    public_key                TEXT,
    public_key_registered_at  BIGINT,
    created_at                BIGINT NOT NULL
);

-- Secrets are stored only as SHA-256 digests (hex).
CREATE TABLE auth_tokens (
    hash           TEXT PRIMARY KEY,
    profile_id     TEXT NOT NULL REFERENCES profiles (id),
    application_id TEXT,
    scopes         TEXT NOT NULL,
    issued_at      BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    revoked_at     BIGINT
);
CREATE INDEX auth_tokens_profile ON auth_tokens (profile_id);
CREATE INDEX auth_tokens_expiry ON auth_tokens (expires_at);

CREATE TABLE qr_tokens (
    profile_id  TEXT PRIMARY KEY REFERENCES profiles (id),
    hash        TEXT NOT NULL UNIQUE,
    expires_at  BIGINT NOT NULL
);

CREATE TABLE engine_keys (
    key_id      TEXT PRIMARY KEY,
    private_hex TEXT NOT NULL,
    public_key  TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);

CREATE TABLE devices (
    id                          TEXT PRIMARY KEY,
    profile_id                  TEXT NOT NULL REFERENCES profiles (id),
    request_command_id          TEXT NOT NULL UNIQUE,
    name                        TEXT NOT NULL,
    description                 TEXT,
    status                      TEXT NOT NULL,
    roles                       TEXT NOT NULL,
    public_key                  TEXT,
    meta                        TEXT NOT NULL,
    client_id                   TEXT UNIQUE,
    client_secret_hash          TEXT,
    bus_password_hash           TEXT,
    created_at                  BIGINT NOT NULL,
    approved_at                 BIGINT,
    removed_at                  BIGINT,
    configuration_issued_at     BIGINT,
    storage_registered_at       BIGINT,
    last_sync_id                TEXT,
    last_sync_status            TEXT,
    last_sync_started_at        BIGINT,
    last_sync_finished_at       BIGINT,
    authenticator_registered_at BIGINT
);
CREATE INDEX devices_profile ON devices (profile_id, created_at);

-- Versions, replicas and spool chunks are keyed by the token's `seq`, which grows with
-- reservation time.
CREATE TABLE data_tokens (
    seq                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    token               TEXT NOT NULL UNIQUE,
    profile_id          TEXT NOT NULL REFERENCES profiles (id),
    application_id      TEXT,
    reserve_command_id  TEXT NOT NULL UNIQUE,
    status              TEXT NOT NULL,
    context             TEXT NOT NULL,
    expires_at          BIGINT,
    upload_salt         TEXT,
    version             BIGINT,
    stored_size         BIGINT,
    -- JSON objects, kept as the engine wrote them.
    meta_file           TEXT,
    meta_risk           TEXT,
    meta_data           TEXT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);
CREATE INDEX data_tokens_profile ON data_tokens (profile_id, status, created_at);
CREATE INDEX data_tokens_expiry ON data_tokens (expires_at) WHERE status = 'reserved';
CREATE INDEX data_tokens_exchanging ON data_tokens (status) WHERE status = 'exchanging';

-- The authoritative layer-2 header of each stored version.
CREATE TABLE token_versions (
    token_seq    BIGINT NOT NULL REFERENCES data_tokens (seq),
    version      BIGINT NOT NULL,
    header       BYTEA NOT NULL,
    digest       TEXT NOT NULL,
    total_size   BIGINT NOT NULL,
    chunk_count  BIGINT NOT NULL,
    committed    BOOLEAN NOT NULL,
    PRIMARY KEY (token_seq, version)
);

CREATE TABLE replicas (
    token_seq  BIGINT NOT NULL,
    version    BIGINT NOT NULL,
    device_id  TEXT NOT NULL,
    state      TEXT NOT NULL,
    PRIMARY KEY (token_seq, version, device_id)
);
CREATE INDEX replicas_device ON replicas (device_id);

-- Layer-2 sealed chunks only: the client payload never reaches the database unsealed.
CREATE TABLE spool (
    token_seq    BIGINT NOT NULL,
    version      BIGINT NOT NULL,
    chunk_index  BIGINT NOT NULL,
    sealed       BYTEA NOT NULL,
    spooled_at   BIGINT NOT NULL,
    PRIMARY KEY (token_seq, version, chunk_index)
);

CREATE TABLE token_events (
    profile_id  TEXT NOT NULL,
    kind        TEXT NOT NULL,
    context     TEXT NOT NULL,
    at          BIGINT NOT NULL
);
CREATE INDEX token_events_at ON token_events (at, profile_id);

-- Idempotency-Key memory (docs/api/README.md §4.7).
CREATE TABLE idempotency_slots (
    scope      TEXT NOT NULL,
    path       TEXT NOT NULL,
    key        TEXT NOT NULL,
    body_hash  BYTEA NOT NULL,
    reply      TEXT,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (scope, path, key)
);
CREATE INDEX idempotency_slots_created ON idempotency_slots (created_at);

-- Durable throttle counters (docs/api/README.md §3.5).
CREATE TABLE throttle_counters (
    key        TEXT PRIMARY KEY,
    count      BIGINT NOT NULL,
    window_end BIGINT NOT NULL,
    last_at    BIGINT NOT NULL
);
CREATE INDEX throttle_counters_window_end ON throttle_counters (window_end);

-- Governance (docs/api/voting-and-policy.md §1.2, §1.3, §5).
CREATE TABLE voting_defaults (
    profile_id          TEXT PRIMARY KEY REFERENCES profiles (id),
    strategy            TEXT NOT NULL,
    strategy_params     BIGINT NOT NULL,
    quorum_size         BIGINT NOT NULL,
    time_limit          BIGINT NOT NULL,
    number_of_attempts  BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

CREATE TABLE voting_configurations (
    id                   TEXT PRIMARY KEY,
    profile_id           TEXT NOT NULL REFERENCES profiles (id),
    name                 TEXT NOT NULL,
    name_key             TEXT NOT NULL,
    strategy             TEXT NOT NULL,
    percentage_required  BIGINT,
    time_limit           BIGINT NOT NULL,
    quorum_size          BIGINT,
    number_of_attempts   BIGINT,
    -- Comma-separated device identifiers; empty = every authenticator of the profile.
    device_ids           TEXT NOT NULL,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
CREATE UNIQUE INDEX voting_configurations_name ON voting_configurations (profile_id, name_key);
CREATE INDEX voting_configurations_profile ON voting_configurations (profile_id, created_at);

CREATE TABLE policies (
    id                       TEXT PRIMARY KEY,
    profile_id               TEXT NOT NULL REFERENCES profiles (id),
    name                     TEXT NOT NULL,
    -- NULL once deleted, so the name is free again.
    name_key                 TEXT,
    description              TEXT,
    template_id              TEXT NOT NULL,
    event_ids                TEXT NOT NULL,
    configuration            TEXT NOT NULL,
    voting_configuration_id  TEXT REFERENCES voting_configurations (id),
    status                   TEXT NOT NULL,
    created_at               BIGINT NOT NULL,
    updated_at               BIGINT NOT NULL,
    activated_at             BIGINT,
    deactivated_at           BIGINT,
    deleted_at               BIGINT
);
CREATE UNIQUE INDEX policies_name ON policies (profile_id, name_key);
CREATE INDEX policies_profile ON policies (profile_id, status, created_at);
CREATE INDEX policies_voting_configuration ON policies (voting_configuration_id);

-- The audit log of governance decisions (docs/audit.md) and its sealed head.
CREATE TABLE audit_log (
    seq        BIGINT PRIMARY KEY,
    at         BIGINT NOT NULL,
    profile_id TEXT,
    kind       TEXT NOT NULL,
    actor      TEXT NOT NULL,
    subject    TEXT NOT NULL,
    outcome    TEXT NOT NULL,
    details    TEXT NOT NULL,
    prev_hash  BYTEA NOT NULL,
    hash       BYTEA NOT NULL
);
CREATE TABLE audit_head (
    id   BIGINT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    mac  BYTEA NOT NULL
);
-- The triggers stop mistakes, not an attacker; the MACs are what an attacker cannot get past.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit records are append-only';
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();

-- Voting (docs/api/voting-and-policy.md §1.4, §2).
CREATE TABLE voting_pools (
    id          TEXT PRIMARY KEY,
    profile_id  TEXT NOT NULL,
    command_id  TEXT,
    status      TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX voting_pools_by_command ON voting_pools (command_id) WHERE command_id IS NOT NULL;
CREATE INDEX voting_pools_open ON voting_pools (created_at) WHERE status = 'open';

CREATE TABLE voting_attempts (
    pool_id    TEXT NOT NULL REFERENCES voting_pools (id),
    number     BIGINT NOT NULL,
    status     TEXT NOT NULL,
    opened_at  BIGINT NOT NULL,
    deadline   BIGINT NOT NULL,
    closed_at  BIGINT,
    PRIMARY KEY (pool_id, number)
);

CREATE TABLE voting_ballots (
    id          TEXT PRIMARY KEY,
    pool_id     TEXT NOT NULL REFERENCES voting_pools (id),
    profile_id  TEXT NOT NULL,
    attempt     BIGINT NOT NULL,
    device_id   TEXT NOT NULL,
    issued_at   BIGINT NOT NULL,
    -- Issue order across engines: a sequence, not MAX(seq) + 1.
    seq         BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    decision    TEXT,
    voted_at    BIGINT,
    channel     TEXT,
    withdrawn   TEXT
);
CREATE INDEX voting_ballots_by_pool ON voting_ballots (pool_id, seq);
CREATE INDEX voting_ballots_pending ON voting_ballots (device_id, seq)
    WHERE decision IS NULL AND withdrawn IS NULL;

CREATE TABLE held_commands (
    command_id  TEXT PRIMARY KEY,
    profile_id  TEXT NOT NULL,
    held_at     BIGINT NOT NULL,
    released_at BIGINT,
    outcome     TEXT
);
CREATE INDEX held_commands_unreleased ON held_commands (held_at) WHERE released_at IS NULL;

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
    created_at                 BIGINT NOT NULL,
    configuration_retrieved_at BIGINT,
    UNIQUE (profile_id, name_key)
);

CREATE TABLE oauth_requests (
    id             TEXT PRIMARY KEY,
    application_id TEXT NOT NULL REFERENCES oauth_applications (id),
    profile_id     TEXT NOT NULL REFERENCES profiles (id),
    nonce          TEXT NOT NULL,
    scopes         TEXT NOT NULL,
    expires_at     BIGINT NOT NULL,
    code_hash      TEXT UNIQUE,
    exchanged_at   BIGINT,
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
    refresh_expires_at BIGINT NOT NULL,
    created_at         BIGINT NOT NULL,
    revoked_at         BIGINT
);
CREATE INDEX oauth_grants_application ON oauth_grants (application_id);
CREATE INDEX oauth_grants_profile ON oauth_grants (profile_id);

-- Refresh tokens already rotated away: presenting one again revokes its grant.
CREATE TABLE oauth_used_refresh (
    hash     TEXT PRIMARY KEY,
    grant_id TEXT NOT NULL REFERENCES oauth_grants (id)
);

-- Directories, their memberships and invitations (docs/api/directory.md).
CREATE TABLE directories (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    name_key    TEXT NOT NULL,
    description TEXT,
    owner_id    TEXT NOT NULL REFERENCES profiles (id),
    meta        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
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
    joined_at    BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
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
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    processed_at BIGINT
);
CREATE INDEX directory_invitations_directory ON directory_invitations (directory_id, created_at);
CREATE INDEX directory_invitations_invited ON directory_invitations (invited_id, created_at);
