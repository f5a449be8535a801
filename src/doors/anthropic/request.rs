//! Anthropic Messages request bodies, validated into a [`GenRequest`].
//!
//! The fields sluice reads are Anthropic's, typed strictly: `max_tokens`
//! (required, as Anthropic requires it), `messages`, a top-level `system`
//! (a string or text blocks), `stop_sequences`, `temperature` (Anthropic's
//! 0–1, kept internally on OpenAI's 0–2 scale, which the `anthropic`
//! provider scales back), `top_p`, `stream`, and sluice's `mock`. Others
//! (`metadata`, `top_k`, `tools`, `thinking`, ...) are ignored. Content
//! blocks that carry no text sluice could pass on (images, documents) are
//! refused rather than dropped.

use serde_json::{Map, Value};

use crate::doors::json::{parse, take};
use crate::doors::tools::{self, Dialect};
use crate::error::ApiError;
use crate::generation::{check_choice, check_max_tokens, GenRequest, Message, MockKnobs, Role};

/// What the handler needs besides the generation itself.
pub struct ParsedRequest {
    pub model: Option<String>,
    pub stream: bool,
    pub generation: GenRequest,
}

pub fn parse_request(body: &[u8]) -> Result<ParsedRequest, ApiError> {
    parse_body(parse(body)?)
}

/// A `count_tokens` body: a Messages request without `max_tokens`.
pub fn parse_count(body: &[u8]) -> Result<ParsedRequest, ApiError> {
    let mut body = parse(body)?;
    body.entry("max_tokens").or_insert(Value::from(1));
    parse_body(body)
}

fn parse_body(mut body: Map<String, Value>) -> Result<ParsedRequest, ApiError> {
    let max_tokens: u32 = take(&mut body, "max_tokens")?
        .ok_or_else(|| ApiError::invalid("max_tokens", "max_tokens: Field required"))?;
    check_max_tokens("max_tokens", max_tokens)?;
    let raw: Vec<Value> = take(&mut body, "messages")?
        .ok_or_else(|| ApiError::invalid("messages", "messages: Field required"))?;
    if raw.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "messages: at least one message is required",
        ));
    }
    let mut messages = Vec::with_capacity(raw.len() + 1);
    if let Some(system) = system_text(body.remove("system"))? {
        messages.push(Message {
            role: Role::System,
            content: system,
        });
    }
    for (i, message) in raw.iter().enumerate() {
        messages.push(message_of(i, message)?);
    }
    let temperature: Option<f64> = take(&mut body, "temperature")?;
    if temperature.is_some_and(|t| !(0.0..=1.0).contains(&t)) {
        return Err(ApiError::invalid(
            "temperature",
            "temperature: must be between 0 and 1",
        ));
    }
    let offered = tools::tools(&body, Dialect::Messages)?;
    let tool_choice = tools::choice(&body, Dialect::Messages)?;
    check_choice(&offered, &tool_choice, "tool_choice")?;
    let format = crate::doors::format::format(&body, Dialect::Messages)?;
    let parallel_tool_calls = body
        .get("tool_choice")
        .and_then(|choice| choice.get("disable_parallel_tool_use"))
        .and_then(Value::as_bool)
        .map(|disabled| !disabled);
    let generation = GenRequest {
        messages,
        tools: offered,
        tool_choice,
        format,
        tool_results: raw.last().map(tool_results_of).unwrap_or_default(),
        parallel_tool_calls,
        max_tokens: Some(max_tokens),
        temperature: temperature.map(|t| t * 2.0),
        top_p: take(&mut body, "top_p")?,
        stop: take(&mut body, "stop_sequences")?.unwrap_or_default(),
        mock: take::<MockKnobs>(&mut body, "mock")?.unwrap_or_default(),
        ..GenRequest::default()
    };
    generation.validate()?;
    Ok(ParsedRequest {
        model: take(&mut body, "model")?,
        stream: take(&mut body, "stream")?.unwrap_or(false),
        generation,
    })
}

/// `system`: a string, or text blocks joined by blank lines.
fn system_text(system: Option<Value>) -> Result<Option<String>, ApiError> {
    match system {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(Value::Array(blocks)) => Ok(Some(text_of_blocks("system", &blocks)?)),
        Some(_) => Err(ApiError::invalid(
            "system",
            "system: must be a string or an array of text blocks",
        )),
    }
}

fn message_of(i: usize, message: &Value) -> Result<Message, ApiError> {
    let field = |name: &str| format!("messages.{i}.{name}");
    let Some(message) = message.as_object() else {
        return Err(ApiError::invalid(
            format!("messages.{i}"),
            format!("messages.{i}: must be an object"),
        ));
    };
    let role = match message.get("role").and_then(Value::as_str) {
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some(other) => {
            return Err(ApiError::invalid(
                field("role"),
                format!(
                    "{}: unexpected role `{other}`: expected user or assistant (the system prompt goes in the top-level `system`)",
                    field("role")
                ),
            ))
        }
        None => {
            return Err(ApiError::invalid(
                field("role"),
                format!("{}: Field required", field("role")),
            ))
        }
    };
    let content = match message.get("content") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(blocks)) => text_of_blocks(&field("content"), blocks)?,
        None | Some(Value::Null) => {
            return Err(ApiError::invalid(
                field("content"),
                format!("{}: Field required", field("content")),
            ))
        }
        Some(_) => {
            return Err(ApiError::invalid(
                field("content"),
                format!(
                    "{}: must be a string or an array of content blocks",
                    field("content")
                ),
            ))
        }
    };
    Ok(Message { role, content })
}

