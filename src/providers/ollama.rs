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
use bytes::BytesMut;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio_util::codec::{Decoder, LinesCodec};

use super::upstream::{error_message, Body, Endpoint, Forgiving};
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
            let mut body = match response.await {
                Ok(body) => body,
                Err(err) => {
                    yield TokenEvent::Error(err);
                    return;
                }
            };
            let mut lines = Lines::new();
            loop {
                let line = match lines.next(&mut body).await {
                    Ok(Some(line)) if line.trim().is_empty() => continue,
                    Ok(Some(line)) => line,
                    Ok(None) => break,
                    Err(why) => {
                        let message = format!("the upstream stream broke off: {why}");
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
                    let usage =
                        Usage::new(line.prompt_eval_count.unwrap_or(0), line.eval_count.unwrap_or(0));
                    body.park();
                    yield TokenEvent::Done(Finish::new(finish_reason, usage));
                    return;
                }
            }
            yield TokenEvent::Error(UpstreamError::Stream(
                "the upstream closed the stream before its done line".into(),
            ));
        })
    }
}

/// An NDJSON body's lines, cut by tokio-util's `LinesCodec` (at most
/// [`MAX_LINE`] bytes; a last line without its line feed still counts), as
/// `FramedRead` cut them when the body was a reqwest stream.
struct Lines {
    pending: BytesMut,
    codec: LinesCodec,
    ended: bool,
}

impl Lines {
    fn new() -> Lines {
        Lines {
            pending: BytesMut::new(),
            codec: LinesCodec::new_with_max_length(MAX_LINE),
            ended: false,
        }
    }

    /// The next line (without its CRLF or LF), or `None` at the body's end.
    async fn next(&mut self, body: &mut Body) -> Result<Option<String>, String> {
        loop {
            let line = match self.ended {
                false => self.codec.decode(&mut self.pending),
                true => self.codec.decode_eof(&mut self.pending),
            };
            match line.map_err(|err| err.to_string())? {
                Some(line) => return Ok(Some(line)),
                None if self.ended => return Ok(None),
                None => {}
            }
            let pending = &mut self.pending;
            self.ended = !body
                .read(&mut |bytes| pending.extend_from_slice(bytes))
                .await?;
        }
    }
}
