//! Provider `anthropic`: Anthropic's Messages API with `stream: true`.
//!
//! The request carries `x-api-key` and `anthropic-version`, the system prompt
//! at the top level (Anthropic has no system role in `messages`), a
//! `max_tokens`, which Anthropic requires: the client's, else the model's
//! `default_max_tokens` (4096), and the request's tools in Anthropic's shape.
//!
//! The response is SSE with typed events: `message_start` (input usage),
//! `content_block_start` / `content_block_delta` / `content_block_stop`,
//! `message_delta` (stop reason, output usage), `message_stop`, `ping`, and
//! `error` (e.g. `overloaded_error` mid-stream). Each `text_delta` becomes a
//! token, each `thinking_delta` reasoning (and `signature_delta` the thinking
//! block's signature). A `tool_use` block and its `input_json_delta`s become
//! OpenAI-style tool-call deltas, which every door but the native one frames;
//! other delta kinds (citations) are ignored, never a crash.

use serde::Deserialize;
use serde_json::{json, Value};

use super::upstream::{self, error_message, Endpoint};
use super::{Counting, Provider};
use crate::config::{ModelConfig, Timeouts};
use crate::generation::{
    Finish, GenRequest, OutputFormat, Role, TokenEvent, TokenStream, ToolChoice, UpstreamError,
    Usage,
};
use crate::redact::Redactor;

const API_VERSION: &str = "2023-06-01";
const DEFAULT_MAX_TOKENS: u32 = 4096;

pub struct Anthropic {
    endpoint: Endpoint,
    /// The upstream's `/v1/messages/count_tokens`.
    counting: Endpoint,
    default_max_tokens: u32,
}

impl Anthropic {
    pub fn new(model: &ModelConfig, timeouts: &Timeouts) -> Anthropic {
        Anthropic {
            endpoint: Endpoint::new(model, timeouts, "/v1/messages"),
            counting: Endpoint::new(model, timeouts, "/v1/messages/count_tokens"),
            default_max_tokens: model.default_max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        }
    }

    fn request_body(&self, request: &GenRequest) -> Value {
        let system: Vec<&str> = request
            .messages
            .iter()
            .filter(|m| m.role == Role::System)
            .map(|m| m.content.as_str())
            .collect();
        let mut messages: Vec<Value> = request
            .messages
            .iter()
            .filter(|m| m.role != Role::System)
            .map(|m| json!({ "role": m.role, "content": m.content }))
            .collect();
        // A final assistant message is a prefill (an answer continued,
        // section 17), which Anthropic refuses with trailing whitespace.
        if let Some(last) = messages.last_mut().filter(|m| m["role"] == "assistant") {
            let trimmed = last["content"]
                .as_str()
                .map(|text| text.trim_end().to_owned());
            if let Some(trimmed) = trimmed {
                last["content"] = Value::from(trimmed);
            }
        }
        let mut body = json!({
            "model": self.endpoint.upstream_model,
            "max_tokens": request.max_tokens.unwrap_or(self.default_max_tokens),
            "messages": messages,
            "stream": true,
        });
        if !system.is_empty() {
            body["system"] = json!(system.join("\n\n"));
        }
        if let Some(t) = request.temperature {
            // Anthropic's range is 0..=1; OpenAI's 0..=2 is scaled down.
            body["temperature"] = json!((t / 2.0).min(1.0));
        }
        if let Some(p) = request.top_p {
            body["top_p"] = json!(p);
        }
        if !request.stop.is_empty() {
            body["stop_sequences"] = json!(request.stop);
        }
        if !request.tools.is_empty() {
            let tools: Vec<Value> = request
                .tools
                .iter()
                .map(|tool| {
                    let mut out = json!({"name": tool.name, "input_schema": tool.parameters});
                    if let Some(description) = &tool.description {
                        out["description"] = json!(description);
                    }
                    out
                })
                .collect();
            body["tools"] = Value::from(tools);
            match &request.tool_choice {
                ToolChoice::Auto => {}
                ToolChoice::None => body["tool_choice"] = json!({"type": "none"}),
                ToolChoice::Required => body["tool_choice"] = json!({"type": "any"}),
                ToolChoice::Named(name) => {
                    body["tool_choice"] = json!({"type": "tool", "name": name})
                }
            }
        }
        // A JSON Schema asked for at any door, as Anthropic's structured
        // output (it has no "any JSON object" mode).
        if let Some(OutputFormat::JsonSchema(schema)) = &request.format {
            body["output_config"] = json!({"format": {"type": "json_schema", "schema": schema}});
        }
        body
    }
}

