//! The Responses API's streaming events: every frame is `event: TYPE` and a
//! JSON object with that `type` and a `sequence_number` counting from 0.
//!
//! The order is the one the official SDKs' stream helpers check (the Python
//! `ResponseStreamManager` raises on an event out of place):
//! `response.created` and `response.in_progress` (the opening, sent as the
//! body's preamble); then output items, each announced by
//! `response.output_item.added` when its first piece comes and closed by
//! `response.output_item.done`. The answer is a `message` item
//! (`response.content_part.added`, one `response.output_text.delta` per
//! token, `response.output_text.done`, `response.content_part.done`);
//! reasoning is a `reasoning` item the same way with `reasoning_text`; each
//! tool call is a `function_call` item with
//! `response.function_call_arguments.delta`s and `.done`. Switching between
//! reasoning and answer closes the open one. The end is `response.completed`
//! (or `response.incomplete` on the token cap) with every item; a failure
//! after the opening is `response.failed`. There is no `[DONE]`.
//!
//! The closing events repeat each item's whole text, so the framer keeps
//! it: as long as the answer, which `max_output_tokens` and `total_ms` bound.

use bytes::Bytes;
use serde_json::Value;

use super::events::{
    ArgumentsDelta, ArgumentsDone, CallFields, Delta, ItemFields, Part, PartFields, ReasoningDone,
    ResponseFields, Sequence, TextDone,
};
use super::objects::{Head, Item, ItemKind, Outcome, OutputText, ReasoningText};
use crate::error::ApiError;
use crate::generation::{call_index, Finish};
use crate::pipeline::framer::Framer;

/// Frames one response's events.
pub struct ResponseEvents {
    head: Head,
    sequence: Sequence,
    /// Whether the opening went out: the model it names is then fixed.
    opened: bool,
    /// Every output item so far, in `output_index` order.
    items: Vec<Item>,
    /// The open reasoning or message item, where the next piece of that
    /// kind goes.
    open: Option<usize>,
    /// Tool-call index -> item index.
    calls: Vec<(usize, usize)>,
    /// `,"item_id":..,"output_index":N,"content_index":0,"delta":` of the open
    /// message item, built once for the per-token event.
    delta_fields: String,
    /// What the item ids derive from (a background response's generation
    /// id), so every view of it names its items alike; `None`: fresh ids.
    seed: Option<String>,
}

const DELTA: &str = "response.output_text.delta";

impl ResponseEvents {
    pub fn new(head: Head) -> ResponseEvents {
        ResponseEvents {
            head,
            sequence: Sequence::default(),
            opened: false,
            items: Vec::new(),
            open: None,
            calls: Vec::new(),
            delta_fields: String::new(),
            seed: None,
        }
    }

    /// The events of a response that is a generation's (background mode):
    /// item ids derive from `seed`, the same in every view.
    pub fn seeded(head: Head, seed: String) -> ResponseEvents {
        ResponseEvents {
            seed: Some(seed),
            ..ResponseEvents::new(head)
        }
    }

    fn new_item(&self, kind: ItemKind) -> Item {
        Item::seeded(kind, self.seed.as_deref(), self.items.len())
    }

    /// The open item of `kind`, opening it (and closing another) if needed.
    fn item_of(&mut self, out: &mut Vec<u8>, kind: ItemKind) -> usize {
        if let Some(open) = self.open {
            if self.items[open].kind == kind {
                return open;
            }
            self.close(out, open, "completed");
        }
        let item = self.new_item(kind);
        let index = self.add(out, item);
        let item = &self.items[index];
        let fields = PartFields::of(item, index);
        match item.kind {
            ItemKind::Message => {
                self.delta_fields = format!(
                    r#","item_id":{},"output_index":{index},"content_index":0,"delta":"#,
                    Value::from(item.id.as_str())
                );
                let part = fields.with(Part {
                    part: OutputText::new(""),
                });
                self.sequence
                    .event(out, "response.content_part.added", part);
            }
            ItemKind::Reasoning => {
                let part = fields.with(Part {
                    part: ReasoningText::new(""),
                });
                self.sequence
                    .event(out, "response.content_part.added", part);
            }
            ItemKind::FunctionCall { .. } => {}
        }
        self.open = Some(index);
        index
    }

    /// Announces a new item; returns its index.
    fn add(&mut self, out: &mut Vec<u8>, item: Item) -> usize {
        let index = self.items.len();
        let added = ItemFields {
            output_index: index,
            item: item.announced(),
        };
        self.sequence
            .event(out, "response.output_item.added", added);
        self.items.push(item);
        index
    }

