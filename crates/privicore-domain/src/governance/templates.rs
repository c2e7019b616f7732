//! The read-only policy template catalogue (docs/api/voting-and-policy.md §3.1): 10
//! templates, 29 events. Event ids are `<template id> × 100 + n`, unique across templates.

use super::voting::Strategy;
use super::voting::Strategy::{Affirmative, Consensus, Unanimous};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::json;

#[derive(Debug)]
pub struct TemplateEvent {
    pub id: &'static str,
    pub name: &'static str,
    pub label: &'static str,
}

#[derive(Debug)]
pub struct Recommended {
    pub strategy: Strategy,
    pub time_limit: u32,
    pub number_of_attempts: u32,
}

#[derive(Debug)]
pub struct Template {
    pub id: &'static str,
    pub name: &'static str,
    pub description: &'static str,
    pub events: &'static [TemplateEvent],
    /// Keys a policy's `configuration` may use (§3.2).
    pub configuration: &'static [&'static str],
    /// Attributes a ballot carries for this template's events.
    pub voting_attributes: &'static [&'static str],
    pub recommended: Recommended,
}

impl Template {
    pub fn event(&self, id: &str) -> Option<&'static TemplateEvent> {
        self.events.iter().find(|e| e.id == id)
    }
}

const fn event(id: &'static str, name: &'static str, label: &'static str) -> TemplateEvent {
    TemplateEvent { id, name, label }
}

const fn recommended(strategy: Strategy, time_limit: u32, number_of_attempts: u32) -> Recommended {
    Recommended {
        strategy,
        time_limit,
        number_of_attempts,
    }
}

const DATA_KEYS: &[&str] = &["scope", "context", "classification", "label", "handling"];
const DATA_ATTRIBUTES: &[&str] = &[
    "token",
    "context",
    "size",
    "classification",
    "fileName",
    "requester",
    "application",
];
const DEVICE_ATTRIBUTES: &[&str] = &["deviceIdentifier", "deviceName", "requester", "application"];
const SETTING_ATTRIBUTES: &[&str] = &["subject", "setting", "newValue", "requester", "application"];

static TEMPLATES: [Template; 10] = [
    Template {
        id: "1",
        name: "Data exchange approval",
        description: "Hold data exchanges and replacements until authenticators approve them.",
        events: &[
            event(
                "101",
                "data_token.data_exchanged",
                "Exchange data for token",
            ),
            event("102", "data_token.data_streamed", "Upload data via stream"),
            event("103", "data_token.data_replaced", "Replace stored data"),
        ],
        configuration: DATA_KEYS,
        voting_attributes: DATA_ATTRIBUTES,
        recommended: recommended(Consensus, 300, 1),
    },
    Template {
        id: "2",
        name: "Data retrieval approval",
        description: "Hold requests for stored data until authenticators approve them.",
        events: &[event("201", "data_token.data_requested", "Retrieve data")],
        configuration: DATA_KEYS,
        voting_attributes: DATA_ATTRIBUTES,
        recommended: recommended(Affirmative, 120, 1),
    },
    Template {
        id: "3",
        name: "Data deletion approval",
        description: "Hold deletions of stored data until authenticators approve them.",
        events: &[event("301", "data_token.data_deleted", "Delete data")],
        configuration: DATA_KEYS,
        voting_attributes: DATA_ATTRIBUTES,
        recommended: recommended(Unanimous, 600, 1),
    },
    Template {
        id: "4",
        name: "Device approval",
        description: "Hold device registrations, approvals and removals until authenticators approve them.",
        events: &[
            event(
                "401",
                "device.registration_requested",
                "Register new device",
            ),
            event("402", "device.approved", "Approve device"),
            event("403", "device.removed", "Remove device"),
        ],
        configuration: &["scope"],
        voting_attributes: DEVICE_ATTRIBUTES,
        recommended: recommended(Unanimous, 600, 1),
    },
    Template {
        id: "5",
        name: "Storage device management",
        description: "Hold changes to the profile's storage devices until authenticators approve them.",
        events: &[
            event("501", "storage.registered", "Register storage device"),
            event("502", "storage.removed", "Remove storage device"),
            event("503", "storage.synchronized", "Synchronize storage device"),
        ],
        configuration: &["scope"],
        voting_attributes: DEVICE_ATTRIBUTES,
        recommended: recommended(Unanimous, 600, 1),
    },
    Template {
        id: "6",
        name: "OAuth application control",
        description: "Hold OAuth application registrations and access grants until authenticators approve them.",
        events: &[
            event(
                "601",
                "oauth.application_registered",
                "Register OAuth application",
            ),
            event(
                "602",
                "oauth.authorization_granted",
                "Grant application access",
            ),
        ],
        configuration: &["scope", "clientId"],
        voting_attributes: &["applicationName", "clientId", "scopes", "requester"],
        recommended: recommended(Unanimous, 300, 1),
    },
    Template {
        id: "7",
        name: "Policy changes",
        description: "Hold the registration, activation, deactivation and deletion of policies until authenticators approve them.",
        events: &[
            event("701", "policy.registered", "Register policy"),
            event("702", "policy.activated", "Activate policy"),
            event("703", "policy.deactivated", "Deactivate policy"),
            event("704", "policy.deleted", "Delete policy"),
        ],
        configuration: &["scope"],
        voting_attributes: SETTING_ATTRIBUTES,
        recommended: recommended(Unanimous, 600, 2),
    },
    Template {
        id: "8",
        name: "Authenticator and voting settings",
        description: "Hold changes to authenticators, voting defaults and voting configurations until authenticators approve them.",
        events: &[
            event("801", "authenticator.registered", "Register authenticator"),
            event("802", "authenticator.removed", "Remove authenticator"),
            event("803", "voting.settings_changed", "Change voting settings"),
            event(
                "804",
                "voting_configuration.changed",
                "Change voting configuration",
            ),
        ],
        configuration: &["scope"],
        voting_attributes: SETTING_ATTRIBUTES,
        recommended: recommended(Unanimous, 600, 2),
    },
    Template {
        id: "9",
        name: "Profile security",
        description: "Hold password changes and public key replacements until authenticators approve them.",
        events: &[
            event("901", "profile.password_changed", "Change password"),
            event("902", "public_key.replaced", "Replace public key"),
        ],
        configuration: &["scope"],
        voting_attributes: SETTING_ATTRIBUTES,
        recommended: recommended(Unanimous, 600, 2),
    },
    Template {
        id: "10",
        name: "Directory administration",
        description: "Hold administrative changes to a directory's users until authenticators approve them.",
        events: &[
            event("1001", "directory.user_created", "Create directory user"),
            event("1002", "directory.profile_invited", "Invite profile"),
            event(
                "1003",
                "directory.password_set",
                "Set directory user password",
            ),
            event("1004", "directory.user_updated", "Update directory user"),
            event(
                "1005",
                "directory.profile_device_created",
                "Create profile device",
            ),
            event(
                "1006",
                "directory.storage_device_added",
                "Add storage device to profile",
            ),
        ],
        configuration: &["scope", "directoryId"],
        voting_attributes: &[
            "directoryId",
            "directoryName",
            "targetUsername",
            "requester",
        ],
        recommended: recommended(Consensus, 600, 1),
    },
];

