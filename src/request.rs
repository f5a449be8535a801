//! The native door's request: parsing it from JSON, form fields or query
//! parameters, and validating it into a [`GenRequest`].
//!
//! All three inputs are turned into one JSON object and deserialized with the
//! same strict type, so they accept the same fields and fail the same way: an
//! unknown field is a 400 naming it (it catches `max_token`), a wrong type is a
//! 400 naming the field's path (`mock.ttft_ms`).

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::{Map, Value};

use std::sync::Arc;

use crate::error::ApiError;
use crate::generation::{GenRequest, Message, Role};
use crate::providers::mock::{MockKnobs, MAX_TOKENS_KNOB};
use crate::providers::{Models, Route};
use crate::templates::Templates;

/// `POST /v1/stream` and `GET /v1/stream`, as the client wrote it.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamRequest {
    pub prompt: Option<String>,
    pub messages: Option<Vec<Message>>,
    pub system: Option<String>,
    pub template: Option<String>,
    pub vars: Option<Map<String, Value>>,
    pub model: Option<String>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub seed: Option<u64>,
    pub stop: Option<Stop>,
    pub mock: Option<MockKnobs>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

/// Fields that stay strings when they come from a form or a query.
const STRING_FIELDS: &[&str] = &[
    "prompt", "system", "template", "model", "stop", "text", "mode",
];
/// Fields that hold JSON when they come from a form or a query.
const JSON_FIELDS: &[&str] = &["messages", "vars", "mock"];

impl StreamRequest {
    /// A POST body: JSON whatever the Content-Type says, except a form body
    /// (`application/x-www-form-urlencoded` not starting with `{`).
    pub fn from_body(content_type: Option<&str>, body: &[u8]) -> Result<StreamRequest, ApiError> {
        let is_form = content_type
            .is_some_and(|ct| ct.starts_with("application/x-www-form-urlencoded"))
            && !body.trim_ascii_start().starts_with(b"{");
        if is_form {
            return StreamRequest::from_pairs(strict_pairs(body, "body")?);
        }
        if body.trim_ascii().is_empty() {
            return Err(ApiError::invalid(
                "body",
                "the request body is empty: send a JSON object such as {\"prompt\":\"hello\"}",
            ));
        }
        // Syntax first (malformed, not UTF-8, nested past serde_json's depth
        // limit: the body's fault), then the fields (a field's fault).
        let json: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::invalid("body", format!("malformed JSON: {e}")))?;
        if !json.is_object() {
            return Err(ApiError::invalid(
                "body",
                "the request body must be a JSON object",
            ));
        }
        let request = deserialize_strict(json)?;
        Ok(request)
    }

    /// Query parameters or form fields; `mock_<knob>` sets a mock knob.
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Result<StreamRequest, ApiError> {
        let mut object = Map::new();
        let mut mock = Map::new();
        for (key, value) in pairs {
            match key.strip_prefix("mock_") {
                Some(knob) => mock.insert(knob.to_owned(), coerce(knob, value)),
                None => object.insert(key.clone(), coerce(&key, value)),
            };
        }
        if !mock.is_empty() {
            object.insert("mock".into(), Value::Object(mock));
        }
        deserialize_strict(Value::Object(object))
    }

    /// Validates the request into what a provider needs, rendering its
    /// template if it names one. Also returns the model to use: the request's,
    /// else the template's (else the caller's default).
    pub fn into_generation(
        self,
        templates: &Templates,
    ) -> Result<(GenRequest, Option<String>), ApiError> {
        let mut model = self.model.clone();
        let mut system = self.system;
        let mut prompt = self.prompt;
        if let Some(name) = &self.template {
            if prompt.as_deref().is_some_and(|p| p.trim().is_empty()) {
                return Err(ApiError::invalid("prompt", "`prompt` must not be empty"));
            }
            let empty = Map::new();
            let rendered = templates.render(
                name,
                prompt.as_deref(),
                self.vars.as_ref().unwrap_or(&empty),
            )?;
            // The template's system prompt wins: it is the server's to set.
            system = rendered.system.or(system);
            model = model.or(rendered.model);
            prompt = Some(rendered.user_message);
        } else if self.vars.is_some() {
            return Err(ApiError::invalid(
                "vars",
                "`vars` only applies with `template`",
            ));
        }
        let mut messages = Vec::new();
        if let Some(system) = system {
            messages.push(Message {
                role: Role::System,
                content: system,
            });
        }
        let had_messages = self.messages.is_some();
        if let Some(given) = self.messages {
            if given.is_empty() && prompt.is_none() {
                return Err(ApiError::invalid(
                    "messages",
                    "`messages` must not be empty",
                ));
            }
            messages.extend(given);
        }
        match prompt {
            Some(prompt) if prompt.trim().is_empty() => {
                return Err(ApiError::invalid("prompt", "`prompt` must not be empty"));
            }
            Some(prompt) => messages.push(Message {
                role: Role::User,
                content: prompt,
            }),
            None if !had_messages => {
                return Err(ApiError::invalid(
                    "prompt",
                    "missing field `prompt` (or give `messages`)",
                ));
            }
            None => {}
        }
        if let Some(max) = self.max_tokens {
            check_max_tokens("max_tokens", max)?;
        }
        check_range("temperature", self.temperature, 0.0, 2.0)?;
        check_range("top_p", self.top_p, 0.0, 1.0)?;
        let mock = self.mock.unwrap_or_default();
        check_mock(&mock)?;
        let generation = GenRequest {
            messages,
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            seed: self.seed,
            stop: match self.stop {
                None => Vec::new(),
                Some(Stop::One(s)) => vec![s],
                Some(Stop::Many(v)) => v,
            },
            mock,
            ..GenRequest::default()
        };
        Ok((generation, model))
    }
}

