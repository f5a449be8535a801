//! Provider `openai`: OpenAI's Chat Completions API and every server that
//! speaks it (vLLM, llama.cpp, LM Studio, Ollama's /v1, Groq, OpenRouter, ...).
//!
//! It asks for `stream: true` with `stream_options.include_usage`, decodes the
//! SSE response as it arrives, and yields one event per chunk: a token for a
//! content delta, reasoning for `reasoning_content` or `reasoning`, tool-call
//! deltas; a chunk with more than one of them, or with fields sluice does not
//! read (`refusal`, `function_call`, `audio`, `logprobs`), as one
//! [`ChunkDelta`], which the OpenAI door relays whole. After a chunk with
//! `finish_reason` it keeps reading until `[DONE]` (or the end of the body,
//! or a short wait: the answer is whole), because the usage chunk comes after
//! it. A count the upstream leaves out is counted locally.

mod delta;
mod scan;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use delta::Delta;
use scan::Plain;

use super::upstream::{self, error_message, Endpoint};
use super::{Embedding, Provider};
use crate::config::{ModelConfig, Timeouts};
use crate::generation::{
    ChunkDelta, EmbedRequest, Embedded, Finish, GenRequest, Message, OutputFormat, TokenEvent,
    TokenStream, ToolChoice, UpstreamError, Usage,
};
use crate::redact::Redactor;
use crate::tokenizer;

pub struct OpenAi {
    endpoint: Endpoint,
    /// The upstream's `/embeddings`.
    embeddings: Endpoint,
    /// The client fields the upstream may receive; `None`: all.
    passthrough: Option<Vec<String>>,
}

impl OpenAi {
    pub fn new(model: &ModelConfig, timeouts: &Timeouts) -> OpenAi {
        OpenAi {
            endpoint: Endpoint::new(model, timeouts, "/chat/completions"),
            embeddings: Endpoint::new(model, timeouts, "/embeddings"),
            passthrough: model.passthrough.clone(),
        }
    }

    /// The upstream request: the client's uninterpreted fields as they came,
    /// then the fields sluice owns.
    fn request_body(&self, request: &GenRequest) -> Value {
        let mut body = request.passthrough.clone();
        if let Some(allowed) = &self.passthrough {
            body.retain(|key, _| allowed.iter().any(|a| a == key));
        }
        let messages = match &request.raw_messages {
            Some(raw) => Value::from(raw.clone()),
            None => json!(request.messages),
        };
        body.insert("model".into(), json!(self.endpoint.upstream_model));
        body.insert("messages".into(), messages);
        body.insert("stream".into(), json!(true));
        body.insert("stream_options".into(), json!({ "include_usage": true }));
        // Tools from a door that is not OpenAI's own (whose `tools` pass through).
        if !body.contains_key("tools") && !request.tools.is_empty() {
            let tools: Vec<Value> = request
                .tools
                .iter()
                .map(|tool| {
                    let mut function = json!({"name": tool.name, "parameters": tool.parameters});
                    if let Some(description) = &tool.description {
                        function["description"] = json!(description);
                    }
                    json!({"type": "function", "function": function})
                })
                .collect();
            body.insert("tools".into(), Value::from(tools));
            let choice = match &request.tool_choice {
                ToolChoice::Auto => None,
                ToolChoice::None => Some(json!("none")),
                ToolChoice::Required => Some(json!("required")),
                ToolChoice::Named(name) => {
                    Some(json!({"type": "function", "function": {"name": name}}))
                }
            };
            if let Some(choice) = choice {
                body.insert("tool_choice".into(), choice);
            }
        }
        // A format asked for at another door, in Chat Completions' terms.
        if let (false, Some(format)) = (body.contains_key("response_format"), &request.format) {
            let format = match format {
                OutputFormat::JsonObject => json!({"type": "json_object"}),
                OutputFormat::JsonSchema(schema) => json!({"type": "json_schema",
                    "json_schema": {"name": "response", "schema": schema}}),
            };
            body.insert("response_format".into(), format);
        }
        let mut sampling = request.sampling();
        // Newer OpenAI models refuse `max_tokens` next to `max_completion_tokens`.
        if body.contains_key("max_completion_tokens") {
            sampling.remove("max_tokens");
        }
        body.extend(sampling);
        Value::Object(body)
    }
}

