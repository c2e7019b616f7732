-- A new ballot's seq is the highest one plus one: without an index on seq alone, finding
-- it read every ballot ever issued.
CREATE INDEX voting_ballots_by_seq ON voting_ballots (seq);
