//! The Messages API's objects: the `message` (opening a stream, or the whole
//! non-streaming answer), stop reasons and usage in Anthropic's words.

use serde::Serialize;

use crate::generation::{Finish, Usage};

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

    /// The whole `message` of a finished generation.
    pub fn finished<'a>(&'a self, text: &'a str, finish: &'a Finish) -> MessageObject<'a> {
        MessageObject {
            content: vec![Text::new(text)],
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
    content: Vec<Text<'a>>,
    stop_reason: Option<&'static str>,
    stop_sequence: Option<&'a str>,
    usage: MessageUsage,
}

/// A `text` content block.
#[derive(Debug, Serialize)]
pub struct Text<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

impl Text<'_> {
    pub fn new(text: &str) -> Text<'_> {
        Text { kind: "text", text }
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
