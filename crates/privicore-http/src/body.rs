//! Request bodies (docs/api/README.md §4): form, multipart and JSON all become one JSON object, with
//! bracket notation for lists and objects. Anything unparseable is `request.malformed`,
//! never a panic or a 5xx.

use axum::extract::{FromRequest, Request};
use axum::http::header;
use privicore_domain::{Error, Reason};
use serde_json::{Map, Value};

use crate::error::ApiError;

/// API request body limit (docs/api/README.md §4.5).
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;
/// Bracket notation nests at most this deep below the field name.
const MAX_DEPTH: usize = 3;

/// The parsed fields of a POST body.
#[derive(Debug, Default, Clone)]
pub struct Fields(pub Map<String, Value>);

fn malformed(message: &str) -> Error {
    Error::new(Reason::RequestMalformed).with_message(message)
}

/// Parses `bytes` according to `content_type`.
pub async fn parse_body(content_type: Option<&str>, bytes: bytes::Bytes) -> Result<Fields, Error> {
    let Some(content_type) = content_type.map(str::trim).filter(|c| !c.is_empty()) else {
        return if bytes.is_empty() {
            Ok(Fields::default())
        } else {
            Err(Error::new(Reason::RequestUnsupportedMediaType)
                .with_message("A request body needs a Content-Type."))
        };
    };
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/json" => parse_json(&bytes),
        "application/x-www-form-urlencoded" => parse_form(&bytes),
        "multipart/form-data" => parse_multipart(content_type, bytes).await,
        _ => Err(Error::new(Reason::RequestUnsupportedMediaType)),
    }
}

fn parse_json(bytes: &[u8]) -> Result<Fields, Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Fields::default());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(Fields(map)),
        Ok(_) => Err(malformed("A JSON body must be an object.")),
        Err(_) => Err(malformed("The JSON body cannot be parsed.")),
    }
}

fn decode_component(raw: &[u8]) -> Result<String, Error> {
    let plus_as_space: Vec<u8> = raw
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_encoding::percent_decode(&plus_as_space)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| malformed("The form body is not valid UTF-8."))
}

/// Parses `application/x-www-form-urlencoded` (also used for query strings).
pub fn parse_form(bytes: &[u8]) -> Result<Fields, Error> {
    let mut fields = Fields::default();
    for pair in bytes.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let mut parts = pair.splitn(2, |&b| b == b'=');
        let key = decode_component(parts.next().unwrap_or_default())?;
        let value = decode_component(parts.next().unwrap_or_default())?;
        fields.insert_bracketed(&key, value)?;
    }
    Ok(fields)
}

async fn parse_multipart(content_type: &str, bytes: bytes::Bytes) -> Result<Fields, Error> {
    let boundary = multer::parse_boundary(content_type)
        .map_err(|_| malformed("The multipart boundary is missing."))?;
    let stream = futures_util::stream::once(async move { Ok::<_, std::io::Error>(bytes) });
    let mut multipart = multer::Multipart::new(stream, boundary);
    let mut fields = Fields::default();
    loop {
        let field = match multipart.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(_) => return Err(malformed("The multipart body cannot be parsed.")),
        };
        // File parts are not used by any endpoint (docs/api/README.md §4.2).
        let name = field.name().map(str::to_owned);
        let is_file = field.file_name().is_some();
        let text = field
            .text()
            .await
            .map_err(|_| malformed("The multipart body cannot be parsed."))?;
        if let (Some(name), false) = (name, is_file) {
            fields.insert_bracketed(&name, text)?;
        }
    }
    Ok(fields)
}

/// Splits `a[b][]` into `a`, `["b", ""]`; keys without well-formed brackets are literal.
fn split_key(key: &str) -> (&str, Vec<&str>) {
    let Some(open) = key.find('[') else {
        return (key, Vec::new());
    };
    let (name, mut rest) = key.split_at(open);
    let mut segments = Vec::new();
    while !rest.is_empty() {
        let Some(inner) = rest.strip_prefix('[') else {
            return (key, Vec::new());
        };
        let Some(close) = inner.find(']') else {
            return (key, Vec::new());
        };
        segments.push(&inner[..close]);
        rest = &inner[close + 1..];
    }
    if name.is_empty() {
        return (key, Vec::new());
    }
    (name, segments)
}

