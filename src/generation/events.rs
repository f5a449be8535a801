//! The token events a generation yields, and how it ends.

use std::pin::Pin;

use futures_util::Stream;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::error::UpstreamError;

/// The stream a provider returns for one generation.
pub type TokenStream = Pin<Box<dyn Stream<Item = TokenEvent> + Send>>;

/// One thing that happened in a generation.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenEvent {
    /// A piece of generated text, relayed to the client as its own frame.
    Token(String),
    /// A piece of the model's reasoning (thinking) before or between its
    /// answer: relayed apart from the answer, in each door's own way.
    Reasoning(String),
    /// The signature Anthropic ends a thinking block with; only the Messages
    /// door carries it.
    Signature(String),
    /// An OpenAI `delta.tool_calls` array (`index`, then `id`, `type` and
    /// `function.name` in a call's first delta, and `function.arguments` in
    /// pieces): the one tool-call shape of the pipeline, which each door
    /// frames its own way.
    ToolCalls(Value),
    /// An OpenAI-compatible chunk that carries more than one of the above,
    /// or fields sluice does not interpret (`refusal`, `function_call`,
    /// `audio`, the choice's `logprobs`): relayed whole by the OpenAI door,
    /// read part by part by the others.
    Delta(Box<ChunkDelta>),
    /// The generation finished normally.
    Done(Finish),
    /// The generation failed; before the first token this becomes an HTTP
    /// error status, after it an `event: error` frame.
    Error(UpstreamError),
    /// Cut the client connection with no terminal frame (the mock's
    /// `drop_after`, simulating a dead network path).
    Cut,
    /// A misbehaviour only the mock's `fault` knob asks for (section 14).
    Fault(FaultEvent),
    /// The upstream failed mid-answer and another call continues it from
    /// here (section 17): the seam, which every door shows its own way.
    Continued(Seam),
}

/// Where a continued answer was joined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seam {
    /// The answer and reasoning tokens relayed before it.
    pub after_tokens: u32,
    /// The model continuing the answer.
    pub model: String,
    /// Why the call before it ended (an upstream error's kind).
    pub reason: String,
}

/// What a client sees of a mock fault that the pipeline, not the mock,
/// must act out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultEvent {
    /// Send no response at all (the first event; nothing follows).
    Hang,
    /// Close the connection with no response (the first event).
    Reset,
    /// One frame that is not valid JSON in the door's format.
    Malformed,
    /// End the body cleanly with no terminal event.
    Unterminated,
}

/// The most tool calls one answer may make; a call index past it is ignored
/// wherever calls are assembled (the index comes from the upstream).
pub const MAX_TOOL_CALLS: usize = 128;

/// The call a tool-call delta belongs to (its `index`, 0 when absent), or
/// `None` past [`MAX_TOOL_CALLS`].
pub fn call_index(delta: &Value) -> Option<usize> {
    let index = delta.get("index").and_then(Value::as_u64).unwrap_or(0);
    usize::try_from(index).ok().filter(|i| *i < MAX_TOOL_CALLS)
}

/// Folds one `delta.tool_calls` array into the calls so far: `id`, `type` and
/// the function's `name` arrive once, `arguments` arrive in pieces. A call
/// index past `MAX_TOOL_CALLS` is not the upstream's to choose: ignored.
pub fn merge_tool_calls(calls: &mut Vec<Value>, deltas: &Value) {
    for delta in deltas.as_array().into_iter().flatten() {
        let Some(index) = call_index(delta) else {
            continue;
        };
        while calls.len() <= index {
            calls.push(
                json!({"id": "", "type": "function", "function": {"name": "", "arguments": ""}}),
            );
        }
        let call = &mut calls[index];
        for key in ["id", "type"] {
            if let Some(value) = delta.get(key).filter(|v| v.is_string()) {
                call[key] = value.clone();
            }
        }
        if let Some(function) = delta.get("function").and_then(Value::as_object) {
            for key in ["name", "arguments"] {
                if let Some(piece) = function.get(key).and_then(Value::as_str) {
                    let whole = call["function"][key].as_str().unwrap_or("").to_owned() + piece;
                    call["function"][key] = Value::from(whole);
                }
            }
        }
    }
}

/// A chunk's `delta` as the upstream sent it (without `role`), and the
/// choice's `logprobs` when it had any.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ChunkDelta {
    pub delta: Map<String, Value>,
    pub logprobs: Option<Value>,
}

impl ChunkDelta {
    pub fn content(&self) -> Option<&str> {
        self.text("content")
    }

    /// `reasoning_content` (DeepSeek, vLLM, ...) or `reasoning` (OpenRouter,
    /// Ollama's /v1, ...).
    pub fn reasoning(&self) -> Option<&str> {
        self.text("reasoning_content")
            .or_else(|| self.text("reasoning"))
    }

    pub fn tool_calls(&self) -> Option<&Value> {
        self.delta.get("tool_calls").filter(|v| !v.is_null())
    }

    pub fn refusal(&self) -> Option<&str> {
        self.text("refusal")
    }

    fn text(&self, key: &str) -> Option<&str> {
        self.delta
            .get(key)
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
    }
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
    /// All generated tokens, reasoning included (as OpenAI counts them).
    pub completion_tokens: u32,
    pub total_tokens: u32,
    /// How many of `completion_tokens` were reasoning, when the provider
    /// says (the native door shows it as is; OpenAI's doors as
    /// `completion_tokens_details` / `output_tokens_details`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_tokens: Option<u32>,
}

impl Usage {
    pub fn new(prompt_tokens: u32, completion_tokens: u32) -> Self {
        Usage {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens.saturating_add(completion_tokens),
            reasoning_tokens: None,
        }
    }

    pub fn with_reasoning(self, reasoning_tokens: Option<u32>) -> Self {
        Usage {
            reasoning_tokens,
            ..self
        }
    }
}
