//! Responses API request bodies, validated into a [`GenRequest`].
//!
//! As on the Chat Completions door, fields sluice does not read (`tools`,
//! `text`, `reasoning`, `store`, `metadata`, ...) are ignored the way
//! OpenAI-compatible servers ignore them, and the ones it reads are typed
//! strictly. Two things are refused rather than ignored, because ignoring
//! them would lose part of the request: conversation state held by the
//! server (`previous_response_id`, `conversation`; sluice keeps none), and
//! input that is not text (images, files, audio).

use serde_json::{Map, Value};

use crate::doors::json::{parse, take};
use crate::doors::tools::{self, Dialect};
use crate::error::ApiError;
use crate::generation::{check_choice, check_max_tokens, GenRequest, Message, MockKnobs, Role};

/// What the handler needs besides the generation itself.
pub struct ParsedRequest {
    pub model: Option<String>,
    pub stream: bool,
    /// `background: true`: the response outlives its request (section 16).
    pub background: bool,
    pub echo: Echo,
    pub generation: GenRequest,
}

/// The request's settings that a `response` object repeats back.
#[derive(Debug, Clone, Default)]
pub struct Echo {
    pub instructions: Option<String>,
    pub max_output_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
}

pub fn parse_request(body: &[u8]) -> Result<ParsedRequest, ApiError> {
    let mut body = parse(body)?;
    for stateful in ["previous_response_id", "conversation"] {
        if body.get(stateful).is_some_and(|v| !v.is_null()) {
            return Err(ApiError::invalid(
                stateful,
                format!("`{stateful}`: sluice keeps no conversation state; send the whole conversation in `input`"),
            ));
        }
    }
    let instructions: Option<String> = take(&mut body, "instructions")?;
    let input = match body.remove("input") {
        None | Some(Value::Null) => {
            return Err(ApiError::invalid("input", "missing field `input`"))
        }
        Some(input) => input,
    };
    let mut messages = Vec::new();
    if let Some(system) = &instructions {
        messages.push(Message {
            role: Role::System,
            content: system.clone(),
        });
    }
    let tool_results = trailing_outputs(&input);
    input_messages(input, &mut messages)?;
    let max_output_tokens: Option<u32> = take(&mut body, "max_output_tokens")?;
    if let Some(max) = max_output_tokens {
        check_max_tokens("max_output_tokens", max)?;
    }
    let echo = Echo {
        instructions,
        max_output_tokens,
        temperature: take(&mut body, "temperature")?,
        top_p: take(&mut body, "top_p")?,
    };
    let offered = tools::tools(&body, Dialect::Responses)?;
    let tool_choice = tools::choice(&body, Dialect::Responses)?;
    check_choice(&offered, &tool_choice, "tool_choice")?;
    let format = crate::doors::format::format(&body, Dialect::Responses)?;
    let parallel_tool_calls = body.get("parallel_tool_calls").and_then(Value::as_bool);
    let generation = GenRequest {
        messages,
        tools: offered,
        tool_choice,
        format,
        tool_results,
        parallel_tool_calls,
        max_tokens: max_output_tokens,
        temperature: echo.temperature,
        top_p: echo.top_p,
        mock: take::<MockKnobs>(&mut body, "mock")?.unwrap_or_default(),
        ..GenRequest::default()
    };
    generation.validate()?;
    Ok(ParsedRequest {
        model: take(&mut body, "model")?,
        stream: take(&mut body, "stream")?.unwrap_or(false),
        background: take(&mut body, "background")?.unwrap_or(false),
        echo,
        generation,
    })
}

/// `input`: one user message as a string, or a list of input items.
fn input_messages(input: Value, messages: &mut Vec<Message>) -> Result<(), ApiError> {
    let items = match input {
        Value::String(text) => {
            messages.push(Message {
                role: Role::User,
                content: text,
            });
            return Ok(());
        }
        Value::Array(items) if items.is_empty() => {
            return Err(ApiError::invalid("input", "`input` must not be empty"))
        }
        Value::Array(items) => items,
        _ => {
            return Err(ApiError::invalid(
                "input",
                "`input` must be a string or an array of input items",
            ))
        }
    };
    for (i, item) in items.iter().enumerate() {
        let Some(item) = item.as_object() else {
            return Err(ApiError::invalid(
                format!("input[{i}]"),
                format!("`input[{i}]` must be an object"),
            ));
        };
        if let Some(message) = input_item(i, item)? {
            messages.push(message);
        }
    }
    Ok(())
}

/// The outputs of the `function_call_output` items the input ends with.
fn trailing_outputs(input: &Value) -> Vec<String> {
    let Some(items) = input.as_array() else {
        return Vec::new();
    };
    let mut outputs: Vec<String> = items
        .iter()
        .rev()
        .take_while(|item| item.get("type").and_then(Value::as_str) == Some("function_call_output"))
        .map(|item| match item.get("output") {
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        })
        .collect();
    outputs.reverse();
    outputs
}

