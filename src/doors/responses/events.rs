//! The Responses API's event envelope, `{"type", "sequence_number", ...}`
//! after `event: TYPE`, and the fields that place an event in its output item
//! and part; the framer (`frames`) decides which events to write.

use serde::Serialize;

use super::objects::Item;

/// The next `sequence_number` of one stream.
#[derive(Default)]
pub struct Sequence(u64);

impl Sequence {
    pub fn take(&mut self) -> u64 {
        self.0 += 1;
        self.0 - 1
    }

    /// Appends one event: `kind`, the next sequence number, and `fields`.
    pub fn event(&mut self, out: &mut Vec<u8>, kind: &str, fields: impl Serialize) {
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

/// The fields that place an event in a message or reasoning item's one part.
#[derive(Serialize, Clone, Copy)]
pub struct PartFields<'a> {
    pub item_id: &'a str,
    pub output_index: usize,
    pub content_index: u32,
}

impl<'a> PartFields<'a> {
    pub fn of(item: &'a Item, output_index: usize) -> Self {
        PartFields {
            item_id: &item.id,
            output_index,
            content_index: 0,
        }
    }

    pub fn with<T>(self, rest: T) -> With<Self, T> {
        With { place: self, rest }
    }
}

/// The fields that place an event in a function call item.
#[derive(Serialize, Clone, Copy)]
pub struct CallFields<'a> {
    pub item_id: &'a str,
    pub output_index: usize,
}

impl<'a> CallFields<'a> {
    pub fn of(item: &'a Item, output_index: usize) -> Self {
        CallFields {
            item_id: &item.id,
            output_index,
        }
    }

    pub fn with<T>(self, rest: T) -> With<Self, T> {
        With { place: self, rest }
    }
}

#[derive(Serialize)]
pub struct With<P, T> {
    #[serde(flatten)]
    pub place: P,
    #[serde(flatten)]
    pub rest: T,
}

#[derive(Serialize)]
pub struct ItemFields<T> {
    pub output_index: usize,
    pub item: T,
}

#[derive(Serialize)]
pub struct ResponseFields<T> {
    pub response: T,
}

#[derive(Serialize)]
pub struct Part<T> {
    pub part: T,
}

#[derive(Serialize)]
pub struct TextDone<'a> {
    pub text: &'a str,
    pub logprobs: [(); 0],
}

#[derive(Serialize)]
pub struct ReasoningDone<'a> {
    pub text: &'a str,
}

#[derive(Serialize)]
pub struct Delta<'a> {
    pub delta: &'a str,
}

pub type ArgumentsDelta<'a> = Delta<'a>;

#[derive(Serialize)]
pub struct ArgumentsDone<'a> {
    pub name: &'a str,
    pub arguments: &'a str,
}