/// The most tokens a request may ask for: far past any model's context, but
/// a bound, so a typo like 10^12 is caught rather than passed on.
pub const MAX_TOKENS_LIMIT: u32 = 1_000_000;

pub(crate) fn check_max_tokens(field: &str, value: u32) -> Result<(), ApiError> {
    if value == 0 {
        return Err(ApiError::invalid(
            field,
            format!("`{field}` must be at least 1"),
        ));
    }
    if value > MAX_TOKENS_LIMIT {
        return Err(ApiError::invalid(
            field,
            format!("`{field}` must be at most {MAX_TOKENS_LIMIT}"),
        ));
    }
    Ok(())
}

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

/// Resolves the requested model. Knobs in a mock model's name
/// (`mock:ttft_ms=800,token_delay_ms=25,seed=7`) go into the generation,
/// under any the request itself sets.
pub fn resolve_model(
    models: &Models,
    requested: Option<&str>,
    generation: &mut GenRequest,
) -> Result<Arc<Route>, ApiError> {
    let (route, knobs) = models.resolve_with_knobs(requested)?;
    if let Some(knobs) = knobs {
        let (from_name, seed) = knobs_from_model_name(knobs)?;
        generation.mock = from_name.overridden_by(&generation.mock);
        generation.seed = generation.seed.or(seed);
    }
    Ok(route)
}

/// `ttft_ms=800,seed=7` into mock knobs and a seed.
fn knobs_from_model_name(text: &str) -> Result<(MockKnobs, Option<u64>), ApiError> {
    let mut knobs = Map::new();
    let mut seed = None;
    for pair in text.split(',').filter(|p| !p.trim().is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(ApiError::invalid(
                "model",
                format!("`model`: mock knob `{pair}` has no value: write it as name=value"),
            ));
        };
        let (key, value) = (key.trim(), value.trim());
        if key == "seed" {
            let parsed = value.parse().map_err(|_| {
                ApiError::invalid(
                    "model",
                    format!("`model`: seed `{value}` is not a whole number"),
                )
            })?;
            seed = Some(parsed);
        } else {
            knobs.insert(key.to_owned(), coerce(key, value.to_owned()));
        }
    }
    let knobs: MockKnobs = deserialize_strict(Value::Object(knobs)).map_err(|mut e| {
        e.message = format!("mock knobs in `model`: {}", e.message);
        e.param = Some("model".into());
        e
    })?;
    check_mock(&knobs)?;
    Ok((knobs, seed))
}

/// Deserializes with the failing field's path in the error.
pub(crate) fn deserialize_strict<'de, T, D>(input: D) -> Result<T, ApiError>
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
fn coerce(key: &str, value: String) -> Value {
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

pub(crate) fn check_range(
    field: &str,
    value: Option<f64>,
    min: f64,
    max: f64,
) -> Result<(), ApiError> {
    match value {
        Some(v) if !(min..=max).contains(&v) => Err(ApiError::invalid(
            field,
            format!("`{field}` must be between {min} and {max}"),
        )),
        _ => Ok(()),
    }
}

pub(crate) fn check_mock(mock: &MockKnobs) -> Result<(), ApiError> {
    if let Some(status) = mock.error_status {
        if !(400..=599).contains(&status) {
            return Err(ApiError::invalid(
                "mock.error_status",
                "`mock.error_status` must be an HTTP error status (400-599)",
            ));
        }
    }
    if mock.tokens.is_some_and(|n| n > MAX_TOKENS_KNOB) {
        return Err(ApiError::invalid(
            "mock.tokens",
            format!("`mock.tokens` must be at most {MAX_TOKENS_KNOB}"),
        ));
    }
    Ok(())
}
