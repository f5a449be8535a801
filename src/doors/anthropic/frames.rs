//! The Messages API's streaming events, each `event: TYPE` and a JSON object
//! with that `type`: `message_start` (the opening, sent as the body's
//! preamble); then content blocks, each opened by `content_block_start`
//! when its first piece comes and closed by `content_block_stop`: a `text`
//! block with one `text_delta` per token, a `thinking` block with
//! `thinking_delta`s (and a `signature_delta`), a `tool_use` block per tool
//! call with `input_json_delta`s. A `ping` follows the first block's start,
//! as Anthropic sends it, and fills silences. The end is `message_delta`
//! (stop reason and usage) and `message_stop`; a failure after the opening
//! is `event: error`.
//!
//! Blocks cannot interleave, so a piece of another kind closes the open
//! block. Tool calls stream one after another in practice; an argument
//! piece for a call whose block has closed cannot be placed and is dropped.
//!
//! The framer keeps no text: nothing after a block repeats it.

use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};

use super::error;
use super::objects::{self, Block, Head};
use crate::error::ApiError;
use crate::generation::{call_index, Finish};
use crate::pipeline::framer::Framer;

/// Frames one message's events.
pub struct MessageEvents {
    head: Head,
    /// Whether the opening went out: the model it names is then fixed.
    opened: bool,
    /// The open block, if any, and the index the next block takes.
    open: Option<Open>,
    next_index: u32,
    /// Tool-call indexes that have had their block.
    calls: Vec<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Open {
    Text,
    Thinking,
    ToolUse { call: usize },
}

const PING: &[u8] = b"event: ping\ndata: {\"type\":\"ping\"}\n\n";

impl MessageEvents {
    pub fn new(head: Head) -> MessageEvents {
        MessageEvents {
            head,
            opened: false,
            open: None,
            next_index: 0,
            calls: Vec::new(),
        }
    }

    /// The index of the open block, after opening `block` (and closing
    /// another) if `want` is not the one open.
    fn block(&mut self, out: &mut Vec<u8>, want: Open, block: Block<'_>) -> u32 {
        if self.open == Some(want) {
            return self.next_index - 1;
        }
        self.close(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some(want);
        let start = Indexed {
            index,
            rest: StartFields {
                content_block: block,
            },
        };
        event(out, "content_block_start", start);
        if index == 0 {
            out.extend_from_slice(PING);
        }
        index
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        if self.open.take().is_some() {
            let index = self.next_index - 1;
            event(
                out,
                "content_block_stop",
                Indexed {
                    index,
                    rest: Nothing {},
                },
            );
        }
    }

    fn delta(out: &mut Vec<u8>, index: u32, delta: DeltaBody<'_>) {
        event(
            out,
            "content_block_delta",
            Indexed {
                index,
                rest: DeltaFields { delta },
            },
        );
    }

    /// One tool-call delta: a new call opens its `tool_use` block, argument
    /// pieces become `input_json_delta`s.
    fn call_delta(&mut self, out: &mut Vec<u8>, delta: &Value) {
        let Some(call) = call_index(delta) else {
            return;
        };
        let want = Open::ToolUse { call };
        if self.open != Some(want) {
            if self.calls.contains(&call) {
                tracing::debug!(
                    call,
                    "a tool call's piece came after its block closed; dropped"
                );
                return;
            }
            self.calls.push(call);
            let function = &delta["function"];
            let block = Block::ToolUse {
                id: super::objects::tool_use_id(delta["id"].as_str().unwrap_or("")),
                name: function["name"].as_str().unwrap_or(""),
                input: Value::Object(Map::new()),
            };
            self.block(out, want, block);
        }
        let index = self.next_index - 1;
        if let Some(piece) = delta["function"]["arguments"]
            .as_str()
            .filter(|p| !p.is_empty())
        {
            Self::delta(
                out,
                index,
                DeltaBody::InputJson {
                    partial_json: piece,
                },
            );
        }
    }
}

/// Appends one event: `event: KIND`, and data with `"type": KIND` first, as
/// Anthropic writes it.
fn event(out: &mut Vec<u8>, kind: &str, fields: impl Serialize) {
    #[derive(Serialize)]
    struct Event<'a, T> {
        #[serde(rename = "type")]
        kind: &'a str,
        #[serde(flatten)]
        fields: T,
    }
    out.extend_from_slice(b"event: ");
    out.extend_from_slice(kind.as_bytes());
    out.extend_from_slice(b"\ndata: ");
    serde_json::to_writer(&mut *out, &Event { kind, fields }).expect("an event serialises");
    out.extend_from_slice(b"\n\n");
}

#[derive(Serialize)]
struct Start<'a> {
    message: objects::MessageObject<'a>,
}

