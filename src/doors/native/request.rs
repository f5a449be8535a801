//! The native door's request: parsing it from JSON, form fields or query
//! parameters, and validating it into a [`GenRequest`].
//!
//! All three inputs are turned into one JSON object and deserialized with the
//! same strict type, so they accept the same fields and fail the same way: an
//! unknown field is a 400 naming it (it catches `max_token`), a wrong type is a
//! 400 naming the field's path (`mock.ttft_ms`).

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::doors::Stop;
use crate::error::ApiError;
use crate::generation::{GenRequest, Message, MockKnobs, Role};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;

use crate::parse::{coerce, deserialize_strict, strict_pairs};
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
        mut self,
        templates: &Templates,
    ) -> Result<(GenRequest, Option<String>), ApiError> {
        let Turn {
            system,
            prompt,
            model,
        } = self.render(templates)?;
        let messages = conversation(system, self.messages.take(), prompt)?;
        let generation = GenRequest {
            messages,
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            seed: self.seed,
            stop: Stop::into_vec(self.stop),
            mock: self.mock.unwrap_or_default(),
            ..GenRequest::default()
        };
        generation.validate()?;
        Ok((generation, model))
    }

    /// The system prompt, the user's turn and the model, after the template
    /// if the request names one.
    fn render(&self, templates: &Templates) -> Result<Turn, ApiError> {
        let turn = Turn {
            system: self.system.clone(),
            prompt: self.prompt.clone(),
            model: self.model.clone(),
        };
        let Some(name) = &self.template else {
            if self.vars.is_some() {
                return Err(ApiError::invalid(
                    "vars",
                    "`vars` only applies with `template`",
                ));
            }
            return Ok(turn);
        };
        if turn.prompt.as_deref().is_some_and(|p| p.trim().is_empty()) {
            return Err(ApiError::invalid("prompt", "`prompt` must not be empty"));
        }
        let empty = Map::new();
        let rendered = templates.render(
            name,
            turn.prompt.as_deref(),
            self.vars.as_ref().unwrap_or(&empty),
        )?;
        Ok(Turn {
            // The template's system prompt wins: it is the server's to set.
            system: rendered.system.or(turn.system),
            prompt: Some(rendered.user_message),
            model: turn.model.or(rendered.model),
        })
    }
}

/// What a template (or its absence) leaves of the request.
struct Turn {
    system: Option<String>,
    prompt: Option<String>,
    model: Option<String>,
}

/// The conversation: the system prompt, the given messages, the prompt as
/// the last user message; either `messages` or `prompt` is needed.
fn conversation(
    system: Option<String>,
    given: Option<Vec<Message>>,
    prompt: Option<String>,
) -> Result<Vec<Message>, ApiError> {
    let mut messages = Vec::new();
    if let Some(system) = system {
        messages.push(Message {
            role: Role::System,
            content: system,
        });
    }
    let had_messages = given.is_some();
    if let Some(given) = given {
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
            Err(ApiError::invalid("prompt", "`prompt` must not be empty"))
        }
        Some(prompt) => {
            messages.push(Message {
                role: Role::User,
                content: prompt,
            });
            Ok(messages)
        }
        None if !had_messages => Err(ApiError::invalid(
            "prompt",
            "missing field `prompt` (or give `messages`)",
        )),
        None => Ok(messages),
    }
}

/// The query string's `a=1&b=2` pairs.
pub fn query_pairs(query: Option<&str>) -> Result<Vec<(String, String)>, ApiError> {
    strict_pairs(query.unwrap_or("").as_bytes(), "query")
}

/// Takes `key` out of the pairs: `format` picks the wire format and `after`
/// the frame to resume after; neither is a request field.
pub fn take(pairs: &mut Vec<(String, String)>, key: &str) -> Option<String> {
    let at = pairs.iter().position(|(k, _)| k == key)?;
    Some(pairs.remove(at).1)
}

impl StreamRequest {
    /// A POST body: JSON or a form; with no body, the query string's fields.
    pub fn from_post(
        headers: &HeaderMap,
        body: &[u8],
        pairs: Vec<(String, String)>,
    ) -> Result<StreamRequest, ApiError> {
        let content_type = headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok());
        if body.is_empty() && !pairs.is_empty() {
            StreamRequest::from_pairs(pairs)
        } else {
            StreamRequest::from_body(content_type, body)
        }
    }
}
