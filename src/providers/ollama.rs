//! Provider `ollama`: Ollama's native `POST /api/chat` with `stream: true`.
//!
//! The response is NDJSON: one JSON object per line, each with a piece of
//! `message.content`, and a last line with `done: true`, `done_reason`,
//! `prompt_eval_count` and `eval_count` (the usage). A line with `error`
//! ends the stream with that error. Lines are split with tokio-util's
//! `LinesCodec`, bounded so a line without an end cannot grow memory.
//! (Ollama also serves an OpenAI-compatible `/v1`; use provider `openai` with
//! it for tool calls and the other OpenAI fields.)

use async_stream::stream;
use futures_util::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_util::codec::{FramedRead, LinesCodec};
use tokio_util::io::StreamReader;

use super::upstream::{error_message, Endpoint, Forgiving};
use super::Provider;
use crate::config::{ModelConfig, Timeouts};
use crate::generation::{
    Finish, GenRequest, OutputFormat, TokenEvent, TokenStream, UpstreamError, Usage,
};

/// The longest NDJSON line accepted from Ollama.
const MAX_LINE: usize = 1024 * 1024;

pub struct Ollama {
    endpoint: Endpoint,
}

impl Ollama {
    pub fn new(model: &ModelConfig, timeouts: &Timeouts) -> Ollama {
        Ollama {
            endpoint: Endpoint::new(model, timeouts, "/api/chat"),
        }
    }

    fn request_body(&self, request: &GenRequest) -> Value {
        let mut options = request.sampling();
        if let Some(max_tokens) = options.remove("max_tokens") {
            options.insert("num_predict".into(), max_tokens);
        }
        let mut body = json!({
            "model": self.endpoint.upstream_model,
            "messages": request.messages,
            "stream": true,
        });
        if !options.is_empty() {
            body["options"] = Value::Object(options);
        }
        // Ollama's `format`: "json", or the schema itself.
        match &request.format {
            Some(OutputFormat::JsonObject) => body["format"] = json!("json"),
            Some(OutputFormat::JsonSchema(schema)) => body["format"] = schema.clone(),
            None => {}
        }
        body
    }
}

#[derive(Deserialize)]
struct Line {
    message: Option<LineMessage>,
    #[serde(default)]
    done: bool,
    done_reason: Option<String>,
    prompt_eval_count: Option<u32>,
    eval_count: Option<u32>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct LineMessage {
    #[serde(default)]
    content: String,
    /// A thinking model's reasoning (Ollama 0.9 and later).
    #[serde(default)]
    thinking: String,
}

impl Provider for Ollama {
    fn generate(&self, request: GenRequest) -> TokenStream {
        let mut call = self.endpoint.post(&self.request_body(&request), &request);
        if let Some(key) = &self.endpoint.api_key {
            // For Ollama behind an authenticating proxy, or ollama.com.
            call = call.bearer_auth(key);
        }
        let response = self.endpoint.send(call);
        let redactor = self.endpoint.redactor.clone();
        let mut forgiving = Forgiving::new(&self.endpoint);
        Box::pin(stream! {
            let response = match response.await {
                Ok(response) => response,
                Err(err) => {
                    yield TokenEvent::Error(err);
                    return;
                }
            };
            let body = StreamReader::new(response.bytes_stream().map_err(std::io::Error::other));
            let mut lines = FramedRead::new(body, LinesCodec::new_with_max_length(MAX_LINE));
            while let Some(line) = lines.next().await {
                let line = match line {
                    Ok(line) if line.trim().is_empty() => continue,
                    Ok(line) => line,
                    Err(err) => {
                        let message = format!("the upstream stream broke off: {err}");
                        yield TokenEvent::Error(UpstreamError::Stream(redactor.scrub(&message)));
                        return;
                    }
                };
                let line: Line = match serde_json::from_str(&line) {
                    Ok(line) => line,
                    Err(err) => {
                        let err = UpstreamError::Malformed(format!(
                            "the upstream sent a line that is not an Ollama chat chunk: {err}"
                        ));
                        if let Some(err) = forgiving.skip(err) {
                            yield TokenEvent::Error(err);
                            return;
                        }
                        continue;
                    }
                };
                if let Some(error) = line.error {
                    let message = format!("the upstream reported an error: {}", error_message(&error));
                    yield TokenEvent::Error(UpstreamError::Stream(redactor.scrub(&message)));
                    return;
                }
                if let Some(message) = line.message {
                    if !message.thinking.is_empty() {
                        yield TokenEvent::Reasoning(message.thinking);
                    }
                    if !message.content.is_empty() {
                        yield TokenEvent::Token(message.content);
                    }
                }
                if line.done {
                    let finish_reason = match line.done_reason.as_deref() {
                        Some("length") => "length",
                        _ => "stop",
                    };
                    yield TokenEvent::Done(Finish::new(
                        finish_reason,
                        Usage::new(line.prompt_eval_count.unwrap_or(0), line.eval_count.unwrap_or(0)),
                    ));
                    return;
                }
            }
            yield TokenEvent::Error(UpstreamError::Stream(
                "the upstream closed the stream before its done line".into(),
            ));
        })
    }
}
