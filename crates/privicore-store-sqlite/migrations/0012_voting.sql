-- Voting (docs/api/voting-and-policy.md §1.4, §2): pools with their snapshotted rules,
-- attempts with their own deadlines, ballots with the vote they took, and the commands held
-- for a vote. A pool's full record (rules, event, attributes) is kept as JSON in `body`;
-- the columns are what the engine looks pools up by.
CREATE TABLE voting_pools (
    id          TEXT PRIMARY KEY,
    profile_id  TEXT NOT NULL,
    command_id  TEXT,
    status      TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX voting_pools_by_command ON voting_pools (command_id) WHERE command_id IS NOT NULL;
CREATE INDEX voting_pools_open ON voting_pools (created_at) WHERE status = 'open';

CREATE TABLE voting_attempts (
    pool_id    TEXT NOT NULL REFERENCES voting_pools (id),
    number     INTEGER NOT NULL,
    status     TEXT NOT NULL,
    opened_at  INTEGER NOT NULL,
    deadline   INTEGER NOT NULL,
    closed_at  INTEGER,
    PRIMARY KEY (pool_id, number)
);

CREATE TABLE voting_ballots (
    id          TEXT PRIMARY KEY,
    pool_id     TEXT NOT NULL REFERENCES voting_pools (id),
    profile_id  TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    device_id   TEXT NOT NULL,
    issued_at   INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    decision    TEXT,
    voted_at    INTEGER,
    channel     TEXT,
    withdrawn   TEXT
);
CREATE INDEX voting_ballots_by_pool ON voting_ballots (pool_id, seq);
CREATE INDEX voting_ballots_pending ON voting_ballots (device_id, seq)
    WHERE decision IS NULL AND withdrawn IS NULL;

CREATE TABLE held_commands (
    command_id  TEXT PRIMARY KEY,
    profile_id  TEXT NOT NULL,
    held_at     INTEGER NOT NULL,
    released_at INTEGER,
    outcome     TEXT
);
CREATE INDEX held_commands_unreleased ON held_commands (held_at) WHERE released_at IS NULL;