/// One input item as a message of the text-only view; `None` for the
/// model's own items (function calls, reasoning), which carry no text to
/// send back.
fn input_item(i: usize, item: &Map<String, Value>) -> Result<Option<Message>, ApiError> {
    let field = |name: &str| format!("input[{i}].{name}");
    match item.get("type").and_then(Value::as_str) {
        None | Some("message") => {}
        Some("function_call_output") => {
            let output = match item.get("output") {
                Some(Value::String(text)) => text.clone(),
                Some(other) => other.to_string(),
                None => String::new(),
            };
            return Ok(Some(Message {
                role: Role::User,
                content: output,
            }));
        }
        Some("function_call" | "reasoning") => return Ok(None),
        Some(other) => {
            return Err(ApiError::invalid(
                field("type"),
                format!(
                    "`{}`: sluice does not take `{other}` input items: send messages",
                    field("type")
                ),
            ))
        }
    }
    let role = match item.get("role").and_then(Value::as_str) {
        Some("system" | "developer") => Role::System,
        Some("user") => Role::User,
        Some("assistant") => Role::Assistant,
        Some(other) => {
            return Err(ApiError::invalid(
                field("role"),
                format!(
                    "`{}`: unknown role `{other}`: expected user, assistant, system or developer",
                    field("role")
                ),
            ))
        }
        None => {
            return Err(ApiError::invalid(
                field("role"),
                format!("`{}` is missing", field("role")),
            ))
        }
    };
    let content = match item.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => text_of_parts(&field("content"), parts)?,
        Some(_) => {
            return Err(ApiError::invalid(
                field("content"),
                format!(
                    "`{}` must be a string or an array of content parts",
                    field("content")
                ),
            ))
        }
    };
    Ok(Some(Message { role, content }))
}

/// The text of `input_text` (and, in an assistant's turn, `output_text`)
/// parts, joined by newlines.
fn text_of_parts(field: &str, parts: &[Value]) -> Result<String, ApiError> {
    let mut texts = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let at = format!("{field}[{j}]");
        match part.get("type").and_then(Value::as_str) {
            Some("input_text" | "output_text" | "text") => match part.get("text") {
                Some(Value::String(text)) => texts.push(text.as_str()),
                _ => {
                    return Err(ApiError::invalid(
                        format!("{at}.text"),
                        format!("`{at}.text` must be a string"),
                    ))
                }
            },
            Some("refusal") => {}
            Some(other) => {
                return Err(ApiError::invalid(
                    format!("{at}.type"),
                    format!("`{at}.type`: sluice carries text only, not `{other}` parts"),
                ))
            }
            None => {
                return Err(ApiError::invalid(
                    format!("{at}.type"),
                    format!("`{at}.type` is missing"),
                ))
            }
        }
    }
    Ok(texts.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(body: Value) -> Result<ParsedRequest, ApiError> {
        parse_request(body.to_string().as_bytes())
    }

    fn param(body: Value) -> String {
        parsed(body).err().and_then(|e| e.param).unwrap_or_default()
    }

    #[test]
    fn messages_and_instructions_become_the_text_view() {
        let request = parsed(serde_json::json!({
            "model": "mock", "instructions": "Be brief.", "max_output_tokens": 20,
            "input": [
                {"role": "user", "content": [{"type": "input_text", "text": "Hi"}, {"type": "input_text", "text": "there"}]},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello"}]},
                {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "42"},
                {"role": "developer", "content": "Use metric units."},
            ],
            "tools": [], "store": true,
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
                (Role::System, "Be brief."),
                (Role::User, "Hi\nthere"),
                (Role::Assistant, "Hello"),
                (Role::User, "42"),
                (Role::System, "Use metric units."),
            ]
        );
        assert_eq!(request.generation.max_tokens, Some(20));
        assert!(!request.stream);
    }

    #[test]
    fn a_wrong_field_is_named() {
        let input = "Hi";
        assert_eq!(param(serde_json::json!({})), "input");
        assert_eq!(param(serde_json::json!({"input": []})), "input");
        assert_eq!(param(serde_json::json!({"input": 3})), "input");
        assert_eq!(
            param(serde_json::json!({"input": input, "max_output_tokens": 0})),
            "max_output_tokens"
        );
        assert_eq!(
            param(serde_json::json!({"input": input, "temperature": 3})),
            "temperature"
        );
        assert_eq!(
            param(serde_json::json!({"input": input, "stream": "yes"})),
            "stream"
        );
        assert_eq!(
            param(serde_json::json!({"input": input, "previous_response_id": "resp_1"})),
            "previous_response_id"
        );
        assert_eq!(
            param(
                serde_json::json!({"input": [{"role": "user", "content": [{"type": "input_image", "image_url": "x"}]}]})
            ),
            "input[0].content[0].type"
        );
        assert_eq!(
            param(serde_json::json!({"input": [{"role": "robot", "content": "x"}]})),
            "input[0].role"
        );
        assert_eq!(
            param(serde_json::json!({"input": input, "mock": {"tokens": "many"}})),
            "mock.tokens"
        );
    }
}
