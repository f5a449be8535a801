//! A recording of one upstream exchange (contract section 14), as JSON
//! Lines a person can read and edit: the first line is the request, each
//! next line one event of the answer with its arrival time in milliseconds
//! since the request, the last how it ended.
//!
//! ```text
//! {"kind":"request","route":"gpt-4o","provider":"openai","at":1765107600000,"key":{...}}
//! {"kind":"token","ms":412,"text":"Hello"}
//! {"kind":"reasoning","ms":380,"text":"The user greets me"}
//! {"kind":"tool_calls","ms":450,"calls":[{"index":0,"id":"call_1","function":{"name":"f","arguments":"{"}}]}
//! {"kind":"done","ms":903,"finish_reason":"stop","usage":{...},"stop_sequence":null}
//! {"kind":"error","ms":950,"message":"...","status":503}
//! {"kind":"cut","ms":960}         the upstream's stream ended with no terminal event
//! {"kind":"cancelled","ms":970}   the client left first
//! {"kind":"truncated","ms":980}   the file reached `[record] max_bytes`
//! ```
//!
//! What is recorded is the answer as the provider read it (door-neutral
//! events), not the upstream's bytes: so a recording replays on every door,
//! whichever provider made it. No header, key or cookie is ever written, and
//! every text passes the scrubber first.
//!
//! The request's `key` is what a replay matches on: the model asked for,
//! the messages, the tools, the tool choice and the output format.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::generation::{Finish, GenRequest, OutputFormat, TokenEvent, UpstreamError, Usage};
use crate::redact::Redactor;

/// One line of a recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Line {
    Request {
        route: String,
        provider: String,
        /// Unix milliseconds.
        at: u64,
        key: Value,
    },
    Token {
        ms: u64,
        text: String,
    },
    Reasoning {
        ms: u64,
        text: String,
    },
    Signature {
        ms: u64,
        text: String,
    },
    ToolCalls {
        ms: u64,
        calls: Value,
    },
    Done {
        ms: u64,
        finish_reason: String,
        usage: Usage,
        stop_sequence: Option<String>,
    },
    Error {
        ms: u64,
        message: String,
        /// The upstream's HTTP status, when it answered one.
        status: Option<u16>,
        retry_after: Option<u64>,
    },
    Cut {
        ms: u64,
    },
    Cancelled {
        ms: u64,
    },
    Truncated {
        ms: u64,
    },
}

/// What a replay matches a request on.
pub fn key(model: &str, request: &GenRequest) -> Value {
    let messages: Vec<Value> = request
        .messages
        .iter()
        .map(|m| json!([m.role, m.content]))
        .collect();
    let tools: Vec<Value> = request
        .tools
        .iter()
        .map(|t| json!({"name": t.name, "parameters": t.parameters}))
        .collect();
    let format = match &request.format {
        None => Value::Null,
        Some(OutputFormat::JsonObject) => json!("json_object"),
        Some(OutputFormat::JsonSchema(schema)) => json!({"json_schema": schema}),
    };
    json!({
        "model": model,
        "messages": messages,
        "tools": tools,
        "tool_choice": format!("{:?}", request.tool_choice),
        "format": format,
    })
}

