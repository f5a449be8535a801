//! Framers for the OpenAI door's streams: `chat.completion.chunk` for
//! `/v1/chat/completions` and `text_completion` for `/v1/completions`.
//!
//! Every chunk of one stream starts with the same prefix (`id`, `object`,
//! `created`, `model`), built once; a chunk is that prefix, one choice, and
//! the suffix. Heartbeats are SSE comments, which the SDKs' decoders skip.

use bytes::Bytes;
use serde_json::{json, Value};

use super::error;
use super::identity::Identity;
use crate::error::ApiError;
use crate::generation::{ChunkDelta, Finish, Usage};
use crate::pipeline::framer::Framer;

const DONE: &str = "data: [DONE]\n\n";

/// The parts of a chunk that do not change within a stream.
struct ChunkShape {
    identity: Identity,
    object: &'static str,
    /// `data: {"id":..,"object":..,"created":..,"model":..,"choices":[`
    prefix: String,
    /// `]}` or, with `include_usage`, `],"usage":null}` (OpenAI sends the
    /// null on every chunk but the usage chunk).
    suffix: &'static str,
    include_usage: bool,
}

impl ChunkShape {
    fn new(identity: &Identity, object: &'static str, include_usage: bool) -> ChunkShape {
        ChunkShape {
            prefix: Self::prefix(identity, object),
            identity: identity.clone(),
            object,
            suffix: if include_usage {
                "],\"usage\":null}\n\n"
            } else {
                "]}\n\n"
            },
            include_usage,
        }
    }

    fn prefix(identity: &Identity, object: &str) -> String {
        // `{"created":..,"id":..,"model":..,"object":..` (keys in the sorted
        // order serde_json writes a map in), then the start of `choices`.
        format!(
            "data: {{\"created\":{},\"id\":{},\"model\":{},\"object\":{},\"choices\":[",
            identity.created,
            json_string(&identity.id),
            json_string(&identity.model),
            json_string(object)
        )
    }

    /// Names another model; only for use before the first chunk, since
    /// `model` is the same on every chunk of a stream.
    fn rename(&mut self, model: &str) {
        model.clone_into(&mut self.identity.model);
        self.prefix = Self::prefix(&self.identity, self.object);
    }

    fn chunk(&self, choice: &str) -> String {
        let mut out = String::with_capacity(self.prefix.len() + choice.len() + self.suffix.len());
        out.push_str(&self.prefix);
        out.push_str(choice);
        out.push_str(self.suffix);
        out
    }

    /// The end of a finished stream: the usage chunk when asked, then `[DONE]`.
    fn finish(&self, out: &mut String, usage: &Usage) {
        if self.include_usage {
            out.push_str(&self.prefix);
            out.push_str("],\"usage\":");
            out.push_str(&super::objects::usage(usage).to_string());
            out.push_str("}\n\n");
        }
        out.push_str(DONE);
    }
}

fn error_frame(err: &ApiError) -> Bytes {
    Bytes::from(format!("data: {}\n\n", error::body(err)))
}

fn json_string(text: &str) -> String {
    Value::from(text).to_string()
}

/// `chat.completion.chunk` frames.
pub struct ChatChunks {
    shape: ChunkShape,
    sent_role: bool,
}

const CHAT_CHUNK: &str = "chat.completion.chunk";

impl ChatChunks {
    pub fn new(identity: &Identity, include_usage: bool) -> ChatChunks {
        ChatChunks {
            shape: ChunkShape::new(identity, CHAT_CHUNK, include_usage),
            sent_role: false,
        }
    }

    /// The role chunk, if it has not gone out yet: the role arrives alone in
    /// the first chunk, as OpenAI sends it; LangChain and others depend on it.
    fn role_chunk(&mut self) -> String {
        if self.sent_role {
            return String::new();
        }
        self.sent_role = true;
        self.shape.chunk(
            r#"{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}"#,
        )
    }

    fn delta(&mut self, delta: &str, finish_reason: &str) -> String {
        let mut out = self.role_chunk();
        out.push_str(&self.shape.chunk(&format!(
            r#"{{"index":0,"delta":{delta},"logprobs":null,"finish_reason":{finish_reason}}}"#
        )));
        out
    }
}

