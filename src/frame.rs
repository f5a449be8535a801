//! The native door's wire formats: how one token event becomes bytes on the
//! client socket.
//!
//! Three formats carry the same generation:
//! - `Sse` (the default): `id:` + `data: {"token":...}` per token, then one
//!   `event: done` or `event: error` frame; `: keep-alive` comments in silences.
//! - `Ndjson`: one JSON object per line, tokens then `{"done":..}` or `{"error":..}`.
//! - `Text`: the bare token text, for a `curl -N` typewriter.
//!
//! Every front door writes a generation through a [`Framer`]; this file holds
//! the trait and the native door's framer, [`NativeFrames`]. The OpenAI door's
//! framers live in `openai_compat::frames`. Framers only build bytes; when they
//! are written is the relay's business.

use axum::http::header::ACCEPT;
use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::generation::Finish;

/// How one front door turns a generation's events into bytes.
pub trait Framer: Send + 'static {
    fn content_type(&self) -> &'static str;
    /// A token frame.
    fn token(&mut self, token: &str) -> Bytes;
    /// An OpenAI `tool_calls` delta; `None` where the format cannot carry one.
    fn tool_calls(&mut self, _calls: &Value) -> Option<Bytes> {
        None
    }
    /// The model actually serving (a fallback, perhaps); arrives before its
    /// first token.
    fn serving(&mut self, _model: &str) {}
    /// The terminal frame(s) of a generation that finished; may be empty.
    fn done(&mut self, finish: &Finish) -> Bytes;
    /// The terminal frame of a generation that failed after the response began.
    fn error(&mut self, error: &ApiError) -> Bytes;
    /// A frame that keeps an idle connection alive, where the format has one.
    fn heartbeat(&self) -> Option<Bytes>;
    /// True when the format has no error frame a program can recognise, so a
    /// failure must also abort the response.
    fn aborts_on_error(&self) -> bool {
        false
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Sse,
    Ndjson,
    Text,
}

impl Format {
    /// `?format=` wins; then the `Accept` header; SSE when neither says.
    pub fn negotiate(query_format: Option<&str>, headers: &HeaderMap) -> Result<Format, ApiError> {
        if let Some(name) = query_format {
            return match name {
                "sse" => Ok(Format::Sse),
                "ndjson" => Ok(Format::Ndjson),
                "text" => Ok(Format::Text),
                other => Err(ApiError::invalid(
                    "format",
                    format!("unknown format `{other}`: expected sse, ndjson or text"),
                )),
            };
        }
        let accept = headers
            .get_all(ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",");
        Ok(if accept.contains("text/event-stream") {
            Format::Sse
        } else if accept.contains("application/x-ndjson") {
            Format::Ndjson
        } else if accept.contains("text/plain") {
            Format::Text
        } else {
            Format::Sse
        })
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Sse => "text/event-stream",
            Format::Ndjson => "application/x-ndjson",
            Format::Text => "text/plain; charset=utf-8",
        }
    }
}

/// The native door's frames (section 1): `id`s count tokens from 0.
pub struct NativeFrames {
    format: Format,
    model: String,
    next_id: u64,
}

impl NativeFrames {
    pub fn new(format: Format, model: String) -> NativeFrames {
        NativeFrames {
            format,
            model,
            next_id: 0,
        }
    }
}

impl Framer for NativeFrames {
    fn content_type(&self) -> &'static str {
        self.format.content_type()
    }

    fn token(&mut self, token: &str) -> Bytes {
        let id = self.next_id;
        self.next_id += 1;
        // The hot path: one allocation, the outgoing frame, built in place.
        let mut out = Vec::with_capacity(token.len() + 40);
        match self.format {
            Format::Sse => {
                out.extend_from_slice(b"id: ");
                out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
                out.extend_from_slice(b"\ndata: {\"token\":");
                serde_json::to_writer(&mut out, token).expect("a string serialises");
                out.extend_from_slice(b"}\n\n");
            }
            Format::Ndjson => {
                out.extend_from_slice(b"{\"token\":");
                serde_json::to_writer(&mut out, token).expect("a string serialises");
                out.extend_from_slice(b"}\n");
            }
            Format::Text => out.extend_from_slice(token.as_bytes()),
        }
        Bytes::from(out)
    }

    fn serving(&mut self, model: &str) {
        model.clone_into(&mut self.model);
    }

    fn done(&mut self, finish: &Finish) -> Bytes {
        let done = json!({
            "finish_reason": finish.finish_reason,
            "model": self.model,
            "usage": finish.usage,
        });
        match self.format {
            Format::Sse => Bytes::from(format!("event: done\ndata: {done}\n\n")),
            Format::Ndjson => Bytes::from(format!("{}\n", json!({ "done": done }))),
            Format::Text => Bytes::new(),
        }
    }

    fn error(&mut self, error: &ApiError) -> Bytes {
        let body = error.body();
        match self.format {
            Format::Sse => Bytes::from(format!("event: error\ndata: {body}\n\n")),
            Format::Ndjson => Bytes::from(format!("{body}\n")),
            // Plain text has no frames: the message is printed for the person
            // at the terminal, and the relay then aborts the response so that
            // programs see a failed transfer, not a complete text.
            Format::Text => Bytes::from(format!("\n[sluice error] {error}\n")),
        }
    }

    /// NDJSON and plain text have no comment syntax, so they get none.
    fn heartbeat(&self) -> Option<Bytes> {
        match self.format {
            Format::Sse => Some(Bytes::from_static(HEARTBEAT)),
            Format::Ndjson | Format::Text => None,
        }
    }

    fn aborts_on_error(&self) -> bool {
        self.format == Format::Text
    }
}

/// Lets a door pick its framer at run time.
impl Framer for Box<dyn Framer> {
    fn content_type(&self) -> &'static str {
        (**self).content_type()
    }
    fn token(&mut self, token: &str) -> Bytes {
        (**self).token(token)
    }
    fn tool_calls(&mut self, calls: &Value) -> Option<Bytes> {
        (**self).tool_calls(calls)
    }
    fn serving(&mut self, model: &str) {
        (**self).serving(model)
    }
    fn done(&mut self, finish: &Finish) -> Bytes {
        (**self).done(finish)
    }
    fn error(&mut self, error: &ApiError) -> Bytes {
        (**self).error(error)
    }
    fn heartbeat(&self) -> Option<Bytes> {
        (**self).heartbeat()
    }
    fn aborts_on_error(&self) -> bool {
        (**self).aborts_on_error()
    }
}

/// The SSE comment every SSE format sends in silences.
pub const HEARTBEAT: &[u8] = b": keep-alive\n\n";
