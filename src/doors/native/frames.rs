//! The native door's wire formats: how one token event becomes bytes on the
//! client socket.
//!
//! Three formats carry the same generation:
//! - `Sse` (the default): `id:` + `data: {"token":...}` per token, then one
//!   `event: done` or `event: error` frame; `: keep-alive` comments in silences.
//! - `Ndjson`: one JSON object per line, tokens then `{"done":..}` or `{"error":..}`.
//! - `Text`: the bare token text, for a `curl -N` typewriter.
//!
//! Every front door writes a generation through a `Framer`; this is the
//! native door's, [`NativeFrames`].

use axum::http::header::ACCEPT;
use axum::http::HeaderMap;
use bytes::Bytes;
use serde_json::json;

use crate::error::ApiError;
use crate::generation::{Finish, Seam};
use crate::pipeline::framer::{Framer, HEARTBEAT};

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
    /// `GEN:` for the ids of a generation's frames, empty for bare indexes.
    id_prefix: String,
    next_id: u64,
}

impl NativeFrames {
    /// Frames with bare indexes for ids (`0`, `1`, ...).
    pub fn new(format: Format, model: String) -> NativeFrames {
        NativeFrames {
            format,
            model,
            id_prefix: String::new(),
            next_id: 0,
        }
    }

    /// The frames of generation `id` from index `first` on: ids `GEN:N`,
    /// the terminal frame's included (contract section 7).
    pub fn of_generation(format: Format, model: String, id: &str, first: u64) -> NativeFrames {
        NativeFrames {
            format,
            model,
            id_prefix: format!("{id}:"),
            next_id: first,
        }
    }

    /// An entry of the log with no native frame still takes its index.
    fn skip_index(&mut self) {
        if !self.id_prefix.is_empty() {
            self.next_id += 1;
        }
    }

    /// `id: GEN:N` and a newline, and the next index.
    fn id_line(&mut self, out: &mut Vec<u8>) {
        let id = self.next_id;
        self.next_id += 1;
        out.extend_from_slice(b"id: ");
        out.extend_from_slice(self.id_prefix.as_bytes());
        out.extend_from_slice(itoa::Buffer::new().format(id).as_bytes());
        out.push(b'\n');
    }

    /// A terminal SSE frame: its id (when the frames are a generation's),
    /// the event name and the data.
    fn terminal(&mut self, event: &str, data: &serde_json::Value) -> Bytes {
        let mut out = Vec::new();
        if !self.id_prefix.is_empty() {
            self.id_line(&mut out);
        }
        out.extend_from_slice(format!("event: {event}\ndata: {data}\n\n").as_bytes());
        Bytes::from(out)
    }
}

/// Every native SSE response opens with this: browsers reconnect after a
/// second (their default is three), with `Last-Event-ID` (section 7). No
/// blank line: it goes out in one block with the first frame (the relay's
/// `opened`), since some clients (`@microsoft/fetch-event-source`) dispatch
/// a block without data as an empty message (section 18).
const RETRY: &[u8] = b"retry: 1000\n";

impl Framer for NativeFrames {
    fn content_type(&self) -> &'static str {
        self.format.content_type()
    }

    fn preamble(&mut self) -> Option<Bytes> {
        match self.format {
            Format::Sse => Some(Bytes::from_static(RETRY)),
            Format::Ndjson | Format::Text => None,
        }
    }

    fn token(&mut self, token: &str) -> Bytes {
        // The hot path: one allocation, the outgoing frame, built in place.
        let mut out = Vec::with_capacity(token.len() + self.id_prefix.len() + 40);
        match self.format {
            Format::Sse => {
                self.id_line(&mut out);
                out.extend_from_slice(b"data: {\"token\":");
                serde_json::to_writer(&mut out, token).expect("a string serialises");
                out.extend_from_slice(b"}\n\n");
            }
            Format::Ndjson => {
                self.next_id += 1;
                out.extend_from_slice(b"{\"token\":");
                serde_json::to_writer(&mut out, token).expect("a string serialises");
                out.extend_from_slice(b"}\n");
            }
            Format::Text => {
                self.next_id += 1;
                out.extend_from_slice(token.as_bytes());
            }
        }
        Bytes::from(out)
    }

    /// `event: reasoning` with the same `{"token":..}` data and ids as a
    /// token, so an `EventSource` hears it only with a listener of its own;
    /// `{"reasoning":..}` lines in NDJSON; nothing in plain text, which is
    /// the answer alone.
    fn reasoning(&mut self, text: &str) -> Bytes {
        let mut out = Vec::with_capacity(text.len() + self.id_prefix.len() + 56);
        match self.format {
            Format::Sse => {
                self.id_line(&mut out);
                out.extend_from_slice(b"event: reasoning\ndata: {\"token\":");
                serde_json::to_writer(&mut out, text).expect("a string serialises");
                out.extend_from_slice(b"}\n\n");
            }
            Format::Ndjson => {
                self.next_id += 1;
                out.extend_from_slice(b"{\"reasoning\":");
                serde_json::to_writer(&mut out, text).expect("a string serialises");
                out.extend_from_slice(b"}\n");
            }
            Format::Text => self.next_id += 1,
        }
        Bytes::from(out)
    }

    /// Nothing: the native formats carry no tool calls. A generation's
    /// log holds them, so they take their index (ids stay the log's).
    fn tool_calls(&mut self, _calls: &serde_json::Value) -> Option<Bytes> {
        self.skip_index();
        None
    }

    /// A token frame cut short, with no id (a client must not resume from
    /// it), though it takes its index in a generation's log; nothing in plain
    /// text, which has no frames.
    fn malformed(&mut self) -> Bytes {
        self.skip_index();
        match self.format {
            Format::Sse => Bytes::from_static(b"data: {\"token\":\n\n"),
            Format::Ndjson => Bytes::from_static(b"{\"token\":\n"),
            Format::Text => Bytes::new(),
        }
    }

    /// `event: continued` with the seam as data and an id like every frame;
    /// a `{"continued":..}` line in NDJSON; nothing in plain text.
    fn continued(&mut self, seam: &Seam) -> Bytes {
        let data = json!(seam);
        match self.format {
            Format::Sse => {
                let mut out = Vec::new();
                self.id_line(&mut out);
                out.extend_from_slice(format!("event: continued\ndata: {data}\n\n").as_bytes());
                Bytes::from(out)
            }
            Format::Ndjson => {
                self.next_id += 1;
                Bytes::from(format!("{}\n", json!({ "continued": data })))
            }
            Format::Text => {
                self.next_id += 1;
                Bytes::new()
            }
        }
    }

    /// Nothing, as for tool calls.
    fn signature(&mut self, _signature: &str) -> Option<Bytes> {
        self.skip_index();
        None
    }

    /// An error frame that is not one of the generation's (a watcher that
    /// fell behind the log): no `id:` line, and no index taken.
    fn outside_error(&mut self, error: &ApiError) -> Bytes {
        let prefix = std::mem::take(&mut self.id_prefix);
        let frame = self.error(error);
        self.id_prefix = prefix;
        frame
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
            Format::Sse => self.terminal("done", &done),
            Format::Ndjson => Bytes::from(format!("{}\n", json!({ "done": done }))),
            Format::Text => Bytes::new(),
        }
    }

    fn error(&mut self, error: &ApiError) -> Bytes {
        let body = error.body();
        match self.format {
            Format::Sse => self.terminal("error", &body),
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