impl Provider for OpenAi {
    /// The client's body goes to the upstream's `/embeddings` as it came,
    /// with the upstream's model name and floats asked for (the door encodes
    /// them as the client asked).
    fn embed(&self, request: EmbedRequest) -> Embedding<'_> {
        let mut body = request.raw;
        body.insert(
            "model".into(),
            Value::from(self.embeddings.upstream_model.clone()),
        );
        body.insert("encoding_format".into(), Value::from("float"));
        let mut call = self
            .embeddings
            .post(&Value::Object(body), &GenRequest::default());
        if let Some(key) = &self.embeddings.api_key {
            call = call.bearer_auth(key);
        }
        let sent = self.embeddings.send(call);
        let redactor = self.embeddings.redactor.clone();
        Box::pin(async move {
            let bad = |why: String| UpstreamError::Stream(redactor.scrub(&why));
            let answer: Value = sent
                .await?
                .json(upstream::JSON_ANSWER_LIMIT)
                .await
                .map_err(|err| bad(format!("the upstream's embeddings did not parse: {err}")))?;
            let vectors = answer["data"]
                .as_array()
                .ok_or_else(|| bad("the upstream's embeddings have no `data`".into()))?
                .iter()
                .map(|item| {
                    item["embedding"]
                        .as_array()
                        .map(|v| {
                            v.iter()
                                .filter_map(Value::as_f64)
                                .map(|x| x as f32)
                                .collect()
                        })
                        .ok_or_else(|| bad("an upstream embedding is not a list of numbers".into()))
                })
                .collect::<Result<Vec<Vec<f32>>, _>>()?;
            let prompt_tokens = answer["usage"]["prompt_tokens"].as_u64().unwrap_or(0);
            Ok(Embedded {
                vectors,
                prompt_tokens: u32::try_from(prompt_tokens).unwrap_or(u32::MAX),
            })
        })
    }

    fn generate(&self, request: GenRequest) -> TokenStream {
        let mut call = self.endpoint.post(&self.request_body(&request), &request);
        if let Some(key) = &self.endpoint.api_key {
            call = call.bearer_auth(key);
        }
        let state = StreamState {
            // Only the conversation is needed from here on (to count usage
            // when the upstream sends none); the rest of the request is freed.
            messages: request.messages,
            ..StreamState::default()
        };
        upstream::sse_generation(self.endpoint.send(call), &self.endpoint, state)
    }
}

/// What a stream has told us so far.
#[derive(Default)]
struct StreamState {
    finish_reason: Option<String>,
    /// The upstream's counts: prompt, completion, reasoning.
    usage: Option<(Option<u32>, Option<u32>, Option<u32>)>,
    /// The completion, counted for when the upstream sends no usage.
    completion: Tally,
    /// The reasoning, likewise.
    reasoning: Tally,
    saw_done: bool,
    /// The conversation, for the prompt tokens when the upstream sends no usage.
    messages: Vec<Message>,
    /// The fast path for plain chunks.
    reader: scan::ChunkReader,
}

#[derive(Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<ChunkUsage>,
    error: Option<Value>,
}

#[derive(Deserialize)]
struct Choice {
    #[serde(default)]
    index: u32,
    delta: Option<Delta>,
    finish_reason: Option<String>,
    logprobs: Option<Value>,
}

/// Usage as servers send it: any count may be missing or `null` (some
/// llama.cpp builds, TGI, gateways), and a missing one is counted locally.
#[derive(Deserialize)]
struct ChunkUsage {
    prompt_tokens: Option<u32>,
    completion_tokens: Option<u32>,
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize)]
struct CompletionDetails {
    reasoning_tokens: Option<u32>,
}

impl upstream::SseState for StreamState {
    fn on_event(
        &mut self,
        data: &str,
        redactor: &Redactor,
    ) -> Result<Option<TokenEvent>, UpstreamError> {
        if data.trim() == "[DONE]" {
            self.saw_done = true;
            return Ok(None);
        }
        match self.reader.plain(data) {
            Some(plain) => {
                if let Plain::Token(text) = &plain {
                    self.completion.add(text);
                }
                Ok(plain.into_event())
            }
            None => self.on_chunk(data, redactor),
        }
    }

    fn finished(&self) -> bool {
        self.saw_done
    }

    fn answered(&self) -> bool {
        self.finish_reason.is_some()
    }