impl Fields {
    fn insert_bracketed(&mut self, key: &str, value: String) -> Result<(), Error> {
        let (name, segments) = split_key(key);
        if segments.len() > MAX_DEPTH {
            return Err(malformed("Bracket notation nests at most 3 levels."));
        }
        let conflict = || malformed("A field is given both as a value and as a list or object.");
        let mut slot = self.0.entry(name.to_owned()).or_insert(Value::Null);
        for (i, segment) in segments.iter().enumerate() {
            let last = i + 1 == segments.len();
            if segment.is_empty() {
                if !last {
                    return Err(malformed("`[]` may only end a field name."));
                }
                match slot {
                    Value::Null => *slot = Value::Array(vec![Value::String(value)]),
                    Value::Array(items) => items.push(Value::String(value)),
                    _ => return Err(conflict()),
                }
                return Ok(());
            }
            if slot.is_null() {
                *slot = Value::Object(Map::new());
            }
            let Value::Object(map) = slot else {
                return Err(conflict());
            };
            slot = map.entry(segment.to_string()).or_insert(Value::Null);
        }
        match slot {
            Value::Null | Value::String(_) => *slot = Value::String(value),
            _ => return Err(conflict()),
        }
        Ok(())
    }

    fn raw(&self, name: &str) -> Option<&Value> {
        self.0.get(name).filter(|v| !v.is_null())
    }

    /// A string field; absent and empty are `None`.
    pub fn opt_str(&self, name: &str) -> Result<Option<&str>, Error> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Error::invalid_type(name, "a string")),
        }
    }

    pub fn str(&self, name: &str) -> Result<&str, Error> {
        self.opt_str(name)?.ok_or_else(|| Error::missing(name))
    }

    /// An integer from a JSON number or a decimal string.
    pub fn opt_int(&self, name: &str) -> Result<Option<i64>, Error> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| Error::invalid_type(name, "an integer")),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => parse_int(s)
                .map(Some)
                .ok_or_else(|| Error::invalid_type(name, "an integer")),
            Some(_) => Err(Error::invalid_type(name, "an integer")),
        }
    }

    pub fn opt_bool(&self, name: &str) -> Result<Option<bool>, Error> {
        match self.raw(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.is_empty() => Ok(None),
            Some(Value::String(s)) => match s.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                _ => Err(Error::invalid_type(name, "a boolean")),
            },
            Some(_) => Err(Error::invalid_type(name, "a boolean")),
        }
    }

    /// A list field (docs/api/README.md §4.2): a JSON array, repeated `name[]` keys, or one
    /// comma-separated string (items trimmed, empty items dropped). Absent or empty is `None`.
    pub fn opt_list(&self, name: &str) -> Result<Option<Vec<Value>>, Error> {
        let items = match self.raw(name) {
            None => return Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .filter(|v| !v.is_null() && v.as_str().is_none_or(|s| !s.trim().is_empty()))
                .cloned()
                .collect(),
            Some(Value::String(s)) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Value::String(s.to_owned()))
                .collect(),
            Some(Value::Number(n)) => vec![Value::Number(n.clone())],
            Some(_) => return Err(Error::invalid_type(name, "a list")),
        };
        Ok(Some(items).filter(|items: &Vec<Value>| !items.is_empty()))
    }

    /// A list of strings; items of another type are `validation.invalid_type`.
    pub fn opt_str_list(&self, name: &str) -> Result<Option<Vec<String>>, Error> {
        self.opt_list(name)?
            .map(|items| {
                items
                    .into_iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s.trim().to_owned()),
                        _ => Err(Error::invalid_type(name, "a list of strings")),
                    })
                    .collect()
            })
            .transpose()
    }

    /// The field's value as sent (JSON, or bracket notation as objects and lists).
    pub fn opt_value(&self, name: &str) -> Option<&Value> {
        self.raw(name)
    }

    /// Whether the field was sent at all, `null` and empty included.
    pub fn sent(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// Sent as JSON `null` or as an empty string: a request to reset the field.
    pub fn reset(&self, name: &str) -> bool {
        matches!(self.0.get(name), Some(Value::Null))
            || matches!(self.0.get(name), Some(Value::String(s)) if s.is_empty())
    }

    pub fn has(&self, name: &str) -> bool {
        match self.raw(name) {
            None => false,
            Some(Value::String(s)) => !s.is_empty(),
            Some(_) => true,
        }
    }
}

fn parse_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl<S: Send + Sync> FromRequest<S> for Fields {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> Result<Self, Self::Rejection> {
        let content_type = match req.headers().get(header::CONTENT_TYPE) {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| Error::new(Reason::RequestUnsupportedMediaType))?
                    .to_owned(),
            ),
        };
        let declared = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
            return Err(Reason::RequestTooLarge.into());
        }
        let bytes = axum::body::to_bytes(req.into_body(), BODY_LIMIT)
            .await
            .map_err(|e| {
                let too_large = std::error::Error::source(&e)
                    .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
                if too_large {
                    Error::new(Reason::RequestTooLarge)
                } else {
                    malformed("The request body could not be read.")
                }
            })?;
        Ok(parse_body(content_type.as_deref(), bytes).await?)
    }
}

#[cfg(test)]
mod tests;
