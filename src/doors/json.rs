//! Request bodies that are JSON objects (the OpenAI, Responses and Messages
//! doors): read whole, then taken apart field by field, so that a wrong field
//! is named in the 400 and fields a door does not read are left for it to
//! pass on or ignore.

use serde_json::{Map, Value};

use crate::error::ApiError;

/// The body as a JSON object.
pub fn parse(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if body.trim_ascii().is_empty() {
        return Err(ApiError::invalid(
            "body",
            "the request body is empty: send a JSON object",
        ));
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(_) => Err(ApiError::invalid(
            "body",
            "the request body must be a JSON object",
        )),
        Err(e) => Err(ApiError::invalid("body", format!("malformed JSON: {e}"))),
    }
}

/// Removes `field` from the body and types it; absent and `null` are `None`.
pub fn take<T: serde::de::DeserializeOwned>(
    body: &mut Map<String, Value>,
    field: &str,
) -> Result<Option<T>, ApiError> {
    match body.remove(field) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => serde_path_to_error::deserialize(value)
            .map(Some)
            .map_err(|e| {
                let inner = e.path().to_string();
                let path = match inner.as_str() {
                    "." | "?" => field.to_owned(),
                    _ => format!("{field}.{inner}"),
                };
                ApiError::invalid(path.clone(), format!("`{path}`: {}", e.inner()))
            }),
    }
}
