//! The ways a generation can fail: upstream failures, and request fields no
//! generation can take.

use std::fmt;
use std::time::Duration;

/// Why an upstream (or the mock acting as one) could not give us tokens.
#[derive(Debug, Clone, PartialEq)]
pub enum UpstreamError {
    /// The upstream answered with an HTTP error status before streaming.
    Status {
        status: u16,
        message: String,
        retry_after: Option<u64>,
    },
    /// The mock was told to fail with this status (400-599); passed on as is.
    MockStatus {
        status: u16,
        retry_after: Option<u64>,
    },
    /// The connection could not be made or broke.
    Transport(String),
    /// The upstream's stream reported a failure, was malformed or ended early.
    Stream(String),
    /// More upstream events than a stream forgives could not be parsed
    /// (each one alone is skipped, logged and counted: section 17).
    Malformed(String),
    /// The upstream refused the request's content on policy grounds (a 400
    /// with `content_filter` or `content_policy_violation`): the client's
    /// answer, not routed around to a fallback.
    ContentPolicy(String),
    /// The prompt is past the model's context length (the mock's
    /// `context_length` fault, as providers say it).
    ContextLength(String),
    /// A replay route has no recording of the request (it names what it
    /// looked for).
    NoRecording(String),
    ConnectTimeout(Duration),
    FirstTokenTimeout(Duration),
    IdleTimeout(Duration),
    TotalTimeout(Duration),
}

impl UpstreamError {
    /// A stream that ended without its terminal event: a provider broke the
    /// "exactly one terminal event" rule, or the upstream hung up.
    pub fn ended_early() -> UpstreamError {
        UpstreamError::Stream("the generation ended without finishing".into())
    }

    /// The failure's kind, as a metric label.
    pub fn kind_name(&self) -> &'static str {
        match self {
            UpstreamError::Status { .. } => "status",
            UpstreamError::MockStatus { .. } => "mock_status",
            UpstreamError::Transport(_) => "transport",
            UpstreamError::Stream(_) => "stream",
            UpstreamError::Malformed(_) => "malformed",
            UpstreamError::ContentPolicy(_) => "content_policy",
            UpstreamError::ContextLength(_) => "context_length",
            UpstreamError::NoRecording(_) => "no_recording",
            UpstreamError::ConnectTimeout(_) => "connect_timeout",
            UpstreamError::FirstTokenTimeout(_) => "first_token_timeout",
            UpstreamError::IdleTimeout(_) => "idle_timeout",
            UpstreamError::TotalTimeout(_) => "total_timeout",
        }
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::Status {
                status, message, ..
            } => write!(f, "upstream answered {status}: {message}"),
            UpstreamError::MockStatus { status, .. } => {
                write!(f, "the mock was asked to fail with status {status}")
            }
            UpstreamError::Transport(message)
            | UpstreamError::Stream(message)
            | UpstreamError::Malformed(message)
            | UpstreamError::ContentPolicy(message)
            | UpstreamError::ContextLength(message)
            | UpstreamError::NoRecording(message) => f.write_str(message),
            UpstreamError::ConnectTimeout(after) => write!(
                f,
                "could not connect to the upstream within timeouts.connect_ms ({} ms)",
                after.as_millis()
            ),
            UpstreamError::FirstTokenTimeout(after) => write!(
                f,
                "no first token within timeouts.first_token_ms ({} ms)",
                after.as_millis()
            ),
            UpstreamError::IdleTimeout(after) => write!(
                f,
                "the upstream sent nothing for timeouts.idle_ms ({} ms)",
                after.as_millis()
            ),
            UpstreamError::TotalTimeout(after) => write!(
                f,
                "the generation ran past timeouts.total_ms ({} ms)",
                after.as_millis()
            ),
        }
    }
}

impl std::error::Error for UpstreamError {}

/// A request field with a value no generation can take; the front doors
/// answer it as a 400 naming the field, config loading as an error naming
/// the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidField {
    /// The field's path, as the client wrote it (`max_tokens`, `mock.tokens`).
    pub field: String,
    pub message: String,
}

impl InvalidField {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> InvalidField {
        InvalidField {
            field: field.into(),
            message: message.into(),
        }
    }
}
