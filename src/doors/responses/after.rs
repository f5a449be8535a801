//! A response's events after a `sequence_number` (`GET
//! /v1/responses/ID?stream=true&starting_after=N`): the response's own
//! framer replays its generation's log from the start, and this one lets
//! through only the events past N. The framer is deterministic over the
//! log (ids from the generation, sequence numbers counted alike), so the
//! events a client gets here continue the ones it had, with no gap and no
//! repeat.

use bytes::Bytes;
use serde_json::Value;

use super::frames::ResponseEvents;
use crate::error::ApiError;
use crate::generation::Finish;
use crate::pipeline::framer::Framer;

/// [`ResponseEvents`] past sequence number `after`.
pub struct After {
    inner: ResponseEvents,
    after: u64,
}

impl After {
    pub fn new(inner: ResponseEvents, after: u64) -> After {
        After { inner, after }
    }

    /// The events of `frames` numbered past `after`.
    fn past(&self, frames: Bytes) -> Bytes {
        let mut out = Vec::with_capacity(frames.len());
        let mut rest: &[u8] = &frames;
        while !rest.is_empty() {
            let end = memchr::memmem::find(rest, b"\n\n").map_or(rest.len(), |at| at + 2);
            let (event, tail) = rest.split_at(end);
            if sequence_of(event).is_some_and(|n| n > self.after) {
                out.extend_from_slice(event);
            }
            rest = tail;
        }
        Bytes::from(out)
    }
}

/// The `sequence_number` of one `event: ...\ndata: {...}\n` block.
fn sequence_of(event: &[u8]) -> Option<u64> {
    let data = event
        .split(|b| *b == b'\n')
        .find_map(|line| line.strip_prefix(b"data: "))?;
    let data: Value = serde_json::from_slice(data).ok()?;
    data.get("sequence_number")?.as_u64()
}

impl Framer for After {
    fn preamble(&mut self) -> Option<Bytes> {
        let opening = self.inner.preamble()?;
        Some(self.past(opening))
    }

    fn serving(&mut self, model: &str) {
        self.inner.serving(model);
    }

    fn token(&mut self, token: &str) -> Bytes {
        let frames = self.inner.token(token);
        self.past(frames)
    }

    fn reasoning(&mut self, text: &str) -> Bytes {
        let frames = self.inner.reasoning(text);
        self.past(frames)
    }

    fn tool_calls(&mut self, calls: &Value) -> Option<Bytes> {
        let frames = self.inner.tool_calls(calls)?;
        Some(self.past(frames))
    }

    fn done(&mut self, finish: &Finish) -> Bytes {
        let frames = self.inner.done(finish);
        self.past(frames)
    }

    fn error(&mut self, error: &ApiError) -> Bytes {
        let frames = self.inner.error(error);
        self.past(frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doors::responses::objects::Head;
    use crate::generation::Usage;

    fn events(seed: &str) -> ResponseEvents {
        let mut head = Head::new("mock", Default::default());
        head.id = "resp_x".into();
        head.created_at = 1;
        ResponseEvents::seeded(head, seed.into())
    }

    fn sequence_numbers(frames: &[Bytes]) -> Vec<u64> {
        let all: Vec<u8> = frames.concat();
        all.split(|b| *b == b'\n')
            .filter_map(|line| line.strip_prefix(b"data: "))
            .map(|data| {
                serde_json::from_slice::<Value>(data).unwrap()["sequence_number"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn the_events_past_n_continue_the_whole_stream_with_no_gap() {
        let run = |framer: &mut dyn Framer| {
            vec![
                framer.preamble().unwrap(),
                framer.token("Hello"),
                framer.token(" there"),
                framer.done(&Finish::new("stop", Usage::new(1, 2))),
            ]
        };
        let whole = run(&mut events("g"));
        let mut after = After::new(events("g"), 4);
        let rest = run(&mut after);
        let all = sequence_numbers(&whole);
        assert_eq!(sequence_numbers(&rest), all[5..].to_vec());
        let text = |frames: &[Bytes]| String::from_utf8(frames.concat()).unwrap();
        assert!(text(&whole).ends_with(&text(&rest)));
    }
}
