//! OpenAI request bodies, validated into a [`GenRequest`].
//!
//! Unlike the native door, unknown fields are not errors here: OpenAI's API
//! grows all the time, and fields sluice does not interpret (`tools`,
//! `tool_choice`, `response_format`, `logprobs`, `user`, ...) pass unchanged
//! to OpenAI-compatible upstreams. The fields sluice does read are typed
//! strictly, and a wrong one is a 400 naming it.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::doors::json::{parse, take};
use crate::doors::tools::{self, Dialect};
use crate::doors::Stop;
use crate::error::ApiError;
use crate::generation::{
    check_choice, check_max_tokens, GenRequest, Message, MockKnobs, Role, Tool, ToolChoice,
};

/// What the handler needs besides the generation itself.
pub struct ParsedRequest {
    pub model: Option<String>,
    pub stream: bool,
    pub include_usage: bool,
    pub generation: GenRequest,
}

/// The fields every OpenAI completion request shares, taken out of the body
/// one by one so that a wrong one is named in the error.
struct SharedFields {
    model: Option<String>,
    stream: Option<bool>,
    stream_options: Option<StreamOptions>,
    max_tokens: Option<u32>,
    temperature: Option<f64>,
    top_p: Option<f64>,
    /// OpenAI's seed is a signed 64-bit integer.
    seed: Option<i64>,
    stop: Option<Stop>,
    n: Option<u32>,
    mock: Option<MockKnobs>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    include_usage: Option<bool>,
}

impl SharedFields {
    fn take(body: &mut Map<String, Value>) -> Result<SharedFields, ApiError> {
        Ok(SharedFields {
            model: take(body, "model")?,
            stream: take(body, "stream")?,
            stream_options: take(body, "stream_options")?,
            max_tokens: take(body, "max_tokens")?,
            temperature: take(body, "temperature")?,
            top_p: take(body, "top_p")?,
            seed: take(body, "seed")?,
            stop: take(body, "stop")?,
            n: take(body, "n")?,
            mock: take(body, "mock")?,
        })
    }
}

/// Legacy-completion fields that mean the same to the chat API the upstream
/// is asked through; the rest (`echo`, `suffix`, `best_of`, an integer
/// `logprobs`) have no chat equivalent and are not sent.
const COMPLETION_PASSTHROUGH: &[&str] = &[
    "user",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
];

pub fn chat(body: &[u8]) -> Result<ParsedRequest, ApiError> {
    let mut body = parse(body)?;
    let raw_messages: Vec<Value> = take(&mut body, "messages")?
        .ok_or_else(|| ApiError::invalid("messages", "missing field `messages`"))?;
    if raw_messages.is_empty() {
        return Err(ApiError::invalid(
            "messages",
            "`messages` must not be empty",
        ));
    }
    let messages = text_messages(&raw_messages)?;
    let max_completion_tokens: Option<u32> = take(&mut body, "max_completion_tokens")?;
    let common = SharedFields::take(&mut body)?;
    // What is left is for the upstream, unchanged.
    let mut passthrough = body;
    if let Some(max) = max_completion_tokens {
        check_max_tokens("max_completion_tokens", max)?;
        passthrough.insert("max_completion_tokens".into(), Value::from(max));
    }
    let max_tokens = common.max_tokens.or(max_completion_tokens);
    // Read, not taken: OpenAI-compatible upstreams get them as they came.
    let offered = (
        tools::tools(&passthrough, Dialect::Chat)?,
        tools::choice(&passthrough, Dialect::Chat)?,
    );
    let format = crate::doors::format::format(&passthrough, Dialect::Chat)?;
    let mut prepared = common.into_parsed(messages, passthrough, offered)?;
    prepared.generation.max_tokens = max_tokens;
    prepared.generation.format = format;
    prepared.generation.tool_results = trailing_tool_results(&raw_messages);
    prepared.generation.parallel_tool_calls = prepared
        .generation
        .passthrough
        .get("parallel_tool_calls")
        .and_then(Value::as_bool);
    prepared.generation.raw_messages = Some(raw_messages);
    Ok(prepared)
}

