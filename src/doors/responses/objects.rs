//! The Responses API's objects, as serde structs so that fields come out in
//! OpenAI's order: the `response` (in every lifecycle event and as the
//! non-streaming answer) and its output items: `reasoning`, `message` and
//! `function_call`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde::ser::{Serialize, Serializer};
use serde_json::{json, Value};

use super::request::Echo;
use crate::error::ApiError;
use crate::generation::{Finish, Usage};
use crate::pipeline::collect::Collected;

/// What every event of one response repeats: its id, time, model and the
/// request's settings.
#[derive(Debug, Clone)]
pub struct Head {
    pub id: String,
    pub created_at: u64,
    pub model: String,
    pub echo: Echo,
}

/// A fresh id with OpenAI's prefix for the kind of object (`resp`, `msg`,
/// `rs`, `fc`).
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::new_v4().simple())
}

/// The id of the response generation `gen_X` is (background mode): `resp_X`.
pub fn response_id(generation: &str) -> String {
    format!(
        "resp_{}",
        generation.strip_prefix("gen_").unwrap_or(generation)
    )
}

/// The generation a background response's id names, `resp_X` -> `gen_X`.
pub fn generation_of(response: &str) -> Option<String> {
    response
        .strip_prefix("resp_")
        .filter(|rest| !rest.is_empty())
        .map(|rest| format!("gen_{rest}"))
}

impl Head {
    /// The head of the response generation `log` is: its id and creation
    /// time are the generation's, the same in every view of it.
    pub fn of_generation(log: &crate::generations::Log, echo: Echo) -> Head {
        Head {
            id: response_id(log.id().as_str()),
            created_at: log.created(),
            model: log.model(),
            echo,
        }
    }

    pub fn new(model: &str, echo: Echo) -> Head {
        let created_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Head {
            id: new_id("resp"),
            created_at,
            model: model.to_owned(),
            echo,
        }
    }

