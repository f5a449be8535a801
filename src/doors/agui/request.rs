//! AG-UI's `RunAgentInput`: `threadId`, `runId`, `messages`, `tools` (the
//! frontend's, `{name, description, parameters}`), `state`, `context` and
//! `forwardedProps`, which may carry the section 1 fields
//! ([`Settings`]: `model`, `system`, `template`, `mock`, ...; its other
//! keys are the app's and are left alone).
//!
//! AG-UI's messages already have Chat Completions' shape for tool calls
//! (`toolCalls` on an assistant message, `tool` messages with
//! `toolCallId`), so the conversation reads into the text view and, when it
//! holds tool calls, into Chat Completions' messages for OpenAI-compatible
//! upstreams. `context` entries join the system prompt. The input is read as
//! loosely as AG-UI's own schema reads it (fields it does not know are
//! ignored), but a field sluice uses with the wrong type is a 400 naming it.

use serde_json::{json, Map, Value};

use crate::doors::settings::{Conversation, Settings, FIELDS};
use crate::error::ApiError;
use crate::generation::{GenRequest, Message, Role, Tool};
use crate::templates::Templates;

/// A run, ready for the pipeline.
#[derive(Debug)]
pub struct RunInput {
    pub thread_id: String,
    pub run_id: String,
    pub model: Option<String>,
    pub generation: GenRequest,
}

fn invalid(field: impl Into<String>, what: &str) -> ApiError {
    let field = field.into();
    ApiError::invalid(field.clone(), format!("`{field}` {what}"))
}

/// Reads `body` into a run.
pub fn parse(body: &[u8], templates: &Templates) -> Result<RunInput, ApiError> {
    let json: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid("body", format!("malformed JSON: {e}")))?;
    let Value::Object(input) = json else {
        return Err(ApiError::invalid(
            "body",
            "the request body must be a JSON object (AG-UI's RunAgentInput)",
        ));
    };
    let string = |key: &str| match input.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(invalid(key, "must be a non-empty string")),
    };
    let thread_id = string("threadId")?;
    let run_id = string("runId")?;
    let Some(messages) = input.get("messages").and_then(Value::as_array) else {
        return Err(invalid("messages", "must be an array of AG-UI messages"));
    };
    let settings = match input.get("forwardedProps") {
        None | Some(Value::Null) => Settings::default(),
        Some(Value::Object(props)) => Settings::read(
            props
                .iter()
                .filter(|(key, _)| FIELDS.contains(&key.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
        .map_err(|err| ApiError {
            param: err.param.as_ref().map(|p| format!("forwardedProps.{p}")),
            ..err
        })?,
        Some(_) => return Err(invalid("forwardedProps", "must be an object")),
    };
    let mut reader = Reader::default();
    if let Some(context) = context(input.get("context"))? {
        reader.out.text.push(Message {
            role: Role::System,
            content: context.clone(),
        });
        reader
            .out
            .raw
            .push(json!({"role": "system", "content": context}));
    }
    for (i, message) in messages.iter().enumerate() {
        reader.message(i, message)?;
    }
    let (mut generation, model) = settings.into_generation(templates, reader.out)?;
    generation.tools = tools(input.get("tools"))?;
    generation.validate()?;
    Ok(RunInput {
        thread_id,
        run_id,
        model,
        generation,
    })
}

/// `context`: `{description, value}` entries, as one system message.
fn context(context: Option<&Value>) -> Result<Option<String>, ApiError> {
    let entries = match context {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(entries)) if entries.is_empty() => return Ok(None),
        Some(Value::Array(entries)) => entries,
        Some(_) => return Err(invalid("context", "must be an array")),
    };
    let mut lines = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let field = |name: &str| entry.get(name).and_then(Value::as_str);
        match (field("description"), field("value")) {
            (Some(description), Some(value)) => lines.push(format!("{description}: {value}")),
            _ => {
                return Err(invalid(
                    format!("context[{i}]"),
                    "must have a string `description` and `value`",
                ))
            }
        }
    }
    Ok(Some(lines.join("\n")))
}

/// `tools`: the frontend's tools.
fn tools(tools: Option<&Value>) -> Result<Vec<Tool>, ApiError> {
    let list = match tools {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(invalid("tools", "must be an array of tools")),
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, tool) in list.iter().enumerate() {
        let name = match tool.get("name") {
            Some(Value::String(name)) if !name.is_empty() => name.clone(),
            _ => {
                return Err(invalid(
                    format!("tools[{i}].name"),
                    "must be a non-empty string",
                ))
            }
        };
        let parameters = match tool.get("parameters") {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(schema @ (Value::Object(_) | Value::Bool(_))) => schema.clone(),
            Some(_) => {
                return Err(invalid(
                    format!("tools[{i}].parameters"),
                    "must be a JSON Schema object",
                ))
            }
        };
        out.push(Tool {
            name,
            description: tool
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned),
            parameters,
        });
    }
    Ok(out)
}

/// Reads AG-UI messages into a [`Conversation`].
#[derive(Default)]
struct Reader {
    out: Conversation,
}

