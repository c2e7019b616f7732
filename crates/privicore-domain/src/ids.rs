//! Identifier newtypes. UUIDs are parsed case-insensitively and emitted in lower case.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! uuid_id {
    ($name:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                // Only the hyphenated form is accepted on the wire.
                if s.len() != 36 {
                    return Err(Uuid::parse_str("-").unwrap_err());
                }
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(CommandId, "A command id: UUID v7, time-sortable.");
uuid_id!(ProfileId, "A profile id: equals its register command id.");
uuid_id!(ChannelId, "A joined WebSocket channel: UUID v4.");
uuid_id!(
    VotingConfigurationId,
    "A voting configuration: equals its register command id."
);
uuid_id!(PolicyId, "A policy: equals its register command id.");
uuid_id!(
    PoolId,
    "A voting pool: UUID v7; a manual pool equals its create command id."
);
uuid_id!(BallotId, "One voter's ballot in one attempt: UUID v4.");

impl CommandId {
    pub fn new() -> Self {
        Self(Uuid::now_v7())
    }
}

impl Default for CommandId {
    fn default() -> Self {
        Self::new()
    }
}

impl ChannelId {
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }
}

impl Default for ChannelId {
    fn default() -> Self {
        Self::new()
    }
}

impl From<CommandId> for ProfileId {
    fn from(id: CommandId) -> Self {
        Self(id.0)
    }
}

impl From<CommandId> for VotingConfigurationId {
    fn from(id: CommandId) -> Self {
        Self(id.0)
    }
}

impl From<CommandId> for PolicyId {
    fn from(id: CommandId) -> Self {
        Self(id.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_parse_case_insensitively_and_print_lower() {
        let id: CommandId = "019C80D5-D7C0-76BB-95C4-43D783E8EFCB".parse().unwrap();
        assert_eq!(id.to_string(), "019c80d5-d7c0-76bb-95c4-43d783e8efcb");
        assert!(
            "019c80d5d7c076bb95c443d783e8efcb"
                .parse::<CommandId>()
                .is_err()
        );
        assert!("nope".parse::<CommandId>().is_err());
    }

    #[test]
    fn command_ids_are_v7_and_sortable() {
        let a = CommandId::new();
        let b = CommandId::new();
        assert_eq!(a.0.get_version_num(), 7);
        assert!(a <= b);
    }
}
