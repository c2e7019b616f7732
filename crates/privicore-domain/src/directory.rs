//! Directories: organisations of profiles, their memberships and invitations
//! (docs/api/directory.md). The permission table of §1.3 lives here as one table that every
//! directory use case consults.

use crate::{Error, ProfileId, Reason, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

/// §1.1: free metadata is at most this many bytes serialized.
pub const META_MAX_BYTES: usize = 64 * 1024;

/// §1.2: removed memberships (and ended invitations) are kept this long, then purged.
pub const HISTORY_RETENTION_SECONDS: i64 = 90 * 24 * 3600;

/// Configurable limits (§1.1, §1.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirectoryLimits {
    pub owned_per_profile: u64,
    pub members_per_directory: u64,
    pub invitation_ttl_seconds: i64,
    /// How often the purge of §1.2 looks for history past its retention.
    pub purge_interval_ms: u64,
}

impl Default for DirectoryLimits {
    fn default() -> Self {
        Self {
            owned_per_profile: 20,
            members_per_directory: 10_000,
            invitation_ttl_seconds: 7 * 24 * 3600,
            purge_interval_ms: 60_000,
        }
    }
}

macro_rules! word_enum {
    ($name:ident { $($variant:ident => $text:literal),* $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),* }

        impl $name {
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),* }
            }

            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some(Self::$variant),)* _ => None }
            }
        }
    };
}

word_enum!(Role { Owner => "owner", Admin => "admin", Member => "member" });
word_enum!(Kind { Owner => "owner", Managed => "managed", Invited => "invited" });
word_enum!(MemberStatus { Active => "active", Suspended => "suspended", Removed => "removed" });
word_enum!(InvitationStatus {
    Pending => "pending",
    Accepted => "accepted",
    Declined => "declined",
    Expired => "expired",
});

/// §1.1.
#[derive(Debug, Clone, PartialEq)]
pub struct Directory {
    pub id: Uuid,
    pub name: String,
    pub description: Option<String>,
    pub owner: ProfileId,
    pub meta: Map<String, Value>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// The case-insensitive key under which directory names are unique per owner.
pub fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// §1.2.
#[derive(Debug, Clone, PartialEq)]
pub struct Membership {
    pub directory_id: Uuid,
    pub profile_id: ProfileId,
    pub role: Role,
    pub kind: Kind,
    pub status: MemberStatus,
    pub display_name: Option<String>,
    pub email: Option<String>,
    pub attributes: Map<String, Value>,
    pub joined_at: Timestamp,
    pub updated_at: Timestamp,
}

/// §1.6 invitation.
#[derive(Debug, Clone, PartialEq)]
pub struct Invitation {
    pub id: Uuid,
    pub directory_id: Uuid,
    pub invited: ProfileId,
    pub invited_by: ProfileId,
    pub role: Role,
    pub message: Option<String>,
    /// As stored; [`Invitation::status_at`] tells an expired pending one.
    pub status: InvitationStatus,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub processed_at: Option<Timestamp>,
}

impl Invitation {
    pub fn status_at(&self, now: Timestamp) -> InvitationStatus {
        if self.status == InvitationStatus::Pending && self.expires_at <= now {
            InvitationStatus::Expired
        } else {
            self.status
        }
    }
}

/// List directory users filters (§3.12).
#[derive(Debug, Clone, Default)]
pub struct MemberFilter {
    pub role: Option<Role>,
    pub kind: Option<Kind>,
    /// Empty: every status.
    pub statuses: Vec<MemberStatus>,
    pub username: Option<crate::data_token::Match>,
}

/// Whose invitations a list shows (§3.9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationScope {
    Directory(Uuid),
    Invitee(ProfileId),
}

/// The `counts` of a directory record (§1.6).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectoryCounts {
    /// Active members, the owner included.
    pub users: u64,
    pub managed_users: u64,
    pub invited_users: u64,
    pub pending_invitations: u64,
    /// Live devices of the directory's managed users.
    pub devices: u64,
}

/// What the member record and the readiness report tell of a profile (§1.6, §3.13).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProfileActivity {
    /// Live (not removed) devices.
    pub devices: u64,
    pub storage: u64,
    pub authenticators: u64,
    pub last_authenticated_at: Option<Timestamp>,
}

/// Directory changes; the conditional ones fail with `StoreError::Conflict` (rolling the
/// transaction back) when the state moved on.
#[derive(Debug, Clone)]
pub enum DirectoryEffect {
    /// Creates the directory and the owner's membership; conflict `directory.name_taken`.
    Create(Directory, Membership),
    SetMeta {
        directory_id: Uuid,
        meta: Map<String, Value>,
        at: Timestamp,
    },
    /// Inserts or replaces the membership.
    PutMember(Membership),
    /// Conflict `directory.invitation_pending` when one is pending for the profile.
    Invite(Invitation),
    /// Conflict `directory.invitation_not_pending` when it was processed before.
    Process {
        invitation_id: Uuid,
        status: InvitationStatus,
        at: Timestamp,
    },
    /// The profile's status (§1.2 effects on managed users).
    SetProfileStatus {
        profile_id: ProfileId,
        status: crate::profile::ProfileStatus,
    },
}