/// Every template, in ascending numeric id order.
pub fn templates() -> &'static [Template] {
    &TEMPLATES
}

/// A template by id; numbers sent as text with leading zeros or signs are not ids.
pub fn template(id: &str) -> Option<&'static Template> {
    TEMPLATES.iter().find(|t| t.id == id)
}

/// The template an event belongs to, and the event.
pub fn event_of(id: &str) -> Option<(&'static Template, &'static TemplateEvent)> {
    TEMPLATES.iter().find_map(|t| t.event(id).map(|e| (t, e)))
}

/// The List policy templates answer (§3.3): an object keyed by template id in ascending
/// numeric order, each event a one-entry object mapping its name to its label.
pub struct Catalogue;

struct Events(&'static [TemplateEvent]);

impl Serialize for Events {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for e in self.0 {
            map.serialize_entry(e.id, &json!({ e.name: e.label }))?;
        }
        map.end()
    }
}

struct Entry(&'static Template);

impl Serialize for Entry {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let mut map = s.serialize_map(Some(6))?;
        map.serialize_entry("name", t.name)?;
        map.serialize_entry("description", t.description)?;
        map.serialize_entry("events", &Events(t.events))?;
        map.serialize_entry("configuration", t.configuration)?;
        map.serialize_entry("votingAttributes", t.voting_attributes)?;
        map.serialize_entry(
            "recommended",
            &json!({
                "strategy": t.recommended.strategy.as_str(),
                "timeLimit": t.recommended.time_limit,
                "numberOfAttempts": t.recommended.number_of_attempts,
            }),
        )?;
        map.end()
    }
}

impl Serialize for Catalogue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(TEMPLATES.len()))?;
        for t in &TEMPLATES {
            map.serialize_entry(t.id, &Entry(t))?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ten_templates_and_twenty_nine_events_numbered_by_template() {
        assert_eq!(templates().len(), 10);
        let events: usize = templates().iter().map(|t| t.events.len()).sum();
        assert_eq!(events, 29);
        let mut seen = std::collections::HashSet::new();
        for (i, t) in templates().iter().enumerate() {
            assert_eq!(t.id, (i + 1).to_string());
            for (n, e) in t.events.iter().enumerate() {
                let expected = (i + 1) * 100 + n + 1;
                assert_eq!(e.id, expected.to_string());
                assert!(seen.insert(e.id));
                assert_eq!(event_of(e.id).unwrap().0.id, t.id);
            }
            assert_eq!(t.configuration[0], "scope");
        }
        assert!(template("0").is_none() && template("11").is_none());
        assert!(event_of("104").is_none());
    }

    #[test]
    fn the_catalogue_lists_templates_in_numeric_order() {
        let text = serde_json::to_string(&Catalogue).unwrap();
        let one = text.find("\"1\":").unwrap();
        let two = text.find("\"2\":").unwrap();
        let ten = text.find("\"10\":").unwrap();
        assert!(one < two && two < ten, "{text}");
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value["1"]["events"]["101"],
            json!({ "data_token.data_exchanged": "Exchange data for token" })
        );
        assert_eq!(
            value["1"]["recommended"],
            json!({ "strategy": "consensus", "timeLimit": 300, "numberOfAttempts": 1 })
        );
        assert_eq!(value["6"]["configuration"], json!(["scope", "clientId"]));
        assert_eq!(
            value["10"]["recommended"],
            json!({ "strategy": "consensus", "timeLimit": 600, "numberOfAttempts": 1 })
        );
        assert_eq!(
            value["8"]["events"]["803"]["voting.settings_changed"],
            "Change voting settings"
        );
    }
}
