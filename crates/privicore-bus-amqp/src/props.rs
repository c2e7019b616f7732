//! Message properties (§6.2) and lifetimes (§6.9).

use lapin::BasicProperties;
use lapin::types::ShortString;
use privicore_wire::bus::{Envelope, ballots, kind};

const MINUTE_MS: u64 = 60_000;

/// Properties of an engine → device message: persistent, typed, with the lifetime of its
/// type.
pub(crate) fn to_device(env: &Envelope) -> BasicProperties {
    let mut props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_message_id(env.message_id.as_str().into())
        .with_type(env.kind.as_str().into())
        .with_delivery_mode(2);
    if let Some(correlation) = &env.correlation_id {
        props = props.with_correlation_id(correlation.as_str().into());
    }
    if let Some(ms) = expiration_ms(env) {
        props = props.with_expiration(ShortString::from(ms.to_string()));
    }
    props
}

/// Milliseconds a message may wait in a queue; `None`: no limit.
pub(crate) fn expiration_ms(env: &Envelope) -> Option<u64> {
    match env.kind.as_str() {
        kind::STORE_CHUNK => Some(10 * MINUTE_MS),
        kind::FETCH | kind::INVENTORY_REQUEST => Some(MINUTE_MS),
        kind::DELETE => Some(7 * 24 * 60 * MINUTE_MS),
        ballots::ISSUE => {
            let issue = env.body::<ballots::Issue>()?;
            let until = chrono::DateTime::parse_from_rfc3339(&issue.expires_at).ok()?;
            let left = until.timestamp_millis() - chrono::Utc::now().timestamp_millis();
            // Already expired: the shortest lifetime the broker takes, so it is dropped.
            Some(left.max(1) as u64)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lifetimes_follow_the_message_type() {
        let env = |k: &str| Envelope::new(k, "d", None, json!({}));
        assert_eq!(expiration_ms(&env(kind::STORE_CHUNK)), Some(600_000));
        assert_eq!(expiration_ms(&env(kind::FETCH)), Some(60_000));
        assert_eq!(expiration_ms(&env(kind::INVENTORY_REQUEST)), Some(60_000));
        assert_eq!(expiration_ms(&env(kind::DELETE)), Some(604_800_000));
        assert_eq!(expiration_ms(&env(kind::WELCOME)), None);
        let props = to_device(&env(kind::STORE_CHUNK));
        assert_eq!(props.delivery_mode(), &Some(2));
        assert_eq!(
            props.expiration().as_ref().map(|e| e.as_str()),
            Some("600000")
        );
    }
}
