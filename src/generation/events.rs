//! The token events a generation yields, and how it ends.

use std::pin::Pin;

use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::UpstreamError;

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
}

/// How a generation ended, with its token accounting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finish {
    /// `stop`, `length`, `tool_calls`, `content_filter`, ... as OpenAI names them.
    pub finish_reason: String,
    pub usage: Usage,
    /// The stop sequence that ended the generation, when the provider says
    /// which (the mock and Anthropic do; OpenAI-compatible servers do not).
    /// Anthropic's door reports it as `stop_reason: "stop_sequence"`.
    pub stop_sequence: Option<String>,
}

impl Finish {
    pub fn new(finish_reason: impl Into<String>, usage: Usage) -> Finish {
        Finish {
            finish_reason: finish_reason.into(),
            usage,
            stop_sequence: None,
        }
    }
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
