//! What a front door gives the relay: how one token event becomes bytes.
//!
//! Framers only build bytes; when they are written is the relay's business.

use bytes::Bytes;
use serde_json::Value;

use crate::error::ApiError;
use crate::generation::{ChunkDelta, Finish, Seam};

/// How one front door turns a generation's events into bytes.
pub trait Framer: Send + 'static {
    /// SSE, unless the format is another.
    fn content_type(&self) -> &'static str {
        "text/event-stream"
    }
    /// What the body opens with, sent with its first frame (the native
    /// door's `retry:` line; the Responses and Messages doors' opening
    /// events). Asked once, when the body starts.
    fn preamble(&mut self) -> Option<Bytes> {
        None
    }
    /// One token's frame.
    fn token(&mut self, token: &str) -> Bytes;
    /// A piece of reasoning, apart from the answer (section 11); every door
    /// has a way to carry it.
    fn reasoning(&mut self, text: &str) -> Bytes;
    /// The signature of a thinking block; `None` where the format has none.
    fn signature(&mut self, _signature: &str) -> Option<Bytes> {
        None
    }
    /// An OpenAI `tool_calls` delta; `None` where the format cannot carry one.
    fn tool_calls(&mut self, _calls: &Value) -> Option<Bytes> {
        None
    }
    /// A chunk with several parts: by default its reasoning, its content and
    /// its tool calls, each framed as on its own (the OpenAI door relays the
    /// chunk whole instead).
    fn delta(&mut self, delta: &ChunkDelta) -> Option<Bytes> {
        let parts = [
            delta.reasoning().map(|text| self.reasoning(text)),
            delta.content().map(|text| self.token(text)),
            delta.tool_calls().and_then(|calls| self.tool_calls(calls)),
        ];
        let mut out = Vec::new();
        for part in parts.into_iter().flatten() {
            out.extend_from_slice(&part);
        }
        (!out.is_empty()).then(|| Bytes::from(out))
    }
    /// The model actually serving (a fallback, perhaps); told before the
    /// first frame.
    fn serving(&mut self, _model: &str) {}
    /// The terminal frame(s) of a generation that finished; may be empty.
    fn done(&mut self, finish: &Finish) -> Bytes;
    /// The terminal frame of a generation that failed after the response began.
    fn error(&mut self, error: &ApiError) -> Bytes;
    /// An error frame that is not one of the generation's own (a watcher
    /// that fell behind the log); the native door gives it no id.
    fn outside_error(&mut self, error: &ApiError) -> Bytes {
        self.error(error)
    }
    /// A frame that is not valid JSON in this format (the mock's
    /// `malformed` fault): by default an SSE `data:` line cut short.
    fn malformed(&mut self) -> Bytes {
        Bytes::from_static(b"data: {\"malformed\n\n")
    }
    /// Where a continuation joins the answer (section 17): by default an
    /// SSE comment, `: continued after N tokens (REASON)`, which clients
    /// skip and a person reading the stream sees.
    fn continued(&mut self, seam: &Seam) -> Bytes {
        Bytes::from(format!(
            ": continued after {} tokens ({})\n\n",
            seam.after_tokens, seam.reason
        ))
    }
    /// A frame that keeps an idle connection alive, where the format has one.
    fn heartbeat(&self) -> Option<Bytes> {
        Some(Bytes::from_static(HEARTBEAT))
    }
    /// True when the format has no error frame a program can recognise, so a
    /// failure must also abort the response.
    fn aborts_on_error(&self) -> bool {
        false
    }
}

/// The SSE comment every SSE format sends in silences.
pub const HEARTBEAT: &[u8] = b": keep-alive\n\n";

/// For framers' unit tests: frames of named events, as (name, data as JSON).
#[cfg(test)]
pub fn named_events(frames: &[Bytes]) -> Vec<(String, serde_json::Value)> {
    let text: String = frames
        .iter()
        .map(|f| String::from_utf8(f.to_vec()).expect("frames are UTF-8"))
        .collect();
    text.split_terminator("\n\n")
        .map(|frame| {
            let (event, data) = frame.split_once('\n').expect("an event line, then data");
            let event = event.strip_prefix("event: ").expect("a named event");
            let data = data.strip_prefix("data: ").expect("one data line");
            (
                event.to_owned(),
                serde_json::from_str(data).expect("JSON data"),
            )
        })
        .collect()
}