/// What a caller is to one directory, for the permission table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Standing {
    Owner,
    Admin,
    Member,
    /// Not a member, with a pending invitation.
    Invitee,
    /// No relation.
    Outsider,
    /// A suspended or removed membership: no rights.
    Suspended,
}

impl Standing {
    pub const ALL: [Standing; 6] = [
        Self::Owner,
        Self::Admin,
        Self::Member,
        Self::Invitee,
        Self::Outsider,
        Self::Suspended,
    ];

    pub fn of(membership: Option<&Membership>, invited: bool) -> Self {
        match membership {
            Some(m) if m.status == MemberStatus::Active => match m.role {
                Role::Owner => Self::Owner,
                Role::Admin => Self::Admin,
                Role::Member => Self::Member,
            },
            Some(_) => Self::Suspended,
            None if invited => Self::Invitee,
            None => Self::Outsider,
        }
    }
}

/// The actions of §1.3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Retrieve Directory, List directory users.
    Read,
    RetrieveOwnProfile,
    RetrieveOtherProfile,
    /// Create Directory User, Invite Profile, Set profile password.
    ManageUsers,
    UpdateOtherUser,
    /// Update user information on the own membership (`status: removed` = leave).
    Leave,
    ChangeRole,
    ListDirectoryInvites,
    /// List Directory Invites addressed to me, Process Invitation.
    AnswerInvitation,
    /// Directory profiles info, List directory devices.
    Report,
    /// Create profile device, Add storage device to profile (§1.4 authority).
    ManageDevices,
    CreateVotingPool,
    StoreMeta,
}

const Y: bool = true;
const N: bool = false;

/// §1.3, columns in [`Standing::ALL`] order: owner, admin, member, invitee, outsider,
/// suspended member.
pub const PERMISSIONS: &[(Action, [bool; 6])] = &[
    (Action::Read, [Y, Y, Y, N, N, N]),
    (Action::RetrieveOwnProfile, [Y, Y, Y, N, N, N]),
    (Action::RetrieveOtherProfile, [Y, Y, N, N, N, N]),
    (Action::ManageUsers, [Y, Y, N, N, N, N]),
    (Action::UpdateOtherUser, [Y, Y, N, N, N, N]),
    (Action::Leave, [N, Y, Y, N, N, N]),
    (Action::ChangeRole, [Y, N, N, N, N, N]),
    (Action::ListDirectoryInvites, [Y, Y, N, N, N, N]),
    (Action::AnswerInvitation, [N, N, N, Y, N, N]),
    (Action::Report, [Y, Y, N, N, N, N]),
    (Action::ManageDevices, [Y, Y, N, N, N, N]),
    (Action::CreateVotingPool, [Y, Y, N, N, N, N]),
    (Action::StoreMeta, [Y, Y, N, N, N, N]),
];

/// Whether `standing` may perform `action`.
pub fn allowed(action: Action, standing: Standing) -> bool {
    let column = Standing::ALL
        .iter()
        .position(|s| *s == standing)
        .expect("every standing has a column");
    PERMISSIONS
        .iter()
        .find(|(a, _)| *a == action)
        .is_some_and(|(_, row)| row[column])
}

/// [`allowed`], or 403 `directory.forbidden`.
pub fn require(action: Action, standing: Standing) -> Result<(), Error> {
    if allowed(action, standing) {
        Ok(())
    } else {
        Err(Reason::DirectoryForbidden.into())
    }
}

fn invalid_member(field: &str, message: &str) -> Error {
    Error::new(Reason::DirectoryInvalidMemberFields)
        .with_field(field)
        .with_message(message.to_owned())
}

/// §1.1 name: 1..100 characters after trimming.
pub fn check_name(name: &str) -> Result<String, Error> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::new(Reason::DirectoryInvalidName).with_field("name"));
    }
    Ok(name.to_owned())
}

/// §1.1 meta: an object of at most 64 KiB serialized.
pub fn check_meta(meta: &Value) -> Result<Map<String, Value>, Error> {
    let Value::Object(map) = meta else {
        return Err(Error::new(Reason::DirectoryInvalidMeta)
            .with_field("meta")
            .with_message("meta must be a JSON object.".to_owned()));
    };
    check_meta_size(map)?;
    Ok(map.clone())
}

pub fn check_meta_size(map: &Map<String, Value>) -> Result<(), Error> {
    let size = serde_json::to_vec(map)
        .map(|b| b.len())
        .unwrap_or(usize::MAX);
    if size > META_MAX_BYTES {
        return Err(Error::new(Reason::DirectoryInvalidMeta)
            .with_field("meta")
            .with_message(format!(
                "meta would be {size} bytes; at most {META_MAX_BYTES}."
            )));
    }
    Ok(())
}