    fn into_terminal(self) -> TokenEvent {
        let finish_reason = match (self.finish_reason, self.saw_done) {
            (Some(reason), _) => reason,
            // `[DONE]` without a finish_reason: some servers omit it.
            (None, true) => "stop".to_owned(),
            (None, false) => {
                return TokenEvent::Error(UpstreamError::Stream(
                    "the upstream closed the stream before it finished".into(),
                ));
            }
        };
        // What the upstream did not count is counted here.
        let (prompt, completion, reasoning) = self.usage.unwrap_or_default();
        let local_reasoning = self.reasoning.tokens();
        let usage = Usage::new(
            prompt.unwrap_or_else(|| tokenizer::prompt_tokens(&self.messages)),
            completion.unwrap_or_else(|| self.completion.tokens() + local_reasoning),
        )
        .with_reasoning(reasoning.or_else(|| Some(local_reasoning).filter(|n| *n > 0)));
        TokenEvent::Done(Finish::new(finish_reason, usage))
    }
}

/// Text counted in tokens for a fallback usage (when the upstream sends
/// none), in bounded memory and with no work per token beyond a copy: the
/// first [`Tally::HELD`] bytes (1 KiB) are kept and only the length of the
/// rest; at the end the kept part is counted and the rest estimated at its
/// rate. Tokenizing as the text came cost more CPU than relaying it, and is
/// wasted when the usage arrives, as it usually does.
#[derive(Default)]
struct Tally {
    held: String,
    bytes: usize,
}

impl Tally {
    const HELD: usize = 1024;

    fn add(&mut self, text: &str) {
        self.bytes += text.len();
        if self.held.len() < Self::HELD {
            self.held.push_str(text);
        }
    }

    fn tokens(&self) -> u32 {
        tokenizer::estimate(&self.held, self.bytes)
    }
}

impl StreamState {
    /// A chunk the fast path ([`scan::ChunkReader::plain`]) did not take, parsed whole.
    fn on_chunk(
        &mut self,
        data: &str,
        redactor: &Redactor,
    ) -> Result<Option<TokenEvent>, UpstreamError> {
        let chunk: Chunk = match serde_json::from_str(data) {
            Ok(chunk) => chunk,
            Err(err) => {
                return Err(UpstreamError::Malformed(format!(
                    "the upstream sent a chunk that is not a chat.completion.chunk: {err}"
                )));
            }
        };
        if let Some(error) = chunk.error {
            let message = format!("the upstream reported an error: {}", error_message(&error));
            return Err(UpstreamError::Stream(redactor.scrub(&message)));
        }
        if let Some(usage) = chunk.usage {
            let reasoning = usage
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens);
            self.usage = Some((usage.prompt_tokens, usage.completion_tokens, reasoning));
        }
        // sluice asks for one choice; any others (n > 1) are not relayed here.
        let Some(choice) = chunk.choices.into_iter().find(|c| c.index == 0) else {
            return Ok(None);
        };
        if let Some(reason) = choice.finish_reason {
            self.finish_reason = Some(reason);
        }
        let Some(delta) = choice.delta else {
            return Ok(None);
        };
        Ok(self.event_of(delta, choice.logprobs.filter(|l| !l.is_null())))
    }

    /// The event for one delta: the cheap single-part ones for the common
    /// chunks, a whole [`ChunkDelta`] for the rest.
    fn event_of(&mut self, delta: Delta, logprobs: Option<Value>) -> Option<TokenEvent> {
        let Delta {
            content,
            reasoning,
            tool_calls,
            other,
        } = delta;
        if let Some(text) = &content {
            self.completion.add(text);
        }
        if let Some(text) = &reasoning {
            self.reasoning.add(text);
        }
        let plain = other.is_empty() && logprobs.is_none();
        match (content, reasoning, tool_calls) {
            (Some(text), None, None) if plain => Some(TokenEvent::Token(text)),
            (None, Some(text), None) if plain => Some(TokenEvent::Reasoning(text)),
            (None, None, Some(calls)) if plain => Some(TokenEvent::ToolCalls(calls)),
            (None, None, None) if plain => None,
            (content, reasoning, tool_calls) => {
                let mut fields = Map::new();
                let parts = [
                    ("reasoning_content", reasoning.map(Value::from)),
                    ("content", content.map(Value::from)),
                    ("tool_calls", tool_calls),
                ];
                for (key, value) in parts {
                    if let Some(value) = value {
                        fields.insert(key.into(), value);
                    }
                }
                fields.extend(other);
                Some(TokenEvent::Delta(Box::new(ChunkDelta {
                    delta: fields,
                    logprobs,
                })))
            }
        }
    }
}

