//! Policies (docs/api/voting-and-policy.md §3, §5): which events of a profile are held for a
//! vote, validated against the template catalogue, and configuration matching (§3.2).

use super::names::{check_name, name_key};
use super::templates::{self, Template};
use crate::ids::{PolicyId, VotingConfigurationId};
use crate::{Error, ProfileId, Reason, Timestamp};
use serde_json::{Map, Value};
use uuid::Uuid;

/// Longest configuration value (§3.2).
pub const MAX_CONFIGURATION_VALUE: usize = 512;
/// Longest policy description (§5.2).
pub const MAX_DESCRIPTION: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyStatus {
    Active,
    Inactive,
    /// Kept so that pools it opened keep naming it; invisible to every endpoint, its name
    /// free again.
    Deleted,
}

impl PolicyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
            Self::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Active, Self::Inactive, Self::Deleted]
            .into_iter()
            .find(|v| v.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub id: PolicyId,
    pub profile_id: ProfileId,
    pub name: String,
    pub description: Option<String>,
    pub template_id: String,
    /// Ascending numeric order, no duplicates.
    pub event_ids: Vec<String>,
    pub configuration: Map<String, Value>,
    /// `None` = the profile's voting defaults.
    pub voting_configuration_id: Option<VotingConfigurationId>,
    pub status: PolicyStatus,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub activated_at: Option<Timestamp>,
    pub deactivated_at: Option<Timestamp>,
    pub deleted_at: Option<Timestamp>,
}

impl Policy {
    /// The case-insensitive key its name is unique under; `None` once deleted (the name is
    /// free again).
    pub fn name_key(&self) -> Option<String> {
        (self.status != PolicyStatus::Deleted).then(|| name_key(&self.name))
    }

    pub fn template(&self) -> Option<&'static Template> {
        templates::template(&self.template_id)
    }

    /// Whether this policy holds the event (§2.2 step 2): active, listing the event, and
    /// its configuration matching the event's attributes.
    pub fn holds(&self, event_id: &str, attributes: &EventAttributes) -> bool {
        self.status == PolicyStatus::Active
            && self.event_ids.iter().any(|e| e == event_id)
            && configuration_matches(&self.configuration, event_id, attributes)
    }
}

pub fn check_policy_name(name: &str) -> Result<(), Error> {
    check_name(name, Reason::PolicyInvalidName)
}

pub fn check_description(description: &str) -> Result<(), Error> {
    if description.chars().count() > MAX_DESCRIPTION {
        return Err(Error::out_of_range(
            "description",
            format!("0..{MAX_DESCRIPTION} characters"),
        ));
    }
    Ok(())
}

/// `<template name> <first 8 characters of the policy id>` (§5.2). `longer` steps to 13
/// characters and then the whole id, for when the short form is taken.
pub fn default_name(template: &Template, id: PolicyId, longer: usize) -> String {
    let text = id.to_string();
    let chars = match longer {
        0 => 8,
        1 => 13,
        _ => text.len(),
    };
    format!("{} {}", template.name, &text[..chars])
}

/// A template id as sent: a string or a number (§5.2).
pub fn check_template(id: &Value) -> Result<&'static Template, Error> {
    let text = match id {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    templates::template(&text)
        .ok_or_else(|| Error::new(Reason::PolicyTemplateNotFound).with_field("policyTemplateId"))
}

