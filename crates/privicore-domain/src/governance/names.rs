//! Names of voting configurations and policies: wherever one is referenced, the id or the
//! name is accepted (docs/api/voting-and-policy.md §1.3), so a name must never read as an id.

use crate::{Error, Reason};
use uuid::Uuid;

/// 1..100 characters, at least one that is not whitespace, no control characters, and not
/// something that parses as a UUID in any of its notations.
pub fn check_name(name: &str, reason: Reason) -> Result<(), Error> {
    let length = name.chars().count();
    let ok = (1..=100).contains(&length)
        && !name.chars().any(char::is_control)
        && !name.trim().is_empty()
        && Uuid::parse_str(name.trim()).is_err();
    if ok {
        Ok(())
    } else {
        Err(Error::new(reason).with_field("name"))
    }
}

/// The key a name is unique under within its profile: names compare case-insensitively.
pub fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// How a request addresses a configuration or a policy: by id when the text is a
/// hyphenated UUID, else by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdOrName {
    Id(Uuid),
    Name(String),
}

impl IdOrName {
    pub fn parse(text: &str) -> Self {
        if text.len() == 36
            && let Ok(id) = Uuid::parse_str(text)
        {
            return Self::Id(id);
        }
        Self::Name(text.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_read_as_ids_or_carry_control_characters_are_refused() {
        let bad = |n: &str| check_name(n, Reason::PolicyInvalidName).is_err();
        assert!(!bad("exchange-approval"));
        assert!(!bad(&"x".repeat(100)));
        assert!(!bad("Ünïcode name"));
        assert!(bad(""));
        assert!(bad("   "));
        assert!(bad(&"x".repeat(101)));
        assert!(bad("tab\there"));
        assert!(bad("019c80d6-32cb-76f2-b6dc-e3faeb77ae43"));
        assert!(bad("019C80D6-32CB-76F2-B6DC-E3FAEB77AE43"));
        assert!(bad("019c80d632cb76f2b6dce3faeb77ae43"));
        assert!(bad("{019c80d6-32cb-76f2-b6dc-e3faeb77ae43}"));
        assert_eq!(
            check_name("", Reason::VotingConfigurationInvalidName)
                .unwrap_err()
                .reason,
            Reason::VotingConfigurationInvalidName
        );
    }

    #[test]
    fn names_compare_without_case() {
        assert_eq!(
            name_key("Exchange-Approvers"),
            name_key("exchange-APPROVERS")
        );
    }

    #[test]
    fn an_address_is_an_id_only_in_hyphenated_form() {
        let id = "019C80D6-32CB-76F2-B6DC-E3FAEB77AE43";
        assert_eq!(
            IdOrName::parse(id),
            IdOrName::Id(Uuid::parse_str(id).unwrap())
        );
        assert_eq!(
            IdOrName::parse("approvers"),
            IdOrName::Name("approvers".into())
        );
        assert!(matches!(
            IdOrName::parse("019c80d632cb76f2b6dce3faeb77ae43"),
            IdOrName::Name(_)
        ));
    }
}