impl Reader {
    fn message(&mut self, i: usize, message: &Value) -> Result<(), ApiError> {
        let at = |field: &str| format!("messages[{i}].{field}");
        let role = message.get("role").and_then(Value::as_str).unwrap_or("");
        if role != "tool" {
            self.out.trailing_results.clear();
        }
        match role {
            "system" | "developer" | "user" => {
                let content = content(message.get("content"), &at("content"))?;
                let role = match role {
                    "user" => Role::User,
                    _ => Role::System,
                };
                let raw_role = match role {
                    Role::User => "user",
                    Role::System | Role::Assistant => "system",
                };
                self.out
                    .raw
                    .push(json!({"role": raw_role, "content": content}));
                self.out.text.push(Message { role, content });
            }
            "assistant" => {
                let content = match message.get("content") {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(text)) => text.clone(),
                    Some(_) => return Err(invalid(at("content"), "must be a string")),
                };
                let calls = match message.get("toolCalls") {
                    None | Some(Value::Null) => Vec::new(),
                    Some(Value::Array(calls)) => calls.clone(),
                    Some(_) => return Err(invalid(at("toolCalls"), "must be an array")),
                };
                for (j, call) in calls.iter().enumerate() {
                    let ok = call.get("id").is_some_and(Value::is_string)
                        && call["function"]["name"].is_string()
                        && call["function"]["arguments"].is_string();
                    if !ok {
                        return Err(invalid(
                            format!("messages[{i}].toolCalls[{j}]"),
                            "must be {id, type: \"function\", function: {name, arguments}}",
                        ));
                    }
                }
                if !content.is_empty() {
                    self.out.text.push(Message {
                        role: Role::Assistant,
                        content: content.clone(),
                    });
                }
                let mut raw = json!({"role": "assistant", "content": content});
                if !calls.is_empty() {
                    self.out.has_tools = true;
                    raw["tool_calls"] = Value::from(calls);
                }
                self.out.raw.push(raw);
            }
            "tool" => {
                let content = content(message.get("content"), &at("content"))?;
                let Some(id) = message.get("toolCallId").and_then(Value::as_str) else {
                    return Err(invalid(at("toolCallId"), "must be a string"));
                };
                self.out.has_tools = true;
                self.out
                    .raw
                    .push(json!({"role": "tool", "tool_call_id": id, "content": content}));
                self.out.trailing_results.push(content.clone());
                self.out.text.push(Message {
                    role: Role::User,
                    content,
                });
            }
            // What the agent showed, not what the model is told.
            "reasoning" | "activity" => {}
            _ => {
                return Err(invalid(
                    at("role"),
                    "must be one of user, assistant, system, developer, tool, reasoning, activity",
                ))
            }
        }
        Ok(())
    }
}

/// A message's `content`: a string, or text parts (other parts are a 400).
fn content(content: Option<&Value>, at: &str) -> Result<String, ApiError> {
    match content {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for (j, part) in parts.iter().enumerate() {
                match (part.get("type").and_then(Value::as_str), part.get("text")) {
                    (Some("text"), Some(Value::String(piece))) => text.push_str(piece),
                    (Some(other), _) if other != "text" => {
                        return Err(invalid(
                            format!("{at}[{j}].type"),
                            &format!("`{other}`: sluice carries text parts only"),
                        ))
                    }
                    _ => return Err(invalid(format!("{at}[{j}].text"), "must be a string")),
                }
            }
            Ok(text)
        }
        _ => Err(invalid(at, "must be a string or an array of text parts")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_json(body: Value) -> Result<RunInput, ApiError> {
        let templates = Templates::load(std::path::Path::new("/nonexistent-sluice-prompts"));
        parse(body.to_string().as_bytes(), &templates)
    }

    #[test]
    fn a_tool_result_turn_reads_into_both_views() {
        let run = parse_json(json!({
            "threadId": "t1", "runId": "r1", "state": {}, "context": [{"description": "Units", "value": "metric"}],
            "forwardedProps": {"model": "mock", "copilotkit": {"x": 1}},
            "tools": [{"name": "weather", "description": "Weather", "parameters": {"type": "object"}}],
            "messages": [
                {"id": "1", "role": "user", "content": "Weather in Paris?"},
                {"id": "2", "role": "assistant", "toolCalls": [
                    {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
                {"id": "3", "role": "tool", "toolCallId": "c1", "content": "21 C"},
            ],
        }))
        .unwrap();
        assert_eq!(run.model.as_deref(), Some("mock"));
        let g = &run.generation;
        assert_eq!(g.tool_results, ["21 C"]);
        assert_eq!(g.messages[0].content, "Units: metric");
        let raw = g.raw_messages.as_ref().unwrap();
        assert_eq!(raw.len(), 4);
        assert_eq!(raw[3]["tool_call_id"], "c1");
        assert_eq!(g.tools[0].name, "weather");
    }

    #[test]
    fn bad_input_names_its_field() {
        let base = json!({"threadId": "t", "runId": "r", "messages": [{"id": "1", "role": "user", "content": "hi"}]});
        let with = |key: &str, value: Value| {
            let mut body = base.clone();
            body[key] = value;
            body
        };
        let cases = [
            (with("threadId", json!(3)), "threadId"),
            (with("messages", json!({})), "messages"),
            (
                with(
                    "messages",
                    json!([{"id": "1", "role": "user", "content": [{"type": "image", "url": "x"}]}]),
                ),
                "messages[0].content[0].type",
            ),
            (
                with(
                    "messages",
                    json!([{"id": "1", "role": "tool", "content": "x"}]),
                ),
                "messages[0].toolCallId",
            ),
            (
                with("tools", json!([{"description": "no name"}])),
                "tools[0].name",
            ),
            (
                with("forwardedProps", json!({"max_tokens": "many"})),
                "forwardedProps.max_tokens",
            ),
        ];
        for (body, field) in cases {
            let err = parse_json(body.clone()).unwrap_err();
            assert_eq!(err.param.as_deref(), Some(field), "{body}: {err:?}");
        }
    }
}
