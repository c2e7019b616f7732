//! Validation of data token fields and payload encodings (docs/api/data-tokens.md §1.3, §1.4, §3).

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use privicore_domain::data_token::*;
use privicore_domain::{Error, Reason};
use serde_json::{Map, Value, json};

/// Standard or URL-safe alphabet, padded or not (docs/api/data-tokens.md §1.4).
pub fn decode_payload(text: &str) -> Result<Vec<u8>, Error> {
    const LENIENT: GeneralPurposeConfig =
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent);
    let engine = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
    let text = text.trim();
    // The URL-safe alphabet differs in two characters: only such text is rewritten first.
    let decoded = if text.bytes().any(|b| b == b'-' || b == b'_') {
        let standard: Vec<u8> = text
            .bytes()
            .map(|b| match b {
                b'-' => b'+',
                b'_' => b'/',
                b => b,
            })
            .collect();
        engine.decode(standard)
    } else {
        engine.decode(text)
    };
    decoded.map_err(|_| Error::new(Reason::DataTokenInvalidDataEncoding).with_field("data"))
}

pub fn encode_payload(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

pub(crate) fn check_context(context: &str) -> Result<(), Error> {
    if valid_context(context) {
        Ok(())
    } else {
        Err(Error::new(Reason::DataTokenInvalidContext).with_field("context"))
    }
}

/// A metadata object: a JSON object of at most 16 KiB.
pub fn check_meta_object(value: &Value, field: &str) -> Result<Map<String, Value>, Error> {
    let invalid = || Error::new(Reason::DataTokenInvalidMeta).with_field(field);
    let (object, size) = match value {
        Value::Object(m) => (m.clone(), value.to_string().len()),
        Value::String(s) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => (m, s.len()),
            _ => return Err(invalid()),
        },
        _ => return Err(invalid()),
    };
    if size > META_MAX_BYTES {
        return Err(invalid());
    }
    Ok(object)
}

/// The fields of `meta.file` (§3.8).
#[derive(Debug, Default, Clone)]
pub struct FileMeta {
    pub file_name: Option<String>,
    pub extension: Option<String>,
    pub path: Option<String>,
    pub size: Option<i64>,
}

impl FileMeta {
    pub(crate) fn check(&self) -> Result<(), Error> {
        let invalid = |f: &str| Error::new(Reason::DataTokenInvalidMeta).with_field(f);
        if let Some(n) = &self.file_name
            && (!(1..=255).contains(&n.chars().count()) || n.contains('/') || n.contains('\0'))
        {
            return Err(invalid("fileName"));
        }
        if let Some(e) = &self.extension
            && e.trim_start_matches('.').chars().count() > 32
        {
            return Err(invalid("extension"));
        }
        if let Some(p) = &self.path
            && (!p.starts_with('/') || p.chars().count() > 1024)
        {
            return Err(invalid("path"));
        }
        if self.size.is_some_and(|s| s < 0) {
            return Err(invalid("size"));
        }
        Ok(())
    }

    /// Merges into an existing group (shape A) or builds a whole one.
    pub(crate) fn merged(&self, base: Option<&Value>) -> Value {
        let mut obj = match base {
            Some(Value::Object(m)) => m.clone(),
            _ => {
                let mut m = Map::new();
                m.insert("fileName".into(), Value::Null);
                m.insert("extension".into(), Value::Null);
                m.insert("path".into(), json!("/"));
                m.insert("size".into(), Value::Null);
                m
            }
        };
        if let Some(n) = &self.file_name {
            obj.insert("fileName".into(), json!(n));
        }
        if let Some(e) = &self.extension {
            obj.insert("extension".into(), json!(e.trim_start_matches('.')));
        }
        if let Some(p) = &self.path {
            obj.insert("path".into(), json!(p));
        }
        if let Some(s) = self.size {
            obj.insert("size".into(), json!(s));
        }
        Value::Object(obj)
    }

    pub fn is_empty(&self) -> bool {
        self.file_name.is_none()
            && self.extension.is_none()
            && self.path.is_none()
            && self.size.is_none()
    }
}

