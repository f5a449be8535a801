//! The Messages API's objects: the `message` (opening a stream, or the whole
//! non-streaming answer), stop reasons and usage in Anthropic's words.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::generation::{Finish, Usage};
use crate::pipeline::collect::Collected;

/// What a message repeats wherever it appears: its id and model.
#[derive(Debug, Clone)]
pub struct Head {
    pub id: String,
    pub model: String,
    /// sluice's count of the prompt, for `message_start` (the provider's own
    /// count, when it reports one, comes in `message_delta`).
    pub prompt_tokens: u32,
}

impl Head {
    pub fn new(model: &str, prompt_tokens: u32) -> Head {
        Head {
            id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
            model: model.to_owned(),
            prompt_tokens,
        }
    }

    /// The `message` as `message_start` opens it: no content yet.
    pub fn started(&self) -> MessageObject<'_> {
        MessageObject {
            id: &self.id,
            kind: "message",
            role: "assistant",
            model: &self.model,
            content: Vec::new(),
            stop_reason: None,
            stop_sequence: None,
            usage: MessageUsage {
                input_tokens: self.prompt_tokens,
                output_tokens: 0,
            },
        }
    }

    /// The whole `message` of a finished generation: its thinking, its
    /// text, its tool calls.
    pub fn finished<'a>(&'a self, collected: &'a Collected) -> MessageObject<'a> {
        let mut content = Vec::new();
        if !collected.reasoning.is_empty() {
            content.push(Block::Thinking {
                thinking: &collected.reasoning,
                signature: collected.signature.as_deref().unwrap_or(""),
            });
        }
        if !collected.content.is_empty() || collected.tool_calls.is_empty() {
            content.push(Block::Text {
                text: &collected.content,
            });
        }
        for call in &collected.tool_calls {
            content.push(Block::ToolUse {
                id: tool_use_id(call["id"].as_str().unwrap_or("")),
                name: call["function"]["name"].as_str().unwrap_or(""),
                input: tool_input(call["function"]["arguments"].as_str().unwrap_or("")),
            });
        }
        let finish = &collected.finish;
        MessageObject {
            content,
            stop_reason: Some(stop_reason(finish)),
            stop_sequence: finish.stop_sequence.as_deref(),
            usage: MessageUsage::from(finish.usage),
            ..self.started()
        }
    }
}

#[derive(Debug, Serialize)]
pub struct MessageObject<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    role: &'static str,
    model: &'a str,
    content: Vec<Block<'a>>,
    stop_reason: Option<&'static str>,
    stop_sequence: Option<&'a str>,
    usage: MessageUsage,
}

/// A content block, as `content_block_start` opens it (empty) or a whole
/// message lists it.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block<'a> {
    Text {
        text: &'a str,
    },
    Thinking {
        thinking: &'a str,
        signature: &'a str,
    },
    ToolUse {
        id: std::borrow::Cow<'a, str>,
        name: &'a str,
        input: Value,
    },
}

/// A tool call's id as Anthropic writes one (`toolu_...`): an OpenAI-style
/// `call_...` id (the mock's, an OpenAI upstream's) gets Anthropic's prefix
/// instead, so clients that check the prefix accept it. The client sends it
/// back in its `tool_result`, and both turns carry the same id.
pub fn tool_use_id(id: &str) -> std::borrow::Cow<'_, str> {
    if id.is_empty() || id.starts_with("toolu_") {
        return std::borrow::Cow::Borrowed(id);
    }
    let rest = id.strip_prefix("call_").unwrap_or(id);
    std::borrow::Cow::Owned(format!("toolu_{rest}"))
}

/// A tool call's arguments as the `input` object Anthropic's `tool_use`
/// carries; arguments that are not a JSON object (a broken upstream) are
/// kept under `arguments` rather than lost.
pub fn tool_input(arguments: &str) -> Value {
    if arguments.trim().is_empty() {
        return Value::Object(Map::new());
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(object @ Value::Object(_)) => object,
        Ok(_) | Err(_) => {
            let mut kept = Map::new();
            kept.insert("arguments".into(), Value::from(arguments));
            Value::Object(kept)
        }
    }
}

/// Anthropic's stop reason for how a generation finished.
pub fn stop_reason(finish: &Finish) -> &'static str {
    match finish.finish_reason.as_str() {
        "length" => "max_tokens",
        "tool_calls" => "tool_use",
        "content_filter" => "refusal",
        _ if finish.stop_sequence.is_some() => "stop_sequence",
        _ => "end_turn",
    }
}

/// Usage in Anthropic's names; `message_delta` and the whole message carry
/// the final counts.
#[derive(Debug, Serialize)]
pub struct MessageUsage {
    input_tokens: u32,
    output_tokens: u32,
}

impl From<Usage> for MessageUsage {
    fn from(usage: Usage) -> Self {
        MessageUsage {
            input_tokens: usage.prompt_tokens,
            output_tokens: usage.completion_tokens,
        }
    }
}