pub fn completion(body: &[u8]) -> Result<ParsedRequest, ApiError> {
    let mut body = parse(body)?;
    let prompt = match body.remove("prompt") {
        Some(Value::String(prompt)) => prompt,
        Some(Value::Array(mut many)) if many.len() == 1 && many[0].is_string() => {
            many.remove(0).as_str().unwrap_or_default().to_owned()
        }
        Some(Value::Array(_)) => {
            return Err(ApiError::invalid(
                "prompt",
                "`prompt` must be one string (sluice streams one completion per request)",
            ))
        }
        None | Some(Value::Null) => {
            return Err(ApiError::invalid("prompt", "missing field `prompt`"))
        }
        Some(_) => return Err(ApiError::invalid("prompt", "`prompt` must be a string")),
    };
    let common = SharedFields::take(&mut body)?;
    let passthrough = body
        .into_iter()
        .filter(|(key, _)| COMPLETION_PASSTHROUGH.contains(&key.as_str()))
        .collect();
    let messages = vec![Message {
        role: Role::User,
        content: prompt,
    }];
    common.into_parsed(messages, passthrough, (Vec::new(), ToolChoice::Auto))
}

impl SharedFields {
    fn into_parsed(
        self,
        messages: Vec<Message>,
        mut passthrough: Map<String, Value>,
        (tools, tool_choice): (Vec<Tool>, ToolChoice),
    ) -> Result<ParsedRequest, ApiError> {
        check_choice(&tools, &tool_choice, "tool_choice")?;
        match self.n {
            Some(0) => return Err(ApiError::invalid("n", "`n` must be at least 1")),
            Some(1) => {
                passthrough.insert("n".into(), Value::from(1));
            }
            Some(_) => {
                return Err(ApiError::invalid(
                    "n",
                    "sluice streams one choice per request: `n` must be 1",
                ))
            }
            None => {}
        }
        let stream = self.stream.unwrap_or(false);
        let include_usage = stream
            && self
                .stream_options
                .and_then(|o| o.include_usage)
                .unwrap_or(false);
        let generation = GenRequest {
            messages,
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            seed: self.seed.map(|s| s as u64),
            stop: Stop::into_vec(self.stop),
            mock: self.mock.unwrap_or_default(),
            raw_messages: None,
            passthrough,
            tools,
            tool_choice,
            format: None,
            tool_results: Vec::new(),
            parallel_tool_calls: None,
            scripted_calls: Vec::new(),
            traceparent: None,
        };
        generation.validate()?;
        Ok(ParsedRequest {
            model: self.model,
            stream,
            include_usage,
            generation,
        })
    }
}

/// The results of the `tool` messages the conversation ends with, as text.
fn trailing_tool_results(raw: &[Value]) -> Vec<String> {
    let is_tool = |m: &&Value| {
        matches!(
            m.get("role").and_then(Value::as_str),
            Some("tool" | "function")
        )
    };
    let mut results: Vec<String> = raw
        .iter()
        .rev()
        .take_while(is_tool)
        .map(|m| match m.get("content") {
            Some(Value::String(text)) => text.clone(),
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join("\n"),
            _ => String::new(),
        })
        .collect();
    results.reverse();
    results
}

/// The text-only view of OpenAI messages that the mock, the tokenizer and
/// non-OpenAI providers use. `developer` counts as `system`; tool results
/// count as user text; content parts other than text (images, audio) are
/// left out of this view (OpenAI-compatible upstreams still get them).
fn text_messages(raw: &[Value]) -> Result<Vec<Message>, ApiError> {
    raw.iter()
        .enumerate()
        .map(|(i, message)| {
            let field = |name: &str| format!("messages[{i}].{name}");
            let Some(message) = message.as_object() else {
                return Err(ApiError::invalid(format!("messages[{i}]"), format!("`messages[{i}]` must be an object")));
            };
            let role = match message.get("role").and_then(Value::as_str) {
                Some("system" | "developer") => Role::System,
                Some("user" | "tool" | "function") => Role::User,
                Some("assistant") => Role::Assistant,
                Some(other) => {
                    return Err(ApiError::invalid(
                        field("role"),
                        format!("`{}`: unknown role `{other}`: expected system, developer, user, assistant or tool", field("role")),
                    ))
                }
                None => return Err(ApiError::invalid(field("role"), format!("`{}` is missing", field("role")))),
            };
            let content = match message.get("content") {
                None | Some(Value::Null) => String::new(),
                Some(Value::String(text)) => text.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .filter(|p| p.get("type").and_then(Value::as_str) == Some("text"))
                    .filter_map(|p| p.get("text").and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join("\n"),
                Some(_) => {
                    return Err(ApiError::invalid(
                        field("content"),
                        format!("`{}` must be a string or an array of content parts", field("content")),
                    ))
                }
            };
            Ok(Message { role, content })
        })
        .collect()
}
