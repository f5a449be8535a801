//! The native door's wire formats: how one token event becomes bytes on the
//! client socket.
//!
//! Three formats carry the same generation:
//! - `Sse` (the default): `id:` + `data: {"token":...}` per token, then one
//!   `event: done` or `event: error` frame; `: keep-alive` comments in silences.
//! - `Ndjson`: one JSON object per line, tokens then `{"done":..}` or `{"error":..}`.
//! - `Text`: the bare token text, for a `curl -N` typewriter.
//!
//! Encoders only build bytes; when they are written is the relay's business.

use axum::http::header::ACCEPT;
use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::json;

use crate::error::ApiError;
use crate::generation::Finish;

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

    /// A token frame. `id` is the token's position in the generation.
    pub fn token(self, id: u64, token: &str) -> Bytes {
        match self {
            Format::Sse => {
                let data = json!({ "token": token });
                Bytes::from(format!("id: {id}\ndata: {data}\n\n"))
            }
            Format::Ndjson => Bytes::from(format!("{}\n", json!({ "token": token }))),
            Format::Text => Bytes::copy_from_slice(token.as_bytes()),
        }
    }

    /// The terminal frame of a generation that finished.
    pub fn done(self, finish: &Finish, model: &str) -> Bytes {
        let done = json!({
            "finish_reason": finish.finish_reason,
            "model": model,
            "usage": finish.usage,
        });
        match self {
            Format::Sse => Bytes::from(format!("event: done\ndata: {done}\n\n")),
            Format::Ndjson => Bytes::from(format!("{}\n", json!({ "done": done }))),
            Format::Text => Bytes::new(),
        }
    }

    /// The terminal frame of a generation that failed after the response began.
    pub fn error(self, error: &ApiError) -> Bytes {
        let body = error.body();
        match self {
            Format::Sse => Bytes::from(format!("event: error\ndata: {body}\n\n")),
            Format::Ndjson => Bytes::from(format!("{body}\n")),
            // Plain text has no frames: the message is printed for the person
            // at the terminal, and the relay then aborts the response so that
            // programs see a failed transfer, not a complete text.
            Format::Text => Bytes::from(format!("\n[sluice error] {error}\n")),
        }
    }

    /// A frame that keeps an idle connection alive, where the format has one.
    /// NDJSON and plain text have no comment syntax, so they get none.
    pub fn heartbeat(self) -> Option<Bytes> {
        match self {
            Format::Sse => Some(Bytes::from_static(b": keep-alive\n\n")),
            Format::Ndjson | Format::Text => None,
        }
    }
}