/// `meta.information_security_risk` (§3.7): known fields plus up to 32 extras kept verbatim.
pub fn risk_meta(fields: &Map<String, Value>) -> Result<Value, Error> {
    let invalid = |f: &str| Error::new(Reason::DataTokenInvalidMeta).with_field(f);
    let text = |k: &str| -> Result<Option<String>, Error> {
        match fields.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(_) => Err(invalid(k)),
        }
    };
    let classification = text("classification")?
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Error::missing("classification"))?;
    if classification.chars().count() > 64 {
        return Err(invalid("classification"));
    }
    let label = text("label")?;
    if label.as_ref().is_some_and(|l| l.chars().count() > 128) {
        return Err(invalid("label"));
    }
    let handling = text("handling")?;
    if handling.as_ref().is_some_and(|h| h.chars().count() > 1024) {
        return Err(invalid("handling"));
    }
    let mut out = Map::new();
    out.insert("classification".into(), json!(classification));
    out.insert("label".into(), json!(label));
    out.insert("handling".into(), json!(handling));
    let extras: Vec<(&String, &Value)> = fields
        .iter()
        .filter(|(k, _)| {
            !matches!(
                k.as_str(),
                "classification" | "label" | "handling" | "token"
            )
        })
        .collect();
    if extras.len() > 32 {
        return Err(invalid("meta"));
    }
    for (k, v) in extras {
        let ok_name = (1..=64).contains(&k.chars().count())
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        let value = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return Err(invalid(k)),
        };
        if !ok_name || value.chars().count() > 1024 {
            return Err(invalid(k));
        }
        out.insert(k.clone(), json!(value));
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_is_lenient_on_input() {
        let bytes: Vec<u8> = (0..=255).collect();
        let std = STANDARD.encode(&bytes);
        assert_eq!(decode_payload(&std).unwrap(), bytes);
        assert_eq!(decode_payload(std.trim_end_matches('=')).unwrap(), bytes);
        assert_eq!(
            decode_payload(&base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes))
                .unwrap(),
            bytes
        );
        assert_eq!(
            decode_payload("not base64!").unwrap_err().reason,
            Reason::DataTokenInvalidDataEncoding
        );
    }

    proptest::proptest! {
        #[test]
        fn any_alphabet_and_padding_decodes_to_the_same_bytes(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
            url_safe in proptest::prelude::any::<bool>(),
            padded in proptest::prelude::any::<bool>(),
            spaced in proptest::prelude::any::<bool>(),
        ) {
            use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
            let text = match (url_safe, padded) {
                (false, true) => STANDARD.encode(&bytes),
                (false, false) => STANDARD_NO_PAD.encode(&bytes),
                (true, true) => URL_SAFE.encode(&bytes),
                (true, false) => URL_SAFE_NO_PAD.encode(&bytes),
            };
            let text = if spaced { format!(" {text}\n") } else { text };
            proptest::prop_assert_eq!(decode_payload(&text).unwrap(), bytes);
        }

        #[test]
        fn decoding_never_panics(text in "\\PC{0,64}") {
            let _ = decode_payload(&text);
        }
    }

    #[test]
    fn risk_meta_rules() {
        let ok: Map<String, Value> = serde_json::from_value(
            json!({"classification": "confidential", "retentionDays": "365", "token": "x"}),
        )
        .unwrap();
        let v = risk_meta(&ok).unwrap();
        assert_eq!(
            v,
            json!({"classification": "confidential", "label": null, "handling": null, "retentionDays": "365"})
        );
        let missing: Map<String, Value> = serde_json::from_value(json!({"label": "x"})).unwrap();
        assert_eq!(
            risk_meta(&missing).unwrap_err().reason,
            Reason::ValidationMissingField
        );
        let bad_name: Map<String, Value> =
            serde_json::from_value(json!({"classification": "c", "bad name": "x"})).unwrap();
        assert_eq!(
            risk_meta(&bad_name).unwrap_err().reason,
            Reason::DataTokenInvalidMeta
        );
    }
}