/// Event ids as sent (strings or numbers): each a key of the template's events. Returned
/// deduplicated in ascending numeric order.
pub fn check_events(template: &Template, ids: &[Value]) -> Result<Vec<String>, Error> {
    if ids.is_empty() {
        return Err(Error::missing("applyingEventIds"));
    }
    let mut out: Vec<&'static str> = Vec::new();
    for id in ids {
        let text = match id {
            Value::String(s) => s.trim().to_owned(),
            Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        let event = template.event(&text).ok_or_else(|| {
            Error::new(Reason::PolicyInvalidEvent)
                .with_field("applyingEventIds")
                .with_message(format!(
                    "Event {text:?} is not an event of template {}.",
                    template.id
                ))
        })?;
        if !out.contains(&event.id) {
            out.push(event.id);
        }
    }
    out.sort_by_key(|id| id.parse::<u32>().unwrap_or(u32::MAX));
    Ok(out.into_iter().map(str::to_owned).collect())
}

/// A configuration (§3.2): a non-empty object whose keys all come from the template, with
/// non-empty string values of at most 512 characters. `scope` must be `profile`; a
/// `directoryId` is a UUID (kept in lower case) and a `clientId` an OAuth client id, since
/// nothing else could ever match.
pub fn check_configuration(
    template: &Template,
    value: &Value,
) -> Result<Map<String, Value>, Error> {
    let invalid = |message: String| {
        Error::new(Reason::PolicyInvalidConfiguration)
            .with_field("configuration")
            .with_message(message)
    };
    let Value::Object(map) = value else {
        return Err(invalid("The configuration must be an object.".into()));
    };
    if map.is_empty() {
        return Err(invalid("The configuration must not be empty.".into()));
    }
    let mut out = Map::new();
    for (key, v) in map {
        if !template.configuration.contains(&key.as_str()) {
            return Err(invalid(format!(
                "Template {} takes the configuration keys {}.",
                template.id,
                template.configuration.join(", ")
            )));
        }
        let Some(text) = v.as_str().filter(|s| !s.is_empty()) else {
            return Err(invalid(format!("{key} must be a non-empty string.")));
        };
        if text.chars().count() > MAX_CONFIGURATION_VALUE {
            return Err(invalid(format!(
                "{key} has at most {MAX_CONFIGURATION_VALUE} characters."
            )));
        }
        let kept = match key.as_str() {
            "scope" if text != "profile" => {
                return Err(invalid("scope must be \"profile\".".into()));
            }
            "directoryId" => match Uuid::parse_str(text) {
                Ok(id) if text.len() == 36 => id.hyphenated().to_string(),
                _ => return Err(invalid("directoryId must be a directory id.".into())),
            },
            "clientId" if !is_client_id(text) => {
                return Err(invalid("clientId must be an OAuth client id.".into()));
            }
            _ => text.to_owned(),
        };
        out.insert(key.clone(), Value::String(kept));
    }
    Ok(out)
}

/// `oauth-` + 32 lowercase hex characters.
fn is_client_id(text: &str) -> bool {
    text.strip_prefix("oauth-").is_some_and(|hex| {
        hex.len() == 32
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// What an event tells about itself for configuration matching.
#[derive(Debug, Clone, Default)]
pub struct EventAttributes {
    /// The data token's context (templates 1–3).
    pub context: Option<String>,
    /// The token's `meta.information_security_risk` group, if any.
    pub risk: Option<Value>,
    /// The client id of the application concerned (template 6); `None` before it has one.
    pub client_id: Option<String>,
    /// The directory concerned (template 10).
    pub directory_id: Option<String>,
}

/// Configuration matching (§3.2): every key must match.
pub fn configuration_matches(
    configuration: &Map<String, Value>,
    event_id: &str,
    attributes: &EventAttributes,
) -> bool {
    configuration.iter().all(|(key, value)| {
        let Some(wanted) = value.as_str() else {
            return false;
        };
        match key.as_str() {
            "scope" => wanted == "profile",
            // An event without a token context (none is expected for these templates)
            // matches: fail closed.
            "context" => {
                attributes
                    .context
                    .as_deref()
                    .is_none_or(|context| match wanted.strip_suffix('*') {
                        Some(prefix) => context.starts_with(prefix),
                        None => context == wanted,
                    })
            }
            "classification" | "label" | "handling" => {
                let field = attributes
                    .risk
                    .as_ref()
                    .and_then(|r| r.get(key))
                    .and_then(Value::as_str);
                // A token without the field matches (fail closed).
                field.is_none_or(|v| wanted == "*" || v.to_lowercase() == wanted.to_lowercase())
            }
            "clientId" => {
                event_id == "601" || attributes.client_id.as_deref().is_some_and(|c| c == wanted)
            }
            "directoryId" => attributes
                .directory_id
                .as_deref()
                .is_some_and(|d| d.eq_ignore_ascii_case(wanted)),
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    fn token(context: &str, risk: Option<Value>) -> EventAttributes {
        EventAttributes {
            context: Some(context.into()),
            risk,
            ..EventAttributes::default()
        }
    }

    #[test]
    fn templates_accept_numbers_and_strings() {
        assert_eq!(check_template(&json!("1")).unwrap().id, "1");
        assert_eq!(check_template(&json!(10)).unwrap().id, "10");
        for bad in [
            json!("11"),
            json!("01"),
            json!("x"),
            json!(null),
            json!([1]),
        ] {
            assert_eq!(
                check_template(&bad).unwrap_err().reason,
                Reason::PolicyTemplateNotFound
            );
        }
    }

    #[test]
    fn events_must_belong_to_the_template_and_come_back_sorted() {
        let t = templates::template("1").unwrap();
        assert_eq!(
            check_events(t, &[json!("103"), json!(101), json!("101")]).unwrap(),
            vec!["101", "103"]
        );
        assert_eq!(
            check_events(t, &[json!("201")]).unwrap_err().reason,
            Reason::PolicyInvalidEvent
        );
        assert_eq!(
            check_events(t, &[]).unwrap_err().reason,
            Reason::ValidationMissingField
        );
        let ten = templates::template("10").unwrap();
        assert_eq!(
            check_events(ten, &[json!("1006"), json!("1002")]).unwrap(),
            vec!["1002", "1006"]
        );
    }

    #[test]
    fn configurations_use_the_template_keys_with_short_non_empty_strings() {
        let t = templates::template("1").unwrap();
        let ok = check_configuration(t, &json!({ "scope": "profile", "context": "/finance/*" }));
        assert_eq!(ok.unwrap().len(), 2);
        for bad in [
            json!({}),
            json!("scope"),
            json!({ "scope": "everyone" }),
            json!({ "clientId": "oauth-0123456789abcdef0123456789abcdef" }),
            json!({ "context": "" }),
            json!({ "context": 5 }),
            json!({ "context": "x".repeat(513) }),
        ] {
            assert_eq!(
                check_configuration(t, &bad).unwrap_err().reason,
                Reason::PolicyInvalidConfiguration,
                "{bad}"
            );
        }
        assert!(check_configuration(t, &json!({ "context": "x".repeat(512) })).is_ok());
        let six = templates::template("6").unwrap();
        assert!(
            check_configuration(
                six,
                &json!({ "clientId": "oauth-0123456789abcdef0123456789abcdef" })
            )
            .is_ok()
        );
        assert!(check_configuration(six, &json!({ "clientId": "my-app" })).is_err());
        let ten = templates::template("10").unwrap();
        let kept = check_configuration(
            ten,
            &json!({ "directoryId": "019C80D6-32CB-76F2-B6DC-E3FAEB77AE43" }),
        )
        .unwrap();
        assert_eq!(kept["directoryId"], "019c80d6-32cb-76f2-b6dc-e3faeb77ae43");
        assert!(check_configuration(ten, &json!({ "directoryId": "finance" })).is_err());
    }

    #[test]
    fn context_matches_exactly_or_by_prefix() {
        let exact = config(json!({ "context": "/finance/2026" }));
        assert!(configuration_matches(
            &exact,
            "101",
            &token("/finance/2026", None)
        ));
        assert!(!configuration_matches(
            &exact,
            "101",
            &token("/finance/2027", None)
        ));
        let prefix = config(json!({ "context": "/finance/*" }));
        assert!(configuration_matches(
            &prefix,
            "101",
            &token("/finance/2026", None)
        ));
        assert!(!configuration_matches(
            &prefix,
            "101",
            &token("/hr/2026", None)
        ));
        let scope = config(json!({ "scope": "profile" }));
        assert!(configuration_matches(
            &scope,
            "401",
            &EventAttributes::default()
        ));
    }

    #[test]
    fn risk_keys_compare_without_case_and_fail_closed() {
        let c = config(json!({ "classification": "Confidential" }));
        let confidential = Some(json!({ "classification": "confidential", "label": null }));
        let public = Some(json!({ "classification": "public" }));
        assert!(configuration_matches(&c, "201", &token("/a", confidential)));
        assert!(!configuration_matches(
            &c,
            "201",
            &token("/a", public.clone())
        ));
        // Without risk metadata, or without the field: held.
        assert!(configuration_matches(&c, "101", &token("/a", None)));
        assert!(configuration_matches(
            &c,
            "201",
            &token("/a", Some(json!({ "label": "x" })))
        ));
        let any = config(json!({ "classification": "*" }));
        assert!(configuration_matches(&any, "201", &token("/a", public)));
        // All keys must match.
        let both = config(json!({ "context": "/finance/*", "classification": "secret" }));
        let secret = Some(json!({ "classification": "SECRET" }));
        assert!(configuration_matches(
            &both,
            "201",
            &token("/finance/x", secret.clone())
        ));
        assert!(!configuration_matches(
            &both,
            "201",
            &token("/hr/x", secret)
        ));
    }

    #[test]
    fn client_and_directory_ids() {
        let c = config(json!({ "clientId": "oauth-0123456789abcdef0123456789abcdef" }));
        let app = |id: &str| EventAttributes {
            client_id: Some(id.into()),
            ..EventAttributes::default()
        };
        assert!(configuration_matches(
            &c,
            "601",
            &EventAttributes::default()
        ));
        assert!(configuration_matches(
            &c,
            "602",
            &app("oauth-0123456789abcdef0123456789abcdef")
        ));
        assert!(!configuration_matches(
            &c,
            "602",
            &app("oauth-ffffffffffffffffffffffffffffffff")
        ));
        assert!(!configuration_matches(
            &c,
            "602",
            &EventAttributes::default()
        ));
        let d = config(json!({ "directoryId": "019c80d6-32cb-76f2-b6dc-e3faeb77ae43" }));
        let dir = EventAttributes {
            directory_id: Some("019C80D6-32CB-76F2-B6DC-E3FAEB77AE43".into()),
            ..EventAttributes::default()
        };
        assert!(configuration_matches(&d, "1001", &dir));
        assert!(!configuration_matches(
            &d,
            "1001",
            &EventAttributes::default()
        ));
    }

    #[test]
    fn only_active_policies_listing_the_event_hold_it() {
        let now = Timestamp::now();
        let mut p = Policy {
            id: PolicyId(Uuid::now_v7()),
            profile_id: ProfileId(Uuid::now_v7()),
            name: "exchange-approval".into(),
            description: None,
            template_id: "1".into(),
            event_ids: vec!["101".into()],
            configuration: config(json!({ "scope": "profile" })),
            voting_configuration_id: None,
            status: PolicyStatus::Inactive,
            created_at: now,
            updated_at: now,
            activated_at: None,
            deactivated_at: None,
            deleted_at: None,
        };
        let attrs = token("/a", None);
        assert!(!p.holds("101", &attrs));
        p.status = PolicyStatus::Active;
        assert!(p.holds("101", &attrs));
        assert!(!p.holds("102", &attrs));
        assert_eq!(p.name_key().as_deref(), Some("exchange-approval"));
        p.status = PolicyStatus::Deleted;
        assert!(!p.holds("101", &attrs));
        assert_eq!(p.name_key(), None);
    }

    #[test]
    fn default_names_grow_when_taken() {
        let t = templates::template("1").unwrap();
        let id: PolicyId = "019c80d6-32cb-76f2-b6dc-e3faeb77ae43".parse().unwrap();
        assert_eq!(default_name(t, id, 0), "Data exchange approval 019c80d6");
        assert_eq!(
            default_name(t, id, 1),
            "Data exchange approval 019c80d6-32cb"
        );
        assert_eq!(
            default_name(t, id, 2),
            "Data exchange approval 019c80d6-32cb-76f2-b6dc-e3faeb77ae43"
        );
        assert!(check_policy_name(&default_name(t, id, 2)).is_ok());
    }

    #[test]
    fn descriptions_are_bounded() {
        assert!(check_description(&"d".repeat(500)).is_ok());
        assert_eq!(
            check_description(&"d".repeat(501)).unwrap_err().reason,
            Reason::ValidationOutOfRange
        );
    }
}
