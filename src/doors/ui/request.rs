//! The body `useChat` sends (its `DefaultChatTransport`): `id` (the chat),
//! `messages` (UI messages, each a list of `parts`), `trigger`,
//! `messageId`, the page's `tools` and `tool_choice` in Chat Completions'
//! shape, and the section 1 fields an app adds through the transport's
//! `body` ([`Settings`]).
//!
//! The conversation is read into two views, as the other doors do: the text
//! view (`messages`: tool results as user text) and, when the conversation
//! holds tool calls, Chat Completions' own messages (`raw_messages`:
//! assistant `tool_calls` and `tool` results) for OpenAI-compatible
//! upstreams.

use serde_json::{json, Map, Value};

use crate::doors::settings::{Conversation, Settings};
use crate::doors::tools::{self, Dialect};
use crate::error::ApiError;
use crate::generation::{GenRequest, Message, Role};
use crate::templates::Templates;

/// The most characters a chat id may have: it names a resource (a path
/// segment and a store key).
const MAX_CHAT_ID: usize = 255;

/// A UI door request, ready for the pipeline.
#[derive(Debug)]
pub struct UiRequest {
    /// The chat the answer belongs to.
    pub chat: String,
    /// The model asked for (the body's, else the template's).
    pub model: Option<String>,
    pub generation: GenRequest,
}

/// Reads `body` into a request.
pub fn parse(body: &[u8], templates: &Templates) -> Result<UiRequest, ApiError> {
    let json: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid("body", format!("malformed JSON: {e}")))?;
    let Value::Object(mut fields) = json else {
        return Err(ApiError::invalid(
            "body",
            "the request body must be a JSON object",
        ));
    };
    let chat = chat_id(fields.remove("id"))?;
    let messages = match fields.remove("messages") {
        Some(Value::Array(messages)) if !messages.is_empty() => messages,
        Some(Value::Array(_)) => {
            return Err(ApiError::invalid(
                "messages",
                "`messages` must not be empty",
            ))
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "messages",
                "`messages` must be an array of UI messages",
            ))
        }
        None => return Err(ApiError::invalid("messages", "missing field `messages`")),
    };
    // The transport's own fields, which change nothing in the answer: a
    // regenerate comes with the conversation already cut back.
    for key in ["trigger", "messageId"] {
        match fields.remove(key) {
            None | Some(Value::Null | Value::String(_)) => {}
            Some(_) => return Err(ApiError::invalid(key, format!("`{key}` must be a string"))),
        }
    }
    let mut tool_fields = Map::new();
    for key in ["tools", "tool_choice"] {
        if let Some(value) = fields.remove(key) {
            tool_fields.insert(key.to_owned(), value);
        }
    }
    let settings = Settings::read(fields)?;
    let conversation = Reader::read(&messages)?;
    let (mut generation, model) = settings.into_generation(templates, conversation)?;
    generation.tools = tools::tools(&tool_fields, Dialect::Chat)?;
    generation.tool_choice = tools::choice(&tool_fields, Dialect::Chat)?;
    generation.validate()?;
    Ok(UiRequest {
        chat,
        model,
        generation,
    })
}

/// `id`: the chat, a non-empty string of visible characters.
fn chat_id(id: Option<Value>) -> Result<String, ApiError> {
    let id = match id {
        Some(Value::String(id)) => id,
        Some(_) => {
            return Err(ApiError::invalid(
                "id",
                "`id` (the chat id) must be a string",
            ))
        }
        None => {
            return Err(ApiError::invalid(
                "id",
                "missing field `id` (the chat id useChat sends)",
            ))
        }
    };
    let visible = id.chars().all(|c| !c.is_control() && !c.is_whitespace());
    if id.is_empty() || id.chars().count() > MAX_CHAT_ID || !visible || id == "." || id == ".." {
        return Err(ApiError::invalid(
            "id",
            format!("`id` must be 1 to {MAX_CHAT_ID} visible characters (and not `.` or `..`)"),
        ));
    }
    Ok(id)
}

/// Reads the UI messages into a [`Conversation`].
#[derive(Default)]
struct Reader {
    out: Conversation,
}

/// One step of an assistant message: its text and its tool calls, with the
/// results the page has for them.
#[derive(Default)]
struct Step {
    text: String,
    calls: Vec<Value>,
    results: Vec<(String, String)>,
}

impl Reader {
    fn read(messages: &[Value]) -> Result<Conversation, ApiError> {
        let mut out = Reader::default();
        for (i, message) in messages.iter().enumerate() {
            let at = |field: &str| format!("messages[{i}].{field}");
            let Some(message) = message.as_object() else {
                return Err(ApiError::invalid(
                    format!("messages[{i}]"),
                    format!("`messages[{i}]` must be a UI message object"),
                ));
            };
            let role = match message.get("role").and_then(Value::as_str) {
                Some("system") => Role::System,
                Some("user") => Role::User,
                Some("assistant") => Role::Assistant,
                _ => {
                    return Err(ApiError::invalid(
                        at("role"),
                        format!(
                            "`{}` must be \"system\", \"user\" or \"assistant\"",
                            at("role")
                        ),
                    ))
                }
            };
            let Some(parts) = message.get("parts").and_then(Value::as_array) else {
                return Err(ApiError::invalid(
                    at("parts"),
                    format!("`{}` must be an array of parts", at("parts")),
                ));
            };
            out.message(i, role, parts)?;
        }
        Ok(out.out)
    }