/// For the fuzz targets: a stream of upstream events through the chunk
/// parser, to its terminal event; and every chunk the fast path takes gives
/// the same event and the same count through the full parse.
#[cfg(feature = "fuzzing")]
pub fn fuzz_events(events: &[&str]) {
    use upstream::SseState;
    let redactor = Redactor::default();
    let mut state = StreamState::default();
    let mut reader = scan::ChunkReader::default();
    for data in events {
        if let Some(plain) = reader.plain(data) {
            let mut full = StreamState::default();
            let expected = plain.into_event();
            let got = full.on_chunk(data, &redactor);
            assert!(
                got.as_ref().is_ok_and(|e| *e == expected),
                "{data:?}: {got:?} vs {expected:?}"
            );
            assert!(full.finish_reason.is_none() && full.usage.is_none());
        }
        if state.on_event(data, &redactor).is_err() || state.finished() {
            break;
        }
    }
    let _ = state.into_terminal();
}

#[cfg(test)]
mod tests {
    use super::scan;
    use super::{StreamState, Tally};
    use crate::redact::Redactor;
    use crate::tokenizer;

    /// Chunks as servers send them (OpenAI, vLLM, llama.cpp, Groq-like
    /// extras), and near misses: wherever the fast path answers, the full
    /// parse answers the same, and the fast path takes the common ones.
    #[test]
    fn the_fast_path_agrees_with_the_full_parse() {
        let taken = [
            r#"{"id":"chatcmpl-A","object":"chat.completion.chunk","created":1733000000,"model":"gpt-4o-mini-2024-07-18","service_tier":"default","system_fingerprint":"fp_0aa8d3e20b","choices":[{"index":0,"delta":{"content":" world"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"bYq"}"#,
            r#"{"id":"chatcmpl-b","object":"chat.completion.chunk","created":1733000000,"model":"Qwen/Qwen2.5-7B","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
            r#"{"choices":[{"finish_reason":null,"index":0,"delta":{"content":"é\"q\"\n"}}],"created":1733000000,"id":"chatcmpl-c","model":"llama","system_fingerprint":"b4000-abc","object":"chat.completion.chunk"}"#,
            r#"{"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"a","reasoning_content":null,"tool_calls":null}}],"x_groq":null}"#,
        ];
        let left = [
            r#"{"id":"x","choices":[{"index":0,"delta":{"content":"a"},"finish_reason":"stop"}]}"#,
            r#"{"id":"x","choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#,
            r#"{"id":"x","choices":[{"index":0,"delta":{"reasoning_content":"hm"}}]}"#,
            r#"{"error":{"message":"overloaded"}}"#,
            r#"{"id":"x","choices":[{"index":0,"delta":{"content":"a"}}],"x_groq":{"id":"req_1"}}"#,
            r#"not json"#,
        ];
        let redactor = Redactor::default();
        for (data, fast) in taken
            .iter()
            .map(|d| (d, true))
            .chain(left.iter().map(|d| (d, false)))
        {
            let plain = scan::ChunkReader::default().plain(data);
            assert_eq!(plain.is_some(), fast, "{data}");
            let Some(plain) = plain else { continue };
            let expected = plain.into_event();
            let mut full = StreamState::default();
            assert_eq!(full.on_chunk(data, &redactor).unwrap(), expected, "{data}");
        }
    }

    #[test]
    fn a_tally_holds_a_bounded_text_and_counts_like_the_whole() {
        let piece = "Streaming matters because people read as fast as tokens arrive. ";
        let mut tally = Tally::default();
        let mut whole = String::new();
        for _ in 0..500 {
            tally.add(piece);
            whole.push_str(piece);
            assert!(tally.held.capacity() <= 2 * Tally::HELD);
        }
        let (counted, exact) = (tally.tokens(), tokenizer::count(&whole));
        assert!(
            counted.abs_diff(exact) <= exact / 100,
            "{counted} vs {exact}"
        );
    }
}
