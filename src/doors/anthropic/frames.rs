//! The Messages API's streaming events, each `event: TYPE` and a JSON object
//! with that `type`: `message_start`, `content_block_start` and a `ping` (the
//! opening, sent as the body's preamble), one `content_block_delta` with a
//! `text_delta` per token, then `content_block_stop`, `message_delta` (stop
//! reason and usage) and `message_stop`. A failure after the opening is
//! `event: error`. Silences are filled with `ping`s, as Anthropic does.
//!
//! The framer keeps no text: nothing after the opening repeats it.

use bytes::Bytes;
use serde::Serialize;

use super::error;
use super::objects::{self, Head};
use crate::error::ApiError;
use crate::generation::Finish;
use crate::pipeline::framer::Framer;

/// Frames one message's events.
pub struct MessageEvents {
    head: Head,
    /// Whether the opening went out: the model it names is then fixed.
    opened: bool,
}

const PING: &[u8] = b"event: ping\ndata: {\"type\":\"ping\"}\n\n";

impl MessageEvents {
    pub fn new(head: Head) -> MessageEvents {
        MessageEvents {
            head,
            opened: false,
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
struct Block<T> {
    index: u32,
    #[serde(flatten)]
    rest: T,
}

#[derive(Serialize)]
struct TextBlock {
    content_block: objects::Text<'static>,
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
        let content_block = objects::Text::new("");
        let block = Block {
            index: 0,
            rest: TextBlock { content_block },
        };
        event(&mut out, "content_block_start", block);
        out.extend_from_slice(PING);
        Some(Bytes::from(out))
    }

    /// `model` is in `message_start` only, so it can change only before it.
    fn serving(&mut self, model: &str) {
        if !self.opened {
            model.clone_into(&mut self.head.model);
        }
    }

    /// The hot path: one allocation, the outgoing frame, built in place.
    fn token(&mut self, token: &str) -> Bytes {
        const OPEN: &[u8] = b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":";
        const CLOSE: &[u8] = b"}}\n\n";
        let mut out = Vec::with_capacity(OPEN.len() + token.len() + 8 + CLOSE.len());
        out.extend_from_slice(OPEN);
        serde_json::to_writer(&mut out, token).expect("a string serialises");
        out.extend_from_slice(CLOSE);
        Bytes::from(out)
    }

    fn done(&mut self, finish: &Finish) -> Bytes {
        let mut out = Vec::new();
        event(
            &mut out,
            "content_block_stop",
            Block {
                index: 0,
                rest: Nothing {},
            },
        );
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
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::generation::Usage;
    use crate::pipeline::framer::named_events as events;

    #[test]
    fn a_stream_is_anthropics_event_sequence_with_the_stop_sequence_named() {
        let mut framer = MessageEvents::new(Head::new("mock", 7));
        framer.serving("claude");
        let finish = Finish {
            stop_sequence: Some("END".into()),
            ..Finish::new("stop", Usage::new(8, 2))
        };
        let frames = [
            framer.preamble().unwrap(),
            framer.token("Hi"),
            framer.heartbeat().unwrap(),
            framer.token(" \"there\""),
            framer.done(&finish),
        ];
        let got = events(&frames);
        let kinds: Vec<&str> = got.iter().map(|(kind, _)| kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "message_start",
                "content_block_start",
                "ping",
                "content_block_delta",
                "ping",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
            ]
        );
        for (kind, data) in &got {
            assert_eq!(data["type"], json!(kind));
        }
        let message = &got[0].1["message"];
        assert_eq!(message["model"], "claude");
        assert_eq!(
            message["usage"],
            json!({"input_tokens": 7, "output_tokens": 0})
        );
        assert_eq!(
            got[5].1["delta"],
            json!({"type": "text_delta", "text": " \"there\""})
        );
        assert_eq!(
            got[7].1,
            json!({"type": "message_delta",
                   "delta": {"stop_reason": "stop_sequence", "stop_sequence": "END"},
                   "usage": {"input_tokens": 8, "output_tokens": 2}})
        );
    }

    #[test]
    fn the_token_cap_is_max_tokens_and_a_failure_an_error_event() {
        let mut framer = MessageEvents::new(Head::new("mock", 1));
        let got = events(&[framer.done(&Finish::new("length", Usage::new(1, 1)))]);
        assert_eq!(got[1].1["delta"]["stop_reason"], "max_tokens");
        assert_eq!(got[1].1["delta"]["stop_sequence"], Value::Null);

        let err = ApiError::from(crate::generation::UpstreamError::Stream("boom".into()));
        let got = events(&[framer.error(&err)]);
        assert_eq!(got[0].0, "error");
        assert_eq!(got[0].1["type"], "error");
        assert_eq!(got[0].1["error"]["type"], "api_error");
    }
}