impl Provider for Anthropic {
    /// Anthropic counts its own tokens: the request as it would be sent,
    /// without what `count_tokens` does not take.
    fn count_tokens(&self, request: &GenRequest) -> Counting<'_> {
        let mut body = self.request_body(request);
        if let Some(fields) = body.as_object_mut() {
            for unread in [
                "max_tokens",
                "stream",
                "temperature",
                "top_p",
                "stop_sequences",
            ] {
                fields.remove(unread);
            }
        }
        let mut call = self
            .counting
            .post(&body, request)
            .header("anthropic-version", API_VERSION);
        if let Some(key) = &self.counting.api_key {
            call = call.header("x-api-key", key);
        }
        let sent = self.counting.send(call);
        Box::pin(async move {
            let counted = async {
                let answer: Value = sent
                    .await?
                    .json(upstream::JSON_ANSWER_LIMIT)
                    .await
                    .map_err(|err| {
                        UpstreamError::Stream(format!("the upstream's count did not parse: {err}"))
                    })?;
                answer["input_tokens"]
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| {
                        UpstreamError::Stream("the upstream's count has no `input_tokens`".into())
                    })
            };
            Some(counted.await)
        })
    }

    fn generate(&self, request: GenRequest) -> TokenStream {
        let mut call = self
            .endpoint
            .post(&self.request_body(&request), &request)
            .header("anthropic-version", API_VERSION);
        if let Some(key) = &self.endpoint.api_key {
            call = call.header("x-api-key", key);
        }
        upstream::sse_generation(
            self.endpoint.send(call),
            &self.endpoint,
            MessageState::default(),
        )
    }
}

fn scrubbed(err: UpstreamError, redactor: &Redactor) -> UpstreamError {
    match err {
        UpstreamError::Stream(message) => UpstreamError::Stream(redactor.scrub(&message)),
        UpstreamError::Malformed(message) => UpstreamError::Malformed(redactor.scrub(&message)),
        other => other,
    }
}

/// One streamed message, as far as it has come.
#[derive(Default)]
struct MessageState {
    input_tokens: u32,
    output_tokens: u32,
    stop_reason: Option<String>,
    /// Which of the request's stop sequences ended the message, if one did.
    stop_sequence: Option<String>,
    stopped: bool,
    /// Content-block index -> tool-call index, for `tool_use` blocks.
    tool_blocks: Vec<(u64, usize)>,
}

#[derive(Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    index: u64,
    message: Option<Value>,
    content_block: Option<Value>,
    delta: Option<Value>,
    usage: Option<Value>,
    error: Option<Value>,
}

impl upstream::SseState for MessageState {
    fn on_event(
        &mut self,
        data: &str,
        redactor: &Redactor,
    ) -> Result<Option<TokenEvent>, UpstreamError> {
        self.read(data).map_err(|err| scrubbed(err, redactor))
    }

    fn finished(&self) -> bool {
        self.stopped
    }

    fn answered(&self) -> bool {
        self.stop_reason.is_some()
    }

    /// Done after `message_stop`, or after the stop reason when the rest did
    /// not come: the answer is whole either way.
    fn into_terminal(self) -> TokenEvent {
        match (self.stopped || self.stop_reason.is_some(), self.stop_reason) {
            (true, reason) => TokenEvent::Done(Finish {
                stop_sequence: self.stop_sequence,
                ..Finish::new(
                    reason.unwrap_or_else(|| "stop".into()),
                    Usage::new(self.input_tokens, self.output_tokens),
                )
            }),
            (false, _) => TokenEvent::Error(UpstreamError::Stream(
                "the upstream closed the stream before message_stop".into(),
            )),
        }
    }
}