    /// The `response` object at an `outcome`, listing `output`.
    pub fn response<'a>(&'a self, outcome: Outcome<'a>, output: &'a [Item]) -> ResponseObject<'a> {
        let (status, incomplete_details, error, usage) = match outcome {
            Outcome::InProgress => ("in_progress", None, None, None),
            Outcome::Finished(finish) => {
                let (status, reason) = status_of(finish);
                let details = reason.map(|reason| IncompleteDetails { reason });
                (
                    status,
                    details,
                    None,
                    Some(ResponseUsage::from(finish.usage)),
                )
            }
            Outcome::Cancelled(finish) => (
                "cancelled",
                None,
                None,
                Some(ResponseUsage::from(finish.usage)),
            ),
            Outcome::Failed(error) => (
                "failed",
                None,
                Some(ResponseError {
                    code: error.kind.as_str(),
                    message: &error.message,
                }),
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
}

/// Where a response is in its life.
pub enum Outcome<'a> {
    InProgress,
    Finished(&'a Finish),
    /// Stopped by `POST /v1/responses/ID/cancel` (a background response).
    Cancelled(&'a Finish),
    Failed(&'a ApiError),
}

/// A response's status for how the generation finished, and the reason it
/// is incomplete when it is.
pub fn status_of(finish: &Finish) -> (&'static str, Option<&'static str>) {
    match finish.finish_reason.as_str() {
        "length" => ("incomplete", Some("max_output_tokens")),
        "content_filter" => ("incomplete", Some("content_filter")),
        _ => ("completed", None),
    }
}

/// One output item: what it is and its text (the reasoning, the answer, or
/// a call's arguments) so far.
#[derive(Debug, Clone)]
pub struct Item {
    pub id: String,
    pub kind: ItemKind,
    pub text: String,
    pub status: &'static str,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ItemKind {
    Reasoning,
    Message,
    FunctionCall { call_id: String, name: String },
}

impl ItemKind {
    /// OpenAI's id prefix for an item of this kind.
    fn prefix(&self) -> &'static str {
        match self {
            ItemKind::Reasoning => "rs",
            ItemKind::Message => "msg",
            ItemKind::FunctionCall { .. } => "fc",
        }
    }
}

impl Item {
    /// The item at `output_index` of a response whose item ids derive from
    /// `seed` (a generation's id: every view of it names its items alike);
    /// with no seed, a fresh id.
    pub fn seeded(kind: ItemKind, seed: Option<&str>, output_index: usize) -> Item {
        let id = match seed {
            Some(seed) => format!("{}_{seed}_{output_index}", kind.prefix()),
            None => new_id(kind.prefix()),
        };
        Item {
            id,
            kind,
            text: String::new(),
            status: "in_progress",
        }
    }

    /// The item as `response.output_item.added` announces it: a message or
    /// reasoning item without its part, which the next event adds.
    pub fn announced(&self) -> Announced<'_> {
        Announced(self)
    }

    /// The items of a whole non-streaming answer.
    pub fn all_of(collected: &Collected, status: &'static str) -> Vec<Item> {
        Item::all_seeded(collected, status, None)
    }

    /// [`Item::all_of`], with ids from `seed` (see [`Item::seeded`]).
    pub fn all_seeded(
        collected: &Collected,
        status: &'static str,
        seed: Option<&str>,
    ) -> Vec<Item> {
        let mut items = Vec::new();
        let mut push = |kind, text: &str| {
            let mut item = Item::seeded(kind, seed, items.len());
            item.text = text.to_owned();
            item.status = status;
            items.push(item);
        };
        if !collected.reasoning.is_empty() {
            push(ItemKind::Reasoning, &collected.reasoning);
        }
        if !collected.content.is_empty() || collected.tool_calls.is_empty() {
            push(ItemKind::Message, &collected.content);
        }
        for call in &collected.tool_calls {
            let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
            let kind = ItemKind::FunctionCall {
                call_id: text(&call["id"]),
                name: text(&call["function"]["name"]),
            };
            push(kind, call["function"]["arguments"].as_str().unwrap_or(""));
        }
        items
    }

    fn serialize_as<S: Serializer>(
        &self,
        serializer: S,
        with_content: bool,
    ) -> Result<S::Ok, S::Error> {
        let text = self.text.as_str();
        match &self.kind {
            ItemKind::Message => MessageItem {
                id: &self.id,
                kind: "message",
                status: self.status,
                role: "assistant",
                content: with_content
                    .then(|| OutputText::new(text))
                    .into_iter()
                    .collect(),
            }
            .serialize(serializer),
            ItemKind::Reasoning => ReasoningItem {
                id: &self.id,
                kind: "reasoning",
                summary: [],
                content: with_content
                    .then(|| ReasoningText::new(text))
                    .into_iter()
                    .collect(),
                status: self.status,
            }
            .serialize(serializer),
            ItemKind::FunctionCall { call_id, name } => FunctionCallItem {
                kind: "function_call",
                id: &self.id,
                call_id,
                name,
                arguments: text,
                status: self.status,
            }
            .serialize(serializer),
        }
    }
}

impl Serialize for Item {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.serialize_as(serializer, true)
    }
}

/// See [`Item::announced`].
pub struct Announced<'a>(&'a Item);

impl Serialize for Announced<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let with_content = matches!(self.0.kind, ItemKind::FunctionCall { .. });
        self.0.serialize_as(serializer, with_content)
    }
}

#[derive(serde::Serialize)]
struct MessageItem<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    status: &'static str,
    role: &'static str,
    content: Vec<OutputText<'a>>,
}

#[derive(serde::Serialize)]
struct ReasoningItem<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    summary: [(); 0],
    content: Vec<ReasoningText<'a>>,
    status: &'static str,
}

#[derive(serde::Serialize)]
struct FunctionCallItem<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    call_id: &'a str,
    name: &'a str,
    arguments: &'a str,
    status: &'static str,
}

#[derive(Debug, serde::Serialize)]
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
    output: &'a [Item],
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

#[derive(Debug, serde::Serialize)]
struct ResponseError<'a> {
    /// The contract's error type (`upstream_error`, `idle_timeout`, ...).
    code: &'static str,
    message: &'a str,
}

#[derive(Debug, serde::Serialize)]
struct IncompleteDetails {
    reason: &'static str,
}

/// The `output_text` part of a message item.
#[derive(Debug, serde::Serialize)]
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

/// The `reasoning_text` part of a reasoning item.
#[derive(Debug, serde::Serialize)]
pub struct ReasoningText<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    text: &'a str,
}

impl ReasoningText<'_> {
    pub fn new(text: &str) -> ReasoningText<'_> {
        ReasoningText {
            kind: "reasoning_text",
            text,
        }
    }
}

/// Usage in the Responses API's names.
#[derive(Debug, serde::Serialize)]
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
            output_tokens_details: json!({"reasoning_tokens": usage.reasoning_tokens.unwrap_or(0)}),
            total_tokens: usage.total_tokens,
        }
    }
}
