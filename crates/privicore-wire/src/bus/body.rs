//! A bus message's body: the message as it was built while it stays inside the process,
//! JSON once it came over a wire. The in-process bus hands hosted devices the message
//! itself, so chunk bytes are not base64-encoded and decoded again on their way; a link
//! that leaves the process serializes it to the same JSON.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::any::Any;
use std::fmt;
use std::sync::Arc;

type AnyMessage = dyn Any + Send + Sync;

#[derive(Clone)]
pub enum Body {
    /// Parsed from a wire.
    Json(Value),
    /// Built in this process; `to_json` is its serializer.
    Typed {
        message: Arc<AnyMessage>,
        to_json: fn(&AnyMessage) -> Value,
    },
}

fn json_of<T: Serialize + 'static>(message: &AnyMessage) -> Value {
    message
        .downcast_ref::<T>()
        .and_then(|m| serde_json::to_value(m).ok())
        .unwrap_or(Value::Null)
}

impl Body {
    pub fn typed<T: Serialize + Send + Sync + 'static>(message: T) -> Self {
        Self::Typed {
            message: Arc::new(message),
            to_json: json_of::<T>,
        }
    }

    pub fn to_json(&self) -> Value {
        match self {
            Self::Json(value) => value.clone(),
            Self::Typed { message, to_json } => to_json(&**message),
        }
    }

    /// The message as `T`: a copy of a typed body of that type, otherwise read from its
    /// JSON form (so any body can be read as a `Value`, or as a compatible type).
    pub fn read<T: DeserializeOwned + Clone + 'static>(&self) -> Option<T> {
        match self {
            // Borrowed: a store message's body holds the whole chunk, not worth a copy.
            Self::Json(value) => T::deserialize(value).ok(),
            Self::Typed { message, to_json } => match message.downcast_ref::<T>() {
                Some(m) => Some(m.clone()),
                None => T::deserialize(to_json(&**message)).ok(),
            },
        }
    }

    /// As `read`, moving the message out when nothing else holds it.
    pub fn into_message<T: DeserializeOwned + Clone + Send + Sync + 'static>(self) -> Option<T> {
        match self {
            Self::Json(value) => T::deserialize(value).ok(),
            Self::Typed { message, to_json } => match message.downcast::<T>() {
                Ok(m) => Some(Arc::try_unwrap(m).unwrap_or_else(|shared| (*shared).clone())),
                Err(message) => T::deserialize(to_json(&*message)).ok(),
            },
        }
    }

    /// The typed message, if this body is one of type `T`.
    pub fn as_typed<T: 'static>(&self) -> Option<&T> {
        match self {
            Self::Json(_) => None,
            Self::Typed { message, .. } => message.downcast_ref::<T>(),
        }
    }
}

impl Serialize for Body {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Json(value) => value.serialize(s),
            Self::Typed { message, to_json } => to_json(&**message).serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Value::deserialize(d).map(Self::Json)
    }
}

/// Bodies are equal when they serialize alike, however they travelled.
impl PartialEq for Body {
    fn eq(&self, other: &Self) -> bool {
        self.to_json() == other.to_json()
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_json(), f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Note {
        n: u32,
        text: String,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct OnlyN {
        n: u32,
    }

    #[test]
    fn a_typed_body_reads_back_as_itself_and_as_its_json() {
        let note = Note {
            n: 7,
            text: "x".into(),
        };
        let body = Body::typed(note.clone());
        assert_eq!(body.as_typed::<Note>(), Some(&note));
        assert_eq!(body.read::<Note>(), Some(note.clone()));
        assert_eq!(body.read::<OnlyN>(), Some(OnlyN { n: 7 }));
        assert_eq!(body.read::<Value>(), Some(json!({"n": 7, "text": "x"})));
        assert_eq!(body.clone().into_message::<OnlyN>(), Some(OnlyN { n: 7 }));
        assert_eq!(body.into_message::<Note>(), Some(note));
    }

    #[test]
    fn typed_and_parsed_bodies_serialize_alike() {
        let typed = Body::typed(Note {
            n: 1,
            text: "a".into(),
        });
        let text = serde_json::to_string(&typed).unwrap();
        let parsed: Body = serde_json::from_str(&text).unwrap();
        assert!(matches!(parsed, Body::Json(_)));
        assert_eq!(parsed, typed);
        assert_eq!(parsed.as_typed::<Note>(), None);
        assert_eq!(
            parsed.into_message::<Note>(),
            Some(Note {
                n: 1,
                text: "a".into()
            })
        );
        assert_eq!(Body::Json(json!({"n": "no"})).read::<Note>(), None);
    }

    #[test]
    fn a_shared_typed_body_is_copied_out() {
        let body = Body::typed(OnlyN { n: 3 });
        let kept = body.clone();
        assert_eq!(body.into_message::<OnlyN>(), Some(OnlyN { n: 3 }));
        assert_eq!(kept.read::<OnlyN>(), Some(OnlyN { n: 3 }));
    }
}