impl MessageState {
    fn read(&mut self, data: &str) -> Result<Option<TokenEvent>, UpstreamError> {
        let event: Event = serde_json::from_str(data).map_err(|e| {
            UpstreamError::Malformed(format!(
                "the upstream sent an event that is not a Messages API event: {e}"
            ))
        })?;
        let count = |usage: Option<&Value>, key: &str| {
            usage
                .and_then(|u| u.get(key))
                .and_then(Value::as_u64)
                .map(|n| n as u32)
        };
        match event.kind.as_str() {
            "message_start" => {
                let usage = event.message.as_ref().and_then(|m| m.get("usage"));
                self.input_tokens = count(usage, "input_tokens").unwrap_or(0);
                self.output_tokens = count(usage, "output_tokens").unwrap_or(0);
                Ok(None)
            }
            "content_block_start" => Ok(self.block_start(event.index, event.content_block)),
            "content_block_delta" => Ok(self.block_delta(event.index, event.delta)),
            "message_delta" => {
                if let Some(reason) = event
                    .delta
                    .as_ref()
                    .and_then(|d| d.get("stop_reason"))
                    .and_then(Value::as_str)
                {
                    self.stop_reason = Some(finish_reason(reason));
                }
                if let Some(sequence) = event
                    .delta
                    .as_ref()
                    .and_then(|d| d.get("stop_sequence"))
                    .and_then(Value::as_str)
                {
                    self.stop_sequence = Some(sequence.to_owned());
                }
                if let Some(output) = count(event.usage.as_ref(), "output_tokens") {
                    self.output_tokens = output;
                }
                if let Some(input) = count(event.usage.as_ref(), "input_tokens") {
                    self.input_tokens = input;
                }
                Ok(None)
            }
            "message_stop" => {
                self.stopped = true;
                Ok(None)
            }
            "error" => {
                let error = event.error.unwrap_or(Value::Null);
                let kind = error.get("type").and_then(Value::as_str).unwrap_or("error");
                Err(UpstreamError::Stream(format!(
                    "the upstream reported {kind}: {}",
                    error_message(&error)
                )))
            }
            // ping, content_block_stop, and kinds added after this was written.
            _ => Ok(None),
        }
    }

    fn block_start(&mut self, index: u64, block: Option<Value>) -> Option<TokenEvent> {
        let block = block?;
        match block.get("type").and_then(Value::as_str) {
            Some("tool_use") => {
                let call = self.tool_blocks.len();
                self.tool_blocks.push((index, call));
                Some(TokenEvent::ToolCalls(json!([{
                    "index": call,
                    "id": block.get("id").cloned().unwrap_or(Value::Null),
                    "type": "function",
                    "function": {"name": block.get("name").cloned().unwrap_or(Value::Null), "arguments": ""},
                }])))
            }
            Some("text") => block
                .get("text")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(|t| TokenEvent::Token(t.to_owned())),
            Some("thinking") => block
                .get("thinking")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(|t| TokenEvent::Reasoning(t.to_owned())),
            // `redacted_thinking` carries only encrypted data: nothing to show.
            _ => None,
        }
    }

    fn block_delta(&mut self, index: u64, delta: Option<Value>) -> Option<TokenEvent> {
        let delta = delta?;
        match delta.get("type").and_then(Value::as_str) {
            Some("text_delta") => delta
                .get("text")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(|t| TokenEvent::Token(t.to_owned())),
            Some("thinking_delta") => delta
                .get("thinking")
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
                .map(|t| TokenEvent::Reasoning(t.to_owned())),
            Some("signature_delta") => delta
                .get("signature")
                .and_then(Value::as_str)
                .map(|s| TokenEvent::Signature(s.to_owned())),
            Some("input_json_delta") => {
                let call = self
                    .tool_blocks
                    .iter()
                    .find(|(block, _)| *block == index)?
                    .1;
                let piece = delta
                    .get("partial_json")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                Some(TokenEvent::ToolCalls(
                    json!([{"index": call, "function": {"arguments": piece}}]),
                ))
            }
            _ => None,
        }
    }
}

/// Anthropic's stop reasons in OpenAI's words.
fn finish_reason(stop_reason: &str) -> String {
    match stop_reason {
        "end_turn" | "stop_sequence" => "stop",
        "max_tokens" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        other => other,
    }
    .to_owned()
}

/// For the fuzz targets: a stream of upstream events through the event
/// parser, to its terminal event.
#[cfg(feature = "fuzzing")]
pub fn fuzz_events(events: &[&str]) {
    use upstream::SseState;
    let redactor = Redactor::default();
    let mut state = MessageState::default();
    for data in events {
        if state.on_event(data, &redactor).is_err() || state.finished() {
            break;
        }
    }
    let _ = state.into_terminal();
}
