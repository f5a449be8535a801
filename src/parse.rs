//! Strict decoding of request fields, shared by the front doors and by the
//! mock knobs a model name may carry (`mock:ttft_ms=800,seed=7`).
//!
//! Query strings and form bodies are percent-decoded strictly (bytes that are
//! not UTF-8 are a 400, not U+FFFD, which `form_urlencoded` would give), their
//! values typed the way the JSON field would be, and every shape is
//! deserialized with the failing field's path in the error.

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::ApiError;

/// Fields that stay strings when they come from a form or a query.
const STRING_FIELDS: &[&str] = &[
    "prompt", "system", "template", "model", "stop", "text", "mode",
];
/// Fields that hold JSON when they come from a form or a query.
const JSON_FIELDS: &[&str] = &["messages", "vars", "mock"];

/// `a=1&b=2` pairs from a query string or a form body, percent-decoded
/// strictly: bytes that are not UTF-8 are a 400, not silently replaced.
pub fn strict_pairs(raw: &[u8], what: &str) -> Result<Vec<(String, String)>, ApiError> {
    let decode = |part: &[u8]| -> Result<String, ApiError> {
        let spaced: Vec<u8> = part
            .iter()
            .map(|&b| if b == b'+' { b' ' } else { b })
            .collect();
        percent_encoding::percent_decode(&spaced)
            .decode_utf8()
            .map(|text| text.into_owned())
            .map_err(|_| {
                ApiError::invalid(
                    what,
                    format!("the {what} is not valid UTF-8 once percent-decoded"),
                )
            })
    };
    raw.split(|&b| b == b'&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (key, value) = match part.iter().position(|&b| b == b'=') {
                Some(at) => (&part[..at], &part[at + 1..]),
                None => (part, &b""[..]),
            };
            Ok((decode(key)?, decode(value)?))
        })
        .collect()
}

/// Deserializes with the failing field's path in the error.
pub fn deserialize_strict<'de, T, D>(input: D) -> Result<T, ApiError>
where
    T: DeserializeOwned,
    D: serde::Deserializer<'de>,
    D::Error: std::fmt::Display,
{
    serde_path_to_error::deserialize(input).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner().to_string();
        // `.` is the top level, `?` a syntax error with no position in the type.
        let missing = inner
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split_once('`'))
            .map(|(field, _)| field.to_owned());
        if let (Some(field), "." | "?") = (&missing, path.as_str()) {
            ApiError::invalid(field.clone(), format!("missing field `{field}`"))
        } else if path == "." || path == "?" {
            ApiError::invalid("body", format!("invalid request: {inner}"))
        } else if inner.starts_with("unknown field") {
            // The path already ends in the unknown field's name.
            ApiError::invalid(path, inner)
        } else {
            ApiError::invalid(path.clone(), format!("`{path}`: {inner}"))
        }
    })
}

/// A form or query value, typed the way the JSON field would be.
pub fn coerce(key: &str, value: String) -> Value {
    if STRING_FIELDS.contains(&key) {
        return Value::String(value);
    }
    if JSON_FIELDS.contains(&key)
        || value.parse::<f64>().is_ok()
        || value == "true"
        || value == "false"
    {
        if let Ok(parsed) = serde_json::from_str(&value) {
            return parsed;
        }
    }
    Value::String(value)
}