impl Framer for ChatChunks {
    /// `model` is the same on every chunk, so it can change only before the first.
    fn serving(&mut self, model: &str) {
        if !self.sent_role {
            self.shape.rename(model);
        }
    }

    /// The hot path: one allocation, the outgoing frame, built in place.
    fn token(&mut self, token: &str) -> Bytes {
        if !self.sent_role {
            let delta = format!(r#"{{"content":{}}}"#, json_string(token));
            return Bytes::from(self.delta(&delta, "null"));
        }
        const OPEN: &str = r#"{"index":0,"delta":{"content":"#;
        const CLOSE: &str = r#"},"logprobs":null,"finish_reason":null}"#;
        let shape = &self.shape;
        let mut out = Vec::with_capacity(
            shape.prefix.len() + OPEN.len() + token.len() + 8 + CLOSE.len() + shape.suffix.len(),
        );
        out.extend_from_slice(shape.prefix.as_bytes());
        out.extend_from_slice(OPEN.as_bytes());
        serde_json::to_writer(&mut out, token).expect("a string serialises");
        out.extend_from_slice(CLOSE.as_bytes());
        out.extend_from_slice(shape.suffix.as_bytes());
        Bytes::from(out)
    }

    /// `delta.reasoning_content`, the name most clients read (DeepSeek's,
    /// vLLM's, the AI SDK's, Open WebUI's).
    fn reasoning(&mut self, text: &str) -> Bytes {
        let delta = format!(r#"{{"reasoning_content":{}}}"#, json_string(text));
        Bytes::from(self.delta(&delta, "null"))
    }

    fn tool_calls(&mut self, calls: &Value) -> Option<Bytes> {
        let delta = json!({ "tool_calls": calls }).to_string();
        Some(Bytes::from(self.delta(&delta, "null")))
    }

    /// The upstream's delta as it came (content and tool calls together,
    /// `refusal`, `function_call`, ...) and its `logprobs`, in sluice's chunk.
    fn delta(&mut self, delta: &ChunkDelta) -> Option<Bytes> {
        let fields = Value::Object(delta.delta.clone()).to_string();
        let logprobs = delta.logprobs.as_ref().unwrap_or(&Value::Null);
        let choice =
            format!(r#"{{"index":0,"delta":{fields},"logprobs":{logprobs},"finish_reason":null}}"#);
        let mut out = self.role_chunk();
        out.push_str(&self.shape.chunk(&choice));
        Some(Bytes::from(out))
    }

    fn done(&mut self, finish: &Finish) -> Bytes {
        let mut out = self.delta("{}", &json_string(&finish.finish_reason));
        self.shape.finish(&mut out, &finish.usage);
        Bytes::from(out)
    }

    fn error(&mut self, err: &ApiError) -> Bytes {
        error_frame(err)
    }
}

/// `text_completion` frames, for the legacy `/v1/completions`.
pub struct CompletionChunks {
    shape: ChunkShape,
    sent_any: bool,
}

const TEXT_COMPLETION: &str = "text_completion";

impl CompletionChunks {
    pub fn new(identity: &Identity, include_usage: bool) -> CompletionChunks {
        CompletionChunks {
            shape: ChunkShape::new(identity, TEXT_COMPLETION, include_usage),
            sent_any: false,
        }
    }

    fn choice(&mut self, text: &str, finish_reason: &str) -> String {
        self.sent_any = true;
        self.shape.chunk(&format!(
            r#"{{"text":{},"index":0,"logprobs":null,"finish_reason":{finish_reason}}}"#,
            json_string(text)
        ))
    }
}

impl Framer for CompletionChunks {
    fn serving(&mut self, model: &str) {
        if !self.sent_any {
            self.shape.rename(model);
        }
    }

    fn token(&mut self, token: &str) -> Bytes {
        Bytes::from(self.choice(token, "null"))
    }

    /// A legacy completion has no place for reasoning, and it is not the answer.
    fn reasoning(&mut self, _text: &str) -> Bytes {
        Bytes::new()
    }

    fn done(&mut self, finish: &Finish) -> Bytes {
        let mut out = self.choice("", &json_string(&finish.finish_reason));
        self.shape.finish(&mut out, &finish.usage);
        Bytes::from(out)
    }

    fn error(&mut self, err: &ApiError) -> Bytes {
        error_frame(err)
    }
}