/// The text of each `tool_result` block of a user message.
fn tool_results_of(message: &Value) -> Vec<String> {
    if message.get("role").and_then(Value::as_str) != Some("user") {
        return Vec::new();
    }
    let Some(blocks) = message.get("content").and_then(Value::as_array) else {
        return Vec::new();
    };
    blocks
        .iter()
        .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        .map(|b| match b.get("content") {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Array(inner)) => inner
                .iter()
                .filter_map(|block| block.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        })
        .collect()
}

/// The text of `text` blocks and of `tool_result` blocks' content, joined by
/// blank lines. The model's own `tool_use` and `thinking` blocks carry no
/// text to send back and are skipped.
fn text_of_blocks(field: &str, blocks: &[Value]) -> Result<String, ApiError> {
    let mut texts = Vec::new();
    for (j, block) in blocks.iter().enumerate() {
        let at = format!("{field}.{j}");
        let Some(block) = block.as_object() else {
            return Err(ApiError::invalid(
                at.clone(),
                format!("{at}: must be a content block object"),
            ));
        };
        match block.get("type").and_then(Value::as_str) {
            Some("text") => texts.push(block_text(&at, block)?),
            Some("tool_result") => match block.get("content") {
                None | Some(Value::Null) => {}
                Some(Value::String(text)) => texts.push(text.clone()),
                Some(Value::Array(inner)) => {
                    texts.push(text_of_blocks(&format!("{at}.content"), inner)?)
                }
                Some(_) => {
                    return Err(ApiError::invalid(
                        format!("{at}.content"),
                        format!("{at}.content: must be a string or an array of content blocks"),
                    ))
                }
            },
            Some("tool_use" | "thinking" | "redacted_thinking") => {}
            Some(other) => {
                return Err(ApiError::invalid(
                    format!("{at}.type"),
                    format!("{at}.type: sluice carries text only, not `{other}` blocks"),
                ))
            }
            None => {
                return Err(ApiError::invalid(
                    format!("{at}.type"),
                    format!("{at}.type: Field required"),
                ))
            }
        }
    }
    Ok(texts.join("\n\n"))
}

fn block_text(at: &str, block: &Map<String, Value>) -> Result<String, ApiError> {
    match block.get("text") {
        Some(Value::String(text)) => Ok(text.clone()),
        _ => Err(ApiError::invalid(
            format!("{at}.text"),
            format!("{at}.text: must be a string"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn parsed(body: Value) -> Result<ParsedRequest, ApiError> {
        parse_request(body.to_string().as_bytes())
    }

    fn param(body: Value) -> String {
        parsed(body).err().and_then(|e| e.param).unwrap_or_default()
    }

    #[test]
    fn system_history_and_stop_sequences_become_the_generation() {
        let request = parsed(json!({
            "model": "mock", "max_tokens": 64, "temperature": 0.5, "stream": true,
            "system": [{"type": "text", "text": "Be brief."}, {"type": "text", "text": "Be kind."}],
            "stop_sequences": ["\n\nHuman:"],
            "messages": [
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": [{"type": "text", "text": "Hello"},
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "42"},
                    {"type": "text", "text": "And?"}]},
            ],
            "metadata": {"user_id": "u1"}, "top_k": 5,
        }))
        .unwrap();
        let view: Vec<(Role, &str)> = request
            .generation
            .messages
            .iter()
            .map(|m| (m.role, m.content.as_str()))
            .collect();
        assert_eq!(
            view,
            [
                (Role::System, "Be brief.\n\nBe kind."),
                (Role::User, "Hi"),
                (Role::Assistant, "Hello"),
                (Role::User, "42\n\nAnd?"),
            ]
        );
        let generation = &request.generation;
        assert_eq!(generation.max_tokens, Some(64));
        assert_eq!(generation.temperature, Some(1.0));
        assert_eq!(generation.stop, ["\n\nHuman:"]);
        assert!(request.stream);
    }

    #[test]
    fn a_wrong_field_is_named() {
        let hi = json!([{"role": "user", "content": "Hi"}]);
        assert_eq!(param(json!({"messages": hi})), "max_tokens");
        assert_eq!(
            param(json!({"max_tokens": 0, "messages": hi})),
            "max_tokens"
        );
        assert_eq!(param(json!({"max_tokens": 9})), "messages");
        assert_eq!(param(json!({"max_tokens": 9, "messages": []})), "messages");
        assert_eq!(
            param(json!({"max_tokens": 9, "messages": [{"role": "system", "content": "x"}]})),
            "messages.0.role"
        );
        assert_eq!(
            param(
                json!({"max_tokens": 9, "messages": [{"role": "user", "content": [{"type": "image", "source": {}}]}]})
            ),
            "messages.0.content.0.type"
        );
        assert_eq!(
            param(json!({"max_tokens": 9, "messages": hi, "temperature": 1.5})),
            "temperature"
        );
        assert_eq!(
            param(json!({"max_tokens": 9, "messages": hi, "stop_sequences": "x"})),
            "stop_sequences"
        );
        assert_eq!(
            param(json!({"max_tokens": 9, "messages": hi, "system": 3})),
            "system"
        );
    }
}
