-- Removed memberships and ended invitations are purged 90 days after they ended
-- (docs/api/directory.md §1.2): the purge finds them by these indexes.
CREATE INDEX directory_members_removed ON directory_members (updated_at) WHERE status = 'removed';
CREATE INDEX directory_invitations_processed ON directory_invitations (processed_at)
    WHERE status <> 'pending';
CREATE INDEX directory_invitations_expiring ON directory_invitations (expires_at)
    WHERE status = 'pending';

-- Transactions made with an OAuth access token are counted for its application too
-- (docs/api/oauth.md §1.2); earlier ones have none.
ALTER TABLE token_events ADD COLUMN application_id TEXT;
