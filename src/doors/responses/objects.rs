//! The Responses API's objects, as serde structs so that fields come out in
//! OpenAI's order: the `response` (in every lifecycle event and as the
//! non-streaming answer), its one `message` output item and that item's
//! `output_text` part.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{json, Value};

use super::request::Echo;
use crate::error::ApiError;
use crate::generation::{Finish, Usage};

/// What every event of one response repeats: its ids, time, model and the
/// request's settings.
#[derive(Debug, Clone)]
pub struct Head {
    pub id: String,
    /// The id of the one `message` output item.
    pub item_id: String,
    pub created_at: u64,
    pub model: String,
    pub echo: Echo,
}

impl Head {
    pub fn new(model: &str, echo: Echo) -> Head {
        let created_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Head {
            id: format!("resp_{}", uuid::Uuid::new_v4().simple()),
            item_id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
            created_at,
            model: model.to_owned(),
            echo,
        }
    }

    /// The `response` object in a given state.
    pub fn response<'a>(&'a self, state: State<'a>) -> ResponseObject<'a> {
        let (status, incomplete_details, error, output, usage) = match state {
            State::InProgress => ("in_progress", None, None, Vec::new(), None),
            State::Finished { finish, text } => {
                let (status, reason) = outcome(finish);
                let item_status = match reason {
                    Some(_) => "incomplete",
                    None => "completed",
                };
                let details = reason.map(|reason| IncompleteDetails { reason });
                let usage = Some(ResponseUsage::from(finish.usage));
                (
                    status,
                    details,
                    None,
                    vec![self.message(item_status, text)],
                    usage,
                )
            }
            State::Failed { error, text } => (
                "failed",
                None,
                Some(ResponseError {
                    code: error.kind.as_str(),
                    message: &error.message,
                }),
                vec![self.message("incomplete", text)],
                None,
            ),
        };
        ResponseObject {
            id: &self.id,
            object: "response",
            created_at: self.created_at,
            status,
            error,
            incomplete_details,
            instructions: self.echo.instructions.as_deref(),
            max_output_tokens: self.echo.max_output_tokens,
            model: &self.model,
            output,
            parallel_tool_calls: true,
            previous_response_id: None,
            reasoning: json!({"effort": null, "summary": null}),
            store: false,
            temperature: self.echo.temperature.unwrap_or(1.0),
            text: json!({"format": {"type": "text"}}),
            tool_choice: "auto",
            tools: [],
            top_p: self.echo.top_p.unwrap_or(1.0),
            truncation: "disabled",
            usage,
            user: None,
            metadata: json!({}),
        }
    }

    /// The `message` output item, holding `text` so far.
    pub fn message<'a>(&'a self, status: &'static str, text: &'a str) -> OutputMessage<'a> {
        OutputMessage {
            status,
            content: vec![OutputText::new(text)],
            ..self.empty_message()
        }
    }

    /// The `message` output item as `response.output_item.added` announces
    /// it: its one part comes in the next event.
    pub fn empty_message(&self) -> OutputMessage<'_> {
        OutputMessage {
            id: &self.item_id,
            kind: "message",
            status: "in_progress",
            role: "assistant",
            content: Vec::new(),
        }
    }
}

/// Where a response is in its life.
pub enum State<'a> {
    InProgress,
    Finished { finish: &'a Finish, text: &'a str },
    Failed { error: &'a ApiError, text: &'a str },
}

/// A response's status for how the generation finished, and the reason it
/// is incomplete when it is.
fn outcome(finish: &Finish) -> (&'static str, Option<&'static str>) {
    match finish.finish_reason.as_str() {
        "length" => ("incomplete", Some("max_output_tokens")),
        "content_filter" => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    }
}

#[derive(Debug, Serialize)]
pub struct ResponseObject<'a> {
    id: &'a str,
    object: &'static str,
    created_at: u64,
    pub status: &'static str,
    error: Option<ResponseError<'a>>,
    incomplete_details: Option<IncompleteDetails>,
    instructions: Option<&'a str>,
    max_output_tokens: Option<u32>,
    model: &'a str,
    output: Vec<OutputMessage<'a>>,
    parallel_tool_calls: bool,
    previous_response_id: Option<&'a str>,
    reasoning: Value,
    store: bool,
    temperature: f64,
    text: Value,
    tool_choice: &'static str,
    tools: [(); 0],
    top_p: f64,
    truncation: &'static str,
    usage: Option<ResponseUsage>,
    user: Option<&'a str>,
    metadata: Value,
}

#[derive(Debug, Serialize)]
struct ResponseError<'a> {
    /// The contract's error type (`upstream_error`, `idle_timeout`, ...).
    code: &'static str,
    message: &'a str,
}

#[derive(Debug, Serialize)]
struct IncompleteDetails {
    reason: &'static str,
}

#[derive(Debug, Serialize)]
pub struct OutputMessage<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    status: &'static str,
    role: &'static str,
    content: Vec<OutputText<'a>>,
}

#[derive(Debug, Serialize)]
pub struct OutputText<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    annotations: [(); 0],
    logprobs: [(); 0],
    text: &'a str,
}

impl OutputText<'_> {
    pub fn new(text: &str) -> OutputText<'_> {
        OutputText {
            kind: "output_text",
            annotations: [],
            logprobs: [],
            text,
        }
    }
}

/// Usage in the Responses API's names.
#[derive(Debug, Serialize)]
struct ResponseUsage {
    input_tokens: u32,
    input_tokens_details: Value,
    output_tokens: u32,
    output_tokens_details: Value,
    total_tokens: u32,
}

impl From<Usage> for ResponseUsage {
    fn from(usage: Usage) -> Self {
        ResponseUsage {
            input_tokens: usage.prompt_tokens,
            input_tokens_details: json!({"cached_tokens": 0}),
            output_tokens: usage.completion_tokens,
            output_tokens_details: json!({"reasoning_tokens": 0}),
            total_tokens: usage.total_tokens,
        }
    }
}