/// The fields of `content_block_*` events: the block's index, and more.
#[derive(Serialize)]
struct Indexed<T> {
    index: u32,
    #[serde(flatten)]
    rest: T,
}

#[derive(Serialize)]
struct StartFields<'a> {
    content_block: Block<'a>,
}

#[derive(Serialize)]
struct DeltaFields<'a> {
    delta: DeltaBody<'a>,
}

/// A `content_block_delta`'s delta, named by Anthropic's `type`s.
#[derive(Serialize)]
#[serde(tag = "type")]
enum DeltaBody<'a> {
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: &'a str },
    #[serde(rename = "signature_delta")]
    Signature { signature: &'a str },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: &'a str },
}

#[derive(Serialize)]
struct Nothing {}

#[derive(Serialize)]
struct MessageDelta<'a> {
    delta: StopDelta<'a>,
    usage: objects::MessageUsage,
}

#[derive(Serialize)]
struct StopDelta<'a> {
    stop_reason: &'static str,
    stop_sequence: Option<&'a str>,
}

impl Framer for MessageEvents {
    fn preamble(&mut self) -> Option<Bytes> {
        self.opened = true;
        let mut out = Vec::new();
        let message = self.head.started();
        event(&mut out, "message_start", Start { message });
        Some(Bytes::from(out))
    }

    /// `model` is in `message_start` only, so it can change only before it.
    fn serving(&mut self, model: &str) {
        if !self.opened {
            model.clone_into(&mut self.head.model);
        }
    }

    /// The hot path: once the text block is open, one allocation, the
    /// outgoing frame, built in place.
    fn token(&mut self, token: &str) -> Bytes {
        const OPEN: &[u8] =
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":";
        const DELTA: &[u8] = b",\"delta\":{\"type\":\"text_delta\",\"text\":";
        const CLOSE: &[u8] = b"}}\n\n";
        let mut out = Vec::new();
        let index = self.block(&mut out, Open::Text, Block::Text { text: "" });
        out.reserve(OPEN.len() + DELTA.len() + token.len() + 16 + CLOSE.len());
        out.extend_from_slice(OPEN);
        out.extend_from_slice(itoa::Buffer::new().format(index).as_bytes());
        out.extend_from_slice(DELTA);
        serde_json::to_writer(&mut out, token).expect("a string serialises");
        out.extend_from_slice(CLOSE);
        Bytes::from(out)
    }

    /// A `thinking_delta` in a `thinking` block.
    fn reasoning(&mut self, text: &str) -> Bytes {
        let mut out = Vec::new();
        let block = Block::Thinking {
            thinking: "",
            signature: "",
        };
        let index = self.block(&mut out, Open::Thinking, block);
        Self::delta(&mut out, index, DeltaBody::Thinking { thinking: text });
        Bytes::from(out)
    }

    /// A `signature_delta`, which belongs to the open thinking block.
    fn signature(&mut self, signature: &str) -> Option<Bytes> {
        if self.open != Some(Open::Thinking) {
            return None;
        }
        let mut out = Vec::new();
        let index = self.next_index - 1;
        Self::delta(&mut out, index, DeltaBody::Signature { signature });
        Some(Bytes::from(out))
    }

    fn tool_calls(&mut self, calls: &Value) -> Option<Bytes> {
        let mut out = Vec::new();
        for delta in calls.as_array().into_iter().flatten() {
            self.call_delta(&mut out, delta);
        }
        (!out.is_empty()).then(|| Bytes::from(out))
    }

    fn done(&mut self, finish: &Finish) -> Bytes {
        let mut out = Vec::new();
        if self.next_index == 0 {
            // An empty answer still has its text block.
            self.block(&mut out, Open::Text, Block::Text { text: "" });
        }
        self.close(&mut out);
        let delta = MessageDelta {
            delta: StopDelta {
                stop_reason: objects::stop_reason(finish),
                stop_sequence: finish.stop_sequence.as_deref(),
            },
            usage: objects::MessageUsage::from(finish.usage),
        };
        event(&mut out, "message_delta", delta);
        event(&mut out, "message_stop", Nothing {});
        Bytes::from(out)
    }

    fn error(&mut self, err: &ApiError) -> Bytes {
        let mut out = Vec::new();
        event(&mut out, "error", error::Body::of(err));
        Bytes::from(out)
    }

    fn heartbeat(&self) -> Option<Bytes> {
        Some(Bytes::from_static(PING))
    }

    /// A `content_block_delta` event whose data is cut short.
    fn malformed(&mut self) -> Bytes {
        Bytes::from_static(
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":\n\n",
        )
    }
}

#[cfg(test)]
mod tests;
