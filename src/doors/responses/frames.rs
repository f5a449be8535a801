//! The Responses API's streaming events: every frame is `event: TYPE` and a
//! JSON object with that `type` and a `sequence_number` counting from 0.
//!
//! The order is the one the official SDKs' stream helpers check (the Python
//! `ResponseStreamManager` raises on an event out of place):
//! `response.created`, `response.in_progress`, `response.output_item.added`,
//! `response.content_part.added` (the opening, sent as the body's preamble),
//! one `response.output_text.delta` per token, then `response.output_text.done`,
//! `response.content_part.done`, `response.output_item.done` and
//! `response.completed` (or `response.incomplete` on the token cap). A failure
//! after the opening is `response.failed`. There is no `[DONE]`.
//!
//! The closing events repeat the whole text, so the framer keeps it: as long
//! as the answer, which `max_output_tokens` and `total_ms` bound.

use bytes::Bytes;
use serde::Serialize;

use super::objects::{Head, OutputText, State};
use crate::error::ApiError;
use crate::generation::Finish;
use crate::pipeline::framer::Framer;

/// Frames one response's events.
pub struct ResponseEvents {
    head: Head,
    sequence: Sequence,
    text: String,
    /// Whether the opening went out: the model it names is then fixed.
    opened: bool,
    /// `,"item_id":..,"output_index":0,"content_index":0,"delta":`, built once
    /// for the per-token event.
    delta_fields: String,
}

const DELTA: &str = "response.output_text.delta";

impl ResponseEvents {
    pub fn new(head: Head) -> ResponseEvents {
        let delta_fields = format!(
            r#","item_id":{},"output_index":0,"content_index":0,"delta":"#,
            serde_json::Value::from(head.item_id.as_str())
        );
        ResponseEvents {
            head,
            sequence: Sequence::default(),
            text: String::new(),
            opened: false,
            delta_fields,
        }
    }
}

/// The next `sequence_number` of one stream.
#[derive(Default)]
struct Sequence(u64);

impl Sequence {
    fn take(&mut self) -> u64 {
        self.0 += 1;
        self.0 - 1
    }

    /// Appends one event: `kind`, the next sequence number, and `fields`.
    fn event(&mut self, out: &mut Vec<u8>, kind: &str, fields: impl Serialize) {
        #[derive(Serialize)]
        struct Event<'a, T> {
            #[serde(rename = "type")]
            kind: &'a str,
            sequence_number: u64,
            #[serde(flatten)]
            fields: T,
        }
        let event = Event {
            kind,
            sequence_number: self.take(),
            fields,
        };
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\ndata: ");
        serde_json::to_writer(&mut *out, &event).expect("an event serialises");
        out.extend_from_slice(b"\n\n");
    }
}

/// The fields of the events about the one text part.
#[derive(Serialize)]
struct PartFields<'a, T> {
    item_id: &'a str,
    output_index: u32,
    content_index: u32,
    #[serde(flatten)]
    rest: T,
}

#[derive(Serialize)]
struct ItemFields<T> {
    output_index: u32,
    item: T,
}

#[derive(Serialize)]
struct ResponseFields<T> {
    response: T,
}

#[derive(Serialize)]
struct Part<T> {
    part: T,
}

#[derive(Serialize)]
struct TextDone<'a> {
    text: &'a str,
    logprobs: [(); 0],
}

impl Framer for ResponseEvents {
    fn preamble(&mut self) -> Option<Bytes> {
        self.opened = true;
        let mut out = Vec::new();
        let head = &self.head;
        let response = head.response(State::InProgress);
        self.sequence.event(
            &mut out,
            "response.created",
            ResponseFields {
                response: &response,
            },
        );
        self.sequence.event(
            &mut out,
            "response.in_progress",
            ResponseFields {
                response: &response,
            },
        );
        let item = ItemFields {
            output_index: 0,
            item: head.empty_message(),
        };
        self.sequence
            .event(&mut out, "response.output_item.added", item);
        let part = part_fields(
            head,
            Part {
                part: OutputText::new(""),
            },
        );
        self.sequence
            .event(&mut out, "response.content_part.added", part);
        Some(Bytes::from(out))
    }

    /// `model` is the same in every event, so it can change only before the opening.
    fn serving(&mut self, model: &str) {
        if !self.opened {
            model.clone_into(&mut self.head.model);
        }
    }

    /// The hot path: one allocation, the outgoing frame, built in place.
    fn token(&mut self, token: &str) -> Bytes {
        self.text.push_str(token);
        let sequence = self.sequence.take();
        let mut out =
            Vec::with_capacity(2 * DELTA.len() + self.delta_fields.len() + token.len() + 80);
        out.extend_from_slice(b"event: ");
        out.extend_from_slice(DELTA.as_bytes());
        out.extend_from_slice(b"\ndata: {\"type\":\"");
        out.extend_from_slice(DELTA.as_bytes());
        out.extend_from_slice(b"\",\"sequence_number\":");
        out.extend_from_slice(itoa::Buffer::new().format(sequence).as_bytes());
        out.extend_from_slice(self.delta_fields.as_bytes());
        serde_json::to_writer(&mut out, token).expect("a string serialises");
        out.extend_from_slice(b",\"logprobs\":[]}\n\n");
        Bytes::from(out)
    }

