//! A generation: what a provider is asked for, and the token events it yields.
//!
//! This is the seam between the upstream side (providers, the mock) and the
//! client side (front doors, frame encoders). A generation is a plain stream of
//! [`TokenEvent`]s that knows nothing about HTTP responses, so the same stream
//! can be carried as native SSE, NDJSON, plain text or OpenAI chunks, and later
//! buffered for resumption, without touching the providers.
//!
//! The rules every provider keeps:
//! - zero or more `Token`s, then exactly one terminal event (`Done`, `Error` or
//!   `Cut`), then the end of the stream (the failover layer adds one `Serving`
//!   before the first of them);
//! - dropping the stream cancels the generation: the upstream connection is
//!   closed, the mock's timers are dropped. No provider spawns a detached task.

use std::pin::Pin;

use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::providers::mock::MockKnobs;
use crate::providers::UpstreamError;

/// The stream a provider returns for one generation.
pub type TokenStream = Pin<Box<dyn Stream<Item = TokenEvent> + Send>>;

/// One thing that happened in a generation.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenEvent {
    /// A piece of generated text, relayed to the client as its own frame.
    Token(String),
    /// An OpenAI `delta.tool_calls` array, relayed unchanged by the doors
    /// that can carry it (the OpenAI-compatible one) and skipped by the others.
    ToolCalls(Value),
    /// The generation finished normally.
    Done(Finish),
    /// The generation failed; before the first token this becomes an HTTP
    /// error status, after it an `event: error` frame.
    Error(UpstreamError),
    /// Cut the client connection with no terminal frame (the mock's
    /// `drop_after`, simulating a dead network path).
    Cut,
    /// Which configured model is serving, sent once before its first event
    /// by the failover layer (it may be a fallback, not the model asked for).
    Serving(String),
}

impl TokenEvent {
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            TokenEvent::Done(_) | TokenEvent::Error(_) | TokenEvent::Cut
        )
    }

    /// Output for the client: a token or a tool-call delta.
    pub fn is_output(&self) -> bool {
        matches!(self, TokenEvent::Token(_) | TokenEvent::ToolCalls(_))
    }
}

/// How a generation ended, with its token accounting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    /// `stop`, `length`, `tool_calls`, `content_filter`, ... as OpenAI names them.
    pub finish_reason: String,
    pub usage: Usage,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Usage {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

impl Usage {
    pub fn new(prompt_tokens: u32, completion_tokens: u32) -> Self {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

/// Everything a provider needs to generate, already validated by a front door.
#[derive(Debug, Clone, Default)]
pub struct GenRequest {
    /// The conversation, system prompt first when there is one.
    pub messages: Vec<Message>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub seed: Option<u64>,
    pub stop: Vec<String>,
    /// Per-request mock knobs; providers other than the mock ignore them.
    pub mock: MockKnobs,
    /// The client's messages exactly as sent to the OpenAI-compatible door
    /// (tool calls, content parts, ...). OpenAI-compatible upstreams get these
    /// instead of `messages`, which is the text-only view other providers use.
    pub raw_messages: Option<Vec<Value>>,
    /// Request fields sluice does not interpret (`tools`, `response_format`,
    /// `n`, `user`, ...), passed unchanged to OpenAI-compatible upstreams.
    pub passthrough: Map<String, Value>,
}

impl GenRequest {
    /// The text of the last user message, which the mock's `echo` mode streams back.
    pub fn last_user_text(&self) -> &str {
        self.messages
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.content.as_str())
            .unwrap_or("")
    }

    /// The sampling settings the request gives, under OpenAI's names
    /// (`max_tokens`, `temperature`, `top_p`, `seed`, `stop`), for providers
    /// that take them as they are or renamed.
    pub fn sampling(&self) -> Map<String, Value> {
        let settings = [
            ("max_tokens", self.max_tokens.map(Value::from)),
            ("temperature", self.temperature.map(Value::from)),
            ("top_p", self.top_p.map(Value::from)),
            ("seed", self.seed.map(Value::from)),
            (
                "stop",
                (!self.stop.is_empty()).then(|| Value::from(self.stop.clone())),
            ),
        ];
        settings
            .into_iter()
            .filter_map(|(key, value)| Some((key.to_owned(), value?)))
            .collect()
    }
}