/// The lines an event is recorded as, scrubbed, at `ms`. A `Delta` is its
/// parts; what only OpenAI's door carries of it (`logprobs`, `refusal`) is
/// not recorded.
pub fn lines(event: &TokenEvent, ms: u64, scrub: &Redactor) -> Vec<Line> {
    let text = |t: &str| scrub.scrub(t);
    match event {
        TokenEvent::Token(t) => vec![Line::Token { ms, text: text(t) }],
        TokenEvent::Reasoning(t) => vec![Line::Reasoning { ms, text: text(t) }],
        TokenEvent::Signature(t) => vec![Line::Signature {
            ms,
            text: t.clone(),
        }],
        TokenEvent::ToolCalls(calls) => vec![Line::ToolCalls {
            ms,
            calls: calls.clone(),
        }],
        TokenEvent::Delta(delta) => {
            let mut out = Vec::new();
            if let Some(t) = delta.reasoning() {
                out.push(Line::Reasoning { ms, text: text(t) });
            }
            if let Some(t) = delta.content() {
                out.push(Line::Token { ms, text: text(t) });
            }
            if let Some(calls) = delta.tool_calls() {
                out.push(Line::ToolCalls {
                    ms,
                    calls: calls.clone(),
                });
            }
            out
        }
        TokenEvent::Done(finish) => vec![Line::Done {
            ms,
            finish_reason: finish.finish_reason.clone(),
            usage: finish.usage,
            stop_sequence: finish.stop_sequence.clone(),
        }],
        TokenEvent::Error(err) => {
            let (status, retry_after) = match err {
                UpstreamError::Status {
                    status,
                    retry_after,
                    ..
                } => (Some(*status), *retry_after),
                UpstreamError::MockStatus {
                    status,
                    retry_after,
                } => (Some(*status), *retry_after),
                UpstreamError::ContentPolicy(_) => (Some(400), None),
                UpstreamError::Transport(_)
                | UpstreamError::Stream(_)
                | UpstreamError::Malformed(_)
                | UpstreamError::ContextLength(_)
                | UpstreamError::ConnectTimeout(_)
                | UpstreamError::FirstTokenTimeout(_)
                | UpstreamError::IdleTimeout(_)
                | UpstreamError::TotalTimeout(_)
                | UpstreamError::NoRecording(_) => (None, None),
            };
            vec![Line::Error {
                ms,
                message: text(&err.to_string()),
                status,
                retry_after,
            }]
        }
        TokenEvent::Cut => vec![Line::Cut { ms }],
        // The mock's faults are the mock's: a recording of one keeps what
        // the client saw of it.
        TokenEvent::Fault(_) => Vec::new(),
        // A provider's stream has no seams: the pipeline makes them.
        TokenEvent::Continued(_) => Vec::new(),
    }
}

impl Line {
    /// When it came, in milliseconds since the request (0 for the request).
    pub fn ms(&self) -> u64 {
        match self {
            Line::Request { .. } => 0,
            Line::Token { ms, .. }
            | Line::Reasoning { ms, .. }
            | Line::Signature { ms, .. }
            | Line::ToolCalls { ms, .. }
            | Line::Done { ms, .. }
            | Line::Error { ms, .. }
            | Line::Cut { ms }
            | Line::Cancelled { ms }
            | Line::Truncated { ms } => *ms,
        }
    }

    /// The event a replay yields for it; `None` for the request line.
    pub fn event(&self) -> Option<TokenEvent> {
        let ended = |why: &str| {
            TokenEvent::Error(UpstreamError::Stream(format!("the recorded answer {why}")))
        };
        Some(match self {
            Line::Request { .. } => return None,
            Line::Token { text, .. } => TokenEvent::Token(text.clone()),
            Line::Reasoning { text, .. } => TokenEvent::Reasoning(text.clone()),
            Line::Signature { text, .. } => TokenEvent::Signature(text.clone()),
            Line::ToolCalls { calls, .. } => TokenEvent::ToolCalls(calls.clone()),
            Line::Done {
                finish_reason,
                usage,
                stop_sequence,
                ..
            } => TokenEvent::Done(Finish {
                stop_sequence: stop_sequence.clone(),
                ..Finish::new(finish_reason.clone(), *usage)
            }),
            Line::Error {
                message,
                status,
                retry_after,
                ..
            } => TokenEvent::Error(match status {
                Some(status) => UpstreamError::Status {
                    status: *status,
                    message: message.clone(),
                    retry_after: *retry_after,
                },
                None => UpstreamError::Stream(message.clone()),
            }),
            Line::Cut { .. } => TokenEvent::Cut,
            Line::Cancelled { .. } => ended("was cancelled when it was recorded"),
            Line::Truncated { .. } => ended("was cut short at [record] max_bytes"),
        })
    }

    /// Whether it ends a recording.
    pub fn is_end(&self) -> bool {
        match self {
            Line::Request { .. }
            | Line::Token { .. }
            | Line::Reasoning { .. }
            | Line::Signature { .. }
            | Line::ToolCalls { .. } => false,
            Line::Done { .. }
            | Line::Error { .. }
            | Line::Cut { .. }
            | Line::Cancelled { .. }
            | Line::Truncated { .. } => true,
        }
    }
}