    /// Closes item `index` with its `.done` events, in `status`.
    fn close(&mut self, out: &mut Vec<u8>, index: usize, status: &'static str) {
        if self.open == Some(index) {
            self.open = None;
        }
        self.items[index].status = status;
        let item = &self.items[index];
        let fields = PartFields::of(item, index);
        let text = item.text.as_str();
        match &item.kind {
            ItemKind::Message => {
                let done = fields.with(TextDone { text, logprobs: [] });
                self.sequence.event(out, "response.output_text.done", done);
                let part = fields.with(Part {
                    part: OutputText::new(text),
                });
                self.sequence.event(out, "response.content_part.done", part);
            }
            ItemKind::Reasoning => {
                let done = fields.with(ReasoningDone { text });
                self.sequence
                    .event(out, "response.reasoning_text.done", done);
                let part = fields.with(Part {
                    part: ReasoningText::new(text),
                });
                self.sequence.event(out, "response.content_part.done", part);
            }
            ItemKind::FunctionCall { name, .. } => {
                let done = CallFields::of(item, index).with(ArgumentsDone {
                    name,
                    arguments: text,
                });
                self.sequence
                    .event(out, "response.function_call_arguments.done", done);
            }
        }
        let done = ItemFields {
            output_index: index,
            item,
        };
        self.sequence.event(out, "response.output_item.done", done);
    }

    /// Closes every open item, in order, in `status`.
    fn close_all(&mut self, out: &mut Vec<u8>, status: &'static str) {
        for index in 0..self.items.len() {
            if self.items[index].status == "in_progress" {
                self.close(out, index, status);
            }
        }
    }

    /// One tool-call delta: a new call opens its item, argument pieces go to it.
    fn call_delta(&mut self, out: &mut Vec<u8>, delta: &Value) {
        let Some(call) = call_index(delta) else {
            return;
        };
        let function = &delta["function"];
        let index = match self.calls.iter().find(|(c, _)| *c == call) {
            Some(&(_, index)) => index,
            None => {
                if let Some(open) = self.open {
                    self.close(out, open, "completed");
                }
                let text = |v: &Value| v.as_str().map(str::to_owned);
                let kind = ItemKind::FunctionCall {
                    call_id: text(&delta["id"]).unwrap_or_else(|| super::objects::new_id("call")),
                    name: text(&function["name"]).unwrap_or_default(),
                };
                let item = self.new_item(kind);
                let index = self.add(out, item);
                self.calls.push((call, index));
                index
            }
        };
        let piece = function["arguments"].as_str().unwrap_or("");
        if piece.is_empty() || self.items[index].status != "in_progress" {
            return;
        }
        self.items[index].text.push_str(piece);
        let fields =
            CallFields::of(&self.items[index], index).with(ArgumentsDelta { delta: piece });
        self.sequence
            .event(out, "response.function_call_arguments.delta", fields);
    }
}

impl Framer for ResponseEvents {
    fn preamble(&mut self) -> Option<Bytes> {
        self.opened = true;
        let mut out = Vec::new();
        let response = self.head.response(Outcome::InProgress, &[]);
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
        Some(Bytes::from(out))
    }

    /// `model` is the same in every event, so it can change only before the opening.
    fn serving(&mut self, model: &str) {
        if !self.opened {
            model.clone_into(&mut self.head.model);
        }
    }

    /// The hot path: once the message item is open, one allocation, the
    /// outgoing frame, built in place.
    fn token(&mut self, token: &str) -> Bytes {
        let mut out = Vec::new();
        let index = self.item_of(&mut out, ItemKind::Message);
        self.items[index].text.push_str(token);
        let sequence = self.sequence.take();
        out.reserve(2 * DELTA.len() + self.delta_fields.len() + token.len() + 80);
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

    /// `response.reasoning_text.delta` in a reasoning item.
    fn reasoning(&mut self, text: &str) -> Bytes {
        let mut out = Vec::new();
        let index = self.item_of(&mut out, ItemKind::Reasoning);
        self.items[index].text.push_str(text);
        let fields = PartFields::of(&self.items[index], index).with(Delta { delta: text });
        self.sequence
            .event(&mut out, "response.reasoning_text.delta", fields);
        Bytes::from(out)
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
        if self.items.is_empty() {
            // An empty answer is still a message.
            self.item_of(&mut out, ItemKind::Message);
        }
        let (status, _) = super::objects::status_of(finish);
        self.close_all(&mut out, status);
        let response = self.head.response(Outcome::Finished(finish), &self.items);
        let kind = match response.status {
            "completed" => "response.completed",
            _ => "response.incomplete",
        };
        self.sequence
            .event(&mut out, kind, ResponseFields { response });
        Bytes::from(out)
    }

    /// A text delta event whose data is cut short.
    fn malformed(&mut self) -> Bytes {
        Bytes::from_static(
            b"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\n\n",
        )
    }

    fn error(&mut self, error: &ApiError) -> Bytes {
        let mut out = Vec::new();
        for item in &mut self.items {
            if item.status == "in_progress" {
                item.status = "incomplete";
            }
        }
        let response = self.head.response(Outcome::Failed(error), &self.items);
        self.sequence
            .event(&mut out, "response.failed", ResponseFields { response });
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests;