/// §3.18: merges `patch` into `current` (a `null` value removes the key), or replaces.
pub fn merge_meta(
    current: &Map<String, Value>,
    patch: Map<String, Value>,
    replace: bool,
) -> Result<Map<String, Value>, Error> {
    let merged = if replace {
        patch
    } else {
        let mut out = current.clone();
        for (k, v) in patch {
            if v.is_null() {
                out.remove(&k);
            } else {
                out.insert(k, v);
            }
        }
        out
    };
    check_meta_size(&merged)?;
    Ok(merged)
}

/// §1.2 display name: 0..100 characters; empty clears.
pub fn check_display_name(value: &str) -> Result<Option<String>, Error> {
    let value = value.trim();
    if value.chars().count() > 100 {
        return Err(invalid_member(
            "displayName",
            "displayName is at most 100 characters.",
        ));
    }
    Ok((!value.is_empty()).then(|| value.to_owned()))
}

/// §1.2 email: 0..254 characters with one `@`; empty clears.
pub fn check_email(value: &str) -> Result<Option<String>, Error> {
    let value = value.trim();
    if value.is_empty() {
        return Ok(None);
    }
    let at = value.matches('@').count();
    let (local, domain) = value.split_once('@').unwrap_or(("", ""));
    if value.chars().count() > 254 || at != 1 || local.is_empty() || domain.is_empty() {
        return Err(invalid_member(
            "email",
            "email must be 1..254 characters with one @.",
        ));
    }
    Ok(Some(value.to_owned()))
}

/// §1.2 attributes: at most 32 string keys of 1..64 characters, string values of at most 256.
pub fn check_attributes(value: &Value) -> Result<Map<String, Value>, Error> {
    let Value::Object(map) = value else {
        return Err(invalid_member(
            "attributes",
            "attributes must be an object.",
        ));
    };
    if map.len() > 32 {
        return Err(invalid_member(
            "attributes",
            "attributes has at most 32 keys.",
        ));
    }
    for (k, v) in map {
        if k.is_empty() || k.chars().count() > 64 {
            return Err(invalid_member(
                "attributes",
                "attribute keys are 1..64 characters.",
            ));
        }
        match v {
            Value::String(s) if s.chars().count() <= 256 => {}
            _ => {
                return Err(invalid_member(
                    "attributes",
                    "attribute values are strings of at most 256 characters.",
                ));
            }
        }
    }
    Ok(map.clone())
}

/// A role a caller may give (`admin` or `member`); `owner` is never given.
pub fn parse_given_role(field: &str, text: &str) -> Result<Role, Error> {
    match Role::parse(text.trim()) {
        Some(r @ (Role::Admin | Role::Member)) => Ok(r),
        _ => Err(invalid_member(field, "role is admin or member.")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_action_has_one_row() {
        let mut seen = std::collections::HashSet::new();
        for (a, _) in PERMISSIONS {
            assert!(seen.insert(*a), "{a:?} twice");
        }
        assert_eq!(seen.len(), 13);
    }

    #[test]
    fn suspended_and_outsiders_have_no_rights() {
        for (a, _) in PERMISSIONS {
            assert!(!allowed(*a, Standing::Outsider), "{a:?}");
            assert!(!allowed(*a, Standing::Suspended), "{a:?}");
        }
        assert!(allowed(Action::AnswerInvitation, Standing::Invitee));
        assert!(!allowed(Action::Leave, Standing::Owner));
        assert!(!allowed(Action::ChangeRole, Standing::Admin));
    }

    #[test]
    fn meta_merges_and_caps() {
        let current = check_meta(&json!({"a": 1, "b": 2})).unwrap();
        let patch = check_meta(&json!({"a": null, "c": 3})).unwrap();
        assert_eq!(
            Value::Object(merge_meta(&current, patch.clone(), false).unwrap()),
            json!({"b": 2, "c": 3})
        );
        assert_eq!(
            Value::Object(merge_meta(&current, patch, true).unwrap()),
            json!({"a": null, "c": 3})
        );
        let big = json!({ "x": "y".repeat(META_MAX_BYTES) });
        assert_eq!(
            check_meta(&big).unwrap_err().reason,
            Reason::DirectoryInvalidMeta
        );
        assert_eq!(
            check_meta(&json!([1])).unwrap_err().reason,
            Reason::DirectoryInvalidMeta
        );
    }

    #[test]
    fn member_fields() {
        assert!(check_email("a@b").is_ok());
        assert!(check_email("a@@b").is_err());
        assert_eq!(check_email("").unwrap(), None);
        assert!(check_attributes(&json!({"team": "x"})).is_ok());
        assert!(check_attributes(&json!({"team": 1})).is_err());
        assert!(check_attributes(&json!({"": "x"})).is_err());
        assert!(parse_given_role("role", "owner").is_err());
        assert!(check_name("  ").is_err());
    }
}
