//! The mock's knobs: the timing and failures a mock generation is asked for.
//!
//! They live here, beside the request that carries them, because three layers
//! read them: config (a `[[models]]` entry's defaults), the front doors (a
//! request's `mock` object, or knobs in the model name) and the mock itself.
//! One [`MockKnobs::validate`] serves config and requests alike, so the rules
//! cannot drift apart.

use serde::Deserialize;

use super::error::InvalidField;

/// Bound on the `tokens` knob, so that one request cannot make the mock plan
/// an unbounded answer in memory.
pub const MAX_TOKENS_KNOB: u32 = 100_000;

/// Bound on the mock's delays (an hour), so their arithmetic cannot overflow.
pub const MAX_DELAY_MS: u64 = 3_600_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MockMode {
    /// A made-up chat answer (the default).
    #[default]
    Lorem,
    /// Stream back the final user message, after any template.
    Echo,
}

/// A misbehaviour asked of the mock by name (`fault`, section 14): what a
/// client or gateway under test meets from real providers. These break
/// sluice's own guarantees on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// A 429 with `Retry-After`.
    RateLimited,
    /// A 503 (`fault_status`: another, such as Anthropic's 529).
    Overloaded,
    /// No response headers, ever: the client gives up first.
    Hang,
    /// The connection closed with no response.
    Reset,
    /// The first token after `fault_ms` (default 20000).
    SlowFirstToken,
    /// After `fault_after` tokens, silence for `fault_ms` (default 30000).
    Stall,
    /// After `fault_after` tokens, the connection closed with no terminal event.
    Cut,
    /// After `fault_after` tokens, one frame that is not valid JSON.
    Malformed,
    /// The body ends cleanly after the last token, with no terminal event.
    NoTerminal,
    /// A 400 saying the prompt is past the model's context length.
    ContextLength,
    /// After `fault_after` tokens, the answer ends with `content_filter`.
    ContentFilter,
    /// No token at all, then a normal terminal event.
    Empty,
    /// A tool call whose arguments are not valid JSON.
    BadToolArgs,
}

/// `fault_after` when a fault that needs it is not given one.
pub const FAULT_AFTER: u32 = 5;

/// The mock's knobs; each is optional so request values can override config values.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MockKnobs {
    pub ttft_ms: Option<u64>,
    pub token_delay_ms: Option<u64>,
    pub jitter_ms: Option<u64>,
    pub tokens: Option<u32>,
    pub text: Option<String>,
    pub mode: Option<MockMode>,
    pub fail_after: Option<u32>,
    pub error_status: Option<u16>,
    pub drop_after: Option<u32>,
    /// Reasoning tokens before the answer (section 11).
    pub reasoning_tokens: Option<u32>,
    /// Call this tool (one of the request's `tools`) instead of answering.
    pub tool_call: Option<String>,
    /// Requests per minute per client, with a provider's rate-limit
    /// headers and 429 (section 14).
    pub rpm: Option<u32>,
    /// Tokens per minute per client, likewise.
    pub tpm: Option<u32>,
    /// A misbehaviour by name (section 14).
    pub fault: Option<Fault>,
    /// Tokens before a fault that comes mid-answer (default 5).
    pub fault_after: Option<u32>,
    /// How long a `stall` or `slow_first_token` lasts.
    pub fault_ms: Option<u64>,
    /// The status of an `overloaded` fault (default 503).
    pub fault_status: Option<u16>,
    /// A replay route's recorded timing times this (section 14; 0: at once).
    pub speed: Option<f64>,
}

impl MockKnobs {
    /// These knobs with every knob `over` sets taking its place.
    pub fn overridden_by(&self, over: &MockKnobs) -> MockKnobs {
        MockKnobs {
            ttft_ms: over.ttft_ms.or(self.ttft_ms),
            token_delay_ms: over.token_delay_ms.or(self.token_delay_ms),
            jitter_ms: over.jitter_ms.or(self.jitter_ms),
            tokens: over.tokens.or(self.tokens),
            text: over.text.clone().or_else(|| self.text.clone()),
            mode: over.mode.or(self.mode),
            fail_after: over.fail_after.or(self.fail_after),
            error_status: over.error_status.or(self.error_status),
            drop_after: over.drop_after.or(self.drop_after),
            reasoning_tokens: over.reasoning_tokens.or(self.reasoning_tokens),
            tool_call: over.tool_call.clone().or_else(|| self.tool_call.clone()),
            rpm: over.rpm.or(self.rpm),
            tpm: over.tpm.or(self.tpm),
            fault: over.fault.or(self.fault),
            fault_after: over.fault_after.or(self.fault_after),
            fault_ms: over.fault_ms.or(self.fault_ms),
            fault_status: over.fault_status.or(self.fault_status),
            speed: over.speed.or(self.speed),
        }
    }

    /// The knobs' own bounds. The error names the bare knob (`tokens`) and
    /// says what is wrong after it (`must be at most ...`); the caller puts
    /// it where the knob was written (`mock.tokens`, `models[0].tokens`).
    pub fn validate(&self) -> Result<(), InvalidField> {
        for (knob, status) in [
            ("error_status", self.error_status),
            ("fault_status", self.fault_status),
        ] {
            if status.is_some_and(|s| !(400..=599).contains(&s)) {
                return Err(InvalidField::new(
                    knob,
                    "must be an HTTP error status (400-599)",
                ));
            }
        }
        let delays = [
            ("ttft_ms", self.ttft_ms),
            ("token_delay_ms", self.token_delay_ms),
            ("jitter_ms", self.jitter_ms),
            ("fault_ms", self.fault_ms),
        ];
        for (knob, value) in delays {
            if value.is_some_and(|ms| ms > MAX_DELAY_MS) {
                return Err(InvalidField::new(
                    knob,
                    format!("must be at most {MAX_DELAY_MS} (an hour)"),
                ));
            }
        }
        if self
            .speed
            .is_some_and(|s| !s.is_finite() || !(0.0..=1000.0).contains(&s))
        {
            return Err(InvalidField::new(
                "speed",
                "must be a number from 0 to 1000",
            ));
        }
        for (knob, value) in [("rpm", self.rpm), ("tpm", self.tpm)] {
            if value == Some(0) {
                return Err(InvalidField::new(knob, "must be at least 1"));
            }
        }
        for (knob, value) in [
            ("tokens", self.tokens),
            ("reasoning_tokens", self.reasoning_tokens),
            ("fault_after", self.fault_after),
        ] {
            if value.is_some_and(|n| n > MAX_TOKENS_KNOB) {
                return Err(InvalidField::new(
                    knob,
                    format!("must be at most {MAX_TOKENS_KNOB}"),
                ));
            }
        }
        Ok(())
    }

    /// [`MockKnobs::validate`] for knobs a request set: the field is named
    /// as the request's (`mock.tokens`).
    pub fn validate_in_request(&self) -> Result<(), InvalidField> {
        self.validate().map_err(|err| InvalidField {
            message: format!("`mock.{}` {}", err.field, err.message),
            field: format!("mock.{}", err.field),
        })
    }

    /// True when no knob is set.
    pub fn is_empty(&self) -> bool {
        *self == MockKnobs::default()
    }
}