    fn done(&mut self, finish: &Finish) -> Bytes {
        let mut out = Vec::new();
        let head = &self.head;
        let text = std::mem::take(&mut self.text);
        let response = head.response(State::Finished {
            finish,
            text: &text,
        });
        let item_status = match response.status {
            "completed" => "completed",
            _ => "incomplete",
        };
        let done = part_fields(
            head,
            TextDone {
                text: &text,
                logprobs: [],
            },
        );
        self.sequence
            .event(&mut out, "response.output_text.done", done);
        let part = part_fields(
            head,
            Part {
                part: OutputText::new(&text),
            },
        );
        self.sequence
            .event(&mut out, "response.content_part.done", part);
        let item = ItemFields {
            output_index: 0,
            item: head.message(item_status, &text),
        };
        self.sequence
            .event(&mut out, "response.output_item.done", item);
        let kind = match response.status {
            "completed" => "response.completed",
            _ => "response.incomplete",
        };
        self.sequence
            .event(&mut out, kind, ResponseFields { response });
        Bytes::from(out)
    }

    fn error(&mut self, error: &ApiError) -> Bytes {
        let mut out = Vec::new();
        let head = &self.head;
        let text = std::mem::take(&mut self.text);
        let response = head.response(State::Failed { error, text: &text });
        self.sequence
            .event(&mut out, "response.failed", ResponseFields { response });
        Bytes::from(out)
    }
}

fn part_fields<T>(head: &Head, rest: T) -> PartFields<'_, T> {
    PartFields {
        item_id: &head.item_id,
        output_index: 0,
        content_index: 0,
        rest,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::doors::responses::request::Echo;
    use crate::generation::Usage;
    use crate::pipeline::framer::named_events as events;

    #[test]
    fn a_stream_is_the_sequence_the_sdks_check_numbered_from_zero() {
        let mut framer = ResponseEvents::new(Head::new("mock", Echo::default()));
        framer.serving("mock-fallback");
        let frames = [
            framer.preamble().unwrap(),
            framer.token("Hel"),
            framer.token("lo \"you\""),
            framer.done(&Finish::new("stop", Usage::new(3, 2))),
        ];
        let got = events(&frames);
        let kinds: Vec<&str> = got.iter().map(|(kind, _)| kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                DELTA,
                DELTA,
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        for (n, (kind, data)) in got.iter().enumerate() {
            assert_eq!(data["type"], json!(kind));
            assert_eq!(data["sequence_number"], json!(n));
        }
        let delta = &got[5].1;
        assert_eq!(delta["delta"], "lo \"you\"");
        assert_eq!(delta["item_id"], got[2].1["item"]["id"]);
        let completed = &got[9].1["response"];
        assert_eq!(completed["status"], "completed");
        assert_eq!(completed["model"], "mock-fallback");
        assert_eq!(
            completed["output"][0]["content"][0]["text"],
            "Hello \"you\""
        );
        assert_eq!(
            completed["usage"],
            json!({"input_tokens": 3, "input_tokens_details": {"cached_tokens": 0},
                   "output_tokens": 2, "output_tokens_details": {"reasoning_tokens": 0},
                   "total_tokens": 5})
        );
        assert_eq!(got[6].1["text"], "Hello \"you\"");
    }

    #[test]
    fn the_token_cap_is_incomplete_and_a_failure_is_failed() {
        let mut framer = ResponseEvents::new(Head::new("mock", Echo::default()));
        let frames = [
            framer.preamble().unwrap(),
            framer.token("a"),
            framer.done(&Finish::new("length", Usage::new(1, 1))),
        ];
        let got = events(&frames);
        let (kind, last) = got.last().unwrap();
        assert_eq!(kind, "response.incomplete");
        assert_eq!(last["response"]["status"], "incomplete");
        assert_eq!(
            last["response"]["incomplete_details"]["reason"],
            "max_output_tokens"
        );
        assert_eq!(got[got.len() - 2].1["item"]["status"], "incomplete");

        let mut framer = ResponseEvents::new(Head::new("mock", Echo::default()));
        let err = ApiError::new(crate::error::ErrorKind::IdleTimeout, "no token for 5 s");
        let frames = [
            framer.preamble().unwrap(),
            framer.token("a"),
            framer.error(&err),
        ];
        let got = events(&frames);
        let (kind, last) = got.last().unwrap();
        assert_eq!(kind, "response.failed");
        assert_eq!(last["sequence_number"], 5);
        assert_eq!(last["response"]["status"], "failed");
        assert_eq!(
            last["response"]["error"],
            json!({"code": "idle_timeout", "message": "no token for 5 s"})
        );
        assert_eq!(last["response"]["output"][0]["content"][0]["text"], "a");
    }
}
