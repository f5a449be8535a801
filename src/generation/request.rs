//! What a provider is asked for, already validated by a front door.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::InvalidField;
use super::knobs::MockKnobs;
use super::tools::{Tool, ToolChoice};

/// The most tokens a request may ask for: far past any model's context, but
/// a bound, so a typo like 10^12 is caught rather than passed on.
pub const MAX_TOKENS_LIMIT: u32 = 1_000_000;

/// `field` (`max_tokens`, `max_completion_tokens`, ...) within 1..=[`MAX_TOKENS_LIMIT`].
pub fn check_max_tokens(field: &str, value: u32) -> Result<(), InvalidField> {
    if value == 0 {
        return Err(InvalidField::new(
            field,
            format!("`{field}` must be at least 1"),
        ));
    }
    if value > MAX_TOKENS_LIMIT {
        return Err(InvalidField::new(
            field,
            format!("`{field}` must be at most {MAX_TOKENS_LIMIT}"),
        ));
    }
    Ok(())
}

fn check_range(field: &str, value: Option<f64>, min: f64, max: f64) -> Result<(), InvalidField> {
    match value {
        Some(v) if !(min..=max).contains(&v) => Err(InvalidField::new(
            field,
            format!("`{field}` must be between {min} and {max}"),
        )),
        _ => Ok(()),
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

/// The structured output a request asks for: each door's field
/// (`response_format`, `text.format`, `output_config.format`) read into one
/// form. A provider answers with one JSON document that fits it.
#[derive(Debug, Clone, PartialEq)]
pub enum OutputFormat {
    /// Any JSON object.
    JsonObject,
    /// A JSON document valid against this schema (checked to be one).
    JsonSchema(Value),
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
    /// Request fields sluice does not interpret (`response_format`, `n`,
    /// `user`, ...), passed unchanged to OpenAI-compatible upstreams; the
    /// OpenAI door's `tools` and `tool_choice` too.
    pub passthrough: Map<String, Value>,
    /// The tools offered, as sluice reads them (the mock calls them).
    pub tools: Vec<Tool>,
    pub tool_choice: ToolChoice,
    /// The structured output asked for (section 13), if any.
    pub format: Option<OutputFormat>,
    /// The tool results the conversation ends with, as text (they are also
    /// in `messages` as user text): non-empty when the last message is a
    /// tool result, which the mock answers by quoting them (section 13).
    pub tool_results: Vec<String>,
    /// `false` when the client asked for one tool call at most
    /// (`parallel_tool_calls: false`, Anthropic's `disable_parallel_tool_use`).
    pub parallel_tool_calls: Option<bool>,
    /// Tool calls a mock scenario scripts (name, arguments), made instead
    /// of any the mock would decide on.
    pub scripted_calls: Vec<(String, Value)>,
    /// The W3C trace context of the attempt making this request, which an
    /// HTTP upstream receives as its `traceparent` header (when tracing is
    /// on, section 19).
    pub traceparent: Option<String>,
}

impl GenRequest {
    /// The checks every front door makes of the fields it filled in:
    /// `max_tokens`, the sampling ranges and the mock knobs (`mock.<knob>`).
    pub fn validate(&self) -> Result<(), InvalidField> {
        if let Some(max) = self.max_tokens {
            check_max_tokens("max_tokens", max)?;
        }
        check_range("temperature", self.temperature, 0.0, 2.0)?;
        check_range("top_p", self.top_p, 0.0, 1.0)?;
        self.mock.validate_in_request()?;
        match &self.mock.tool_call {
            Some(name) if !self.tools.iter().any(|t| &t.name == name) => Err(InvalidField::new(
                "mock.tool_call",
                format!(
                    "`mock.tool_call` names `{name}`, which is not among the request's `tools`"
                ),
            )),
            Some(_) | None => Ok(()),
        }
    }

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