    fn message(&mut self, i: usize, role: Role, parts: &[Value]) -> Result<(), ApiError> {
        let mut step = Step::default();
        // Only the last message's results are the ones to answer.
        self.out.trailing_results.clear();
        for (j, part) in parts.iter().enumerate() {
            let at = |field: &str| format!("messages[{i}].parts[{j}].{field}");
            let kind = part.get("type").and_then(Value::as_str).unwrap_or("");
            match kind {
                "text" => {
                    let Some(text) = part.get("text").and_then(Value::as_str) else {
                        return Err(ApiError::invalid(
                            at("text"),
                            format!("`{}` must be a string", at("text")),
                        ));
                    };
                    if !step.results.is_empty() {
                        self.close(role, std::mem::take(&mut step));
                    }
                    step.text.push_str(text);
                }
                // A new step of the same answer: what came before is one
                // assistant turn, with its tool results after it.
                "step-start" => self.close(role, std::mem::take(&mut step)),
                // The model's own, or the app's: nothing to send back.
                "reasoning" | "source-url" | "source-document" => {}
                _ if kind.starts_with("data-") => {}
                _ if kind == "dynamic-tool" || kind.starts_with("tool-") => {
                    if role != Role::Assistant {
                        return Err(ApiError::invalid(
                            at("type"),
                            format!("`{}`: tool parts belong to assistant messages", at("type")),
                        ));
                    }
                    tool_part(part, kind, &at, &mut step)?;
                }
                other => {
                    return Err(ApiError::invalid(
                        at("type"),
                        format!(
                            "`{}`: sluice cannot carry `{other}` parts: send text parts (and tool parts)",
                            at("type")
                        ),
                    ))
                }
            }
        }
        // Text after a result closed that step, so results still in the
        // last step are what the message ends with.
        let trailing: Vec<String> = step.results.iter().map(|(_, r)| r.clone()).collect();
        self.close(role, step);
        self.out.trailing_results = trailing;
        Ok(())
    }

    /// Ends a step: the assistant turn (its text, its calls) and the
    /// results, in both views.
    fn close(&mut self, role: Role, step: Step) {
        let Step {
            text,
            calls,
            results,
        } = step;
        if !text.is_empty() {
            self.out.text.push(Message {
                role,
                content: text.clone(),
            });
        }
        if calls.is_empty() {
            if !text.is_empty() {
                let role = match role {
                    Role::System => "system",
                    Role::User => "user",
                    Role::Assistant => "assistant",
                };
                self.out.raw.push(json!({"role": role, "content": text}));
            }
            return;
        }
        self.out.has_tools = true;
        let content = (!text.is_empty()).then_some(text);
        self.out
            .raw
            .push(json!({"role": "assistant", "content": content, "tool_calls": calls}));
        for (id, result) in results {
            self.out.text.push(Message {
                role: Role::User,
                content: result.clone(),
            });
            self.out
                .raw
                .push(json!({"role": "tool", "tool_call_id": id, "content": result}));
        }
    }
}

/// A tool part (`tool-NAME`, or `dynamic-tool` with `toolName`): a call,
/// with its result when the page has one. A call still waiting for its
/// result is left out: an upstream refuses a call with no result.
fn tool_part(
    part: &Value,
    kind: &str,
    at: &dyn Fn(&str) -> String,
    step: &mut Step,
) -> Result<(), ApiError> {
    let name = match kind.strip_prefix("tool-") {
        Some(name) => name.to_owned(),
        None => match part.get("toolName").and_then(Value::as_str) {
            Some(name) => name.to_owned(),
            None => {
                return Err(ApiError::invalid(
                    at("toolName"),
                    format!("`{}` must name the tool", at("toolName")),
                ))
            }
        },
    };
    let Some(id) = part.get("toolCallId").and_then(Value::as_str) else {
        return Err(ApiError::invalid(
            at("toolCallId"),
            format!("`{}` must be a string", at("toolCallId")),
        ));
    };
    let result = match part.get("state").and_then(Value::as_str) {
        Some("output-available") => match part.get("output") {
            Some(Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        },
        Some("output-error") => {
            let error = part.get("errorText").and_then(Value::as_str).unwrap_or("");
            format!("Error: {error}")
        }
        Some("output-denied") => "The user denied this tool call.".to_owned(),
        _ => return Ok(()),
    };
    let input = part.get("input").cloned().unwrap_or_else(|| json!({}));
    step.calls.push(json!({
        "id": id,
        "type": "function",
        "function": {"name": name, "arguments": input.to_string()},
    }));
    step.results.push((id.to_owned(), result));
    Ok(())
}

#[cfg(test)]
mod tests;
