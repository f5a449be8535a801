//! A generation's frames and status, as the store keeps them: door-neutral
//! entries (a token's text, the finish, the error), so each watcher frames
//! them in its own format with ids from their index.

use std::collections::VecDeque;

use serde_json::{json, Value};

use crate::error::ApiError;
use crate::generation::{Finish, Seam, Usage};

/// The finish reason of a generation stopped by `DELETE`, by its abandonment
/// or by its client leaving.
pub const CANCELLED: &str = "cancelled";

/// One frame of a generation.
#[derive(Debug, Clone, PartialEq)]
pub enum Entry {
    Token(String),
    /// A piece of reasoning (section 11).
    Reasoning(String),
    /// An OpenAI `tool_calls` delta (the pipeline's one tool-call shape):
    /// the doors that carry tool calls frame it, the others skip its index.
    ToolCalls(Value),
    /// The signature Anthropic ends a thinking block with (the Messages
    /// door carries it; the others skip its index).
    Signature(String),
    /// A frame that is not valid JSON, in each door's format (the mock's
    /// `malformed` fault): kept so every view of the generation shows it.
    Malformed,
    /// Where a continuation joined the answer (section 17).
    Continued(Seam),
    /// The terminal `done` frame.
    Done(Finish),
    /// The terminal `error` frame.
    Error(ApiError),
}

impl Entry {
    pub fn is_terminal(&self) -> bool {
        match self {
            Entry::Token(_)
            | Entry::Reasoning(_)
            | Entry::ToolCalls(_)
            | Entry::Signature(_)
            | Entry::Malformed
            | Entry::Continued(_) => false,
            Entry::Done(_) | Entry::Error(_) => true,
        }
    }

    /// What the entry holds in memory, for the log's bounds: its slot, and
    /// its text's allocation (the allocator hands out no less than 16 bytes).
    pub fn bytes(&self) -> usize {
        let text = match self {
            Entry::Token(text) | Entry::Reasoning(text) | Entry::Signature(text) => text.capacity(),
            Entry::Done(finish) => finish.finish_reason.capacity(),
            Entry::Malformed => 0,
            Entry::Continued(seam) => seam.model.capacity() + seam.reason.capacity(),
            Entry::Error(err) => err.message.capacity(),
            // Rare and small (a call's name, id and argument pieces): its
            // JSON's length stands for the tree's allocations.
            Entry::ToolCalls(calls) => calls.to_string().len() * 2,
        };
        std::mem::size_of::<Entry>() + text.max(16)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Running,
    Done,
    Error,
    Cancelled,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Done => "done",
            Status::Error => "error",
            Status::Cancelled => "cancelled",
        }
    }
}

/// Frames read from a log.
#[derive(Debug)]
pub struct Read {
    /// The index of the first of `entries`.
    pub first: u64,
    pub entries: Vec<Entry>,
    /// The terminal frame is among them or before them: nothing will follow.
    pub ended: bool,
    /// More frames are held already, past the read's window: read again
    /// before waiting for new ones.
    pub more: bool,
}

/// The frames asked for were dropped to keep the log within
/// `streams.max_log_bytes`; the oldest kept is `first_kept`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone {
    pub first_kept: u64,
}

/// A generation's status, as `GET /v1/generations/GEN` answers it.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub id: String,
    pub model: String,
    pub status: Status,
    /// The answer so far (what the log still holds of it).
    pub text: String,
    /// Set once the generation is done (or cancelled).
    pub finish_reason: Option<String>,
    /// The final usage, or the usage so far while it runs.
    pub usage: Usage,
    pub error: Option<ApiError>,
    /// Unix seconds.
    pub created: u64,
    /// Frames in the log; the terminal one is `frames - 1` once ended.
    pub frames: u64,
    /// Held back by `pause` (section 14).
    pub paused: bool,
}

impl Snapshot {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "object": "generation",
            "model": self.model,
            "status": self.status.as_str(),
            "text": self.text,
            "finish_reason": self.finish_reason,
            "usage": self.usage,
            "error": self.error.as_ref().map(|e| e.body()["error"].clone()),
            "created": self.created,
            "frames": self.frames,
            "paused": self.paused,
            "events_url": format!("/v1/generations/{}/events", self.id),
        })
    }
}

/// The entries of one log, bounded: past `max_bytes` the oldest are dropped.
#[derive(Debug)]
pub(super) struct Frames {
    /// The index of `entries[0]`.
    base: u64,
    entries: VecDeque<Entry>,
    bytes: usize,
    max_bytes: usize,
    ended: Option<Status>,
    /// Bytes of answer and of reasoning text ever appended, dropped frames
    /// included: what the usage of a generation stopped part way counts.
    answer_bytes: usize,
    reasoning_bytes: usize,
}

impl Frames {
    pub(super) fn new(max_bytes: usize) -> Frames {
        Frames {
            base: 0,
            entries: VecDeque::new(),
            bytes: 0,
            max_bytes,
            ended: None,
            answer_bytes: 0,
            reasoning_bytes: 0,
        }
    }

    pub(super) fn len(&self) -> u64 {
        self.base + self.entries.len() as u64
    }

    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }

    /// The index of the oldest frame still held.
    pub(super) fn first_kept(&self) -> u64 {
        self.base
    }

    pub(super) fn status(&self) -> Status {
        self.ended.unwrap_or(Status::Running)
    }

    /// Appends `entry` unless the log has ended; returns its index and
    /// whether it ended the log.
    pub(super) fn push(&mut self, entry: Entry) -> (u64, bool) {
        if self.ended.is_some() {
            return (self.len(), false);
        }
        let ends = match &entry {
            Entry::Token(text) => {
                self.answer_bytes += text.len();
                None
            }
            Entry::Reasoning(text) => {
                self.reasoning_bytes += text.len();
                None
            }
            Entry::ToolCalls(_) | Entry::Signature(_) | Entry::Malformed | Entry::Continued(_) => {
                None
            }
            Entry::Done(finish) if finish.finish_reason == CANCELLED => Some(Status::Cancelled),
            Entry::Done(_) => Some(Status::Done),
            Entry::Error(_) => Some(Status::Error),
        };
        self.bytes += entry.bytes();
        self.entries.push_back(entry);
        // The terminal frame is never dropped: it is what a reconnect needs.
        while self.bytes > self.max_bytes && self.entries.len() > 1 {
            if let Some(dropped) = self.entries.pop_front() {
                self.bytes -= dropped.bytes();
                self.base += 1;
            }
        }
        self.ended = ends;
        if ends.is_some() {
            // An ended log only shrinks from here: give back the deque's slack.
            self.entries.shrink_to_fit();
        }
        (self.len() - 1, ends.is_some())
    }

    /// Appends `entry` as frame `index` of a log copied from elsewhere: a
    /// frame already held is skipped, and frames missing before `index`
    /// (dropped at the source) drop everything held, so that a read from
    /// before them is [`Gone`], never a renumbered frame.
    pub(super) fn push_at(&mut self, index: u64, entry: Entry) -> (u64, bool) {
        if index < self.len() {
            return (index, false);
        }
        if index > self.len() {
            self.entries.clear();
            self.bytes = 0;
            self.base = index;
        }
        self.push(entry)
    }

    /// The frames after `after`, at most [`READ_WINDOW`] bytes of them (and
    /// always one, when there is one): a reader that falls behind holds a
    /// window of the log, never a copy of all of it, and reads again.
    pub(super) fn read(&self, after: Option<u64>) -> Result<Read, Gone> {
        let first = after.map_or(0, |n| n.saturating_add(1));
        if first < self.base {
            return Err(Gone {
                first_kept: self.base,
            });
        }
        let skip = usize::try_from(first - self.base).unwrap_or(usize::MAX);
        let mut bytes = 0;
        let entries: Vec<Entry> = self
            .entries
            .iter()
            .skip(skip)
            .take_while(|entry| {
                let within = bytes == 0 || bytes + entry.bytes() <= READ_WINDOW;
                bytes += entry.bytes();
                within
            })
            .cloned()
            .collect();
        let to_end =
            (skip as u64).saturating_add(entries.len() as u64) >= self.entries.len() as u64;
        Ok(Read {
            first,
            entries,
            ended: self.ended.is_some() && to_end,
            more: !to_end,
        })
    }

    pub(super) fn text(&self) -> String {
        self.texts(false)
    }

    /// The answer's text (or the reasoning's) that the log still holds.
    fn texts(&self, reasoning: bool) -> String {
        self.entries
            .iter()
            .filter_map(|entry| match (entry, reasoning) {
                (Entry::Token(text), false) | (Entry::Reasoning(text), true) => Some(text.as_str()),
                (
                    Entry::Token(_)
                    | Entry::Reasoning(_)
                    | Entry::ToolCalls(_)
                    | Entry::Signature(_)
                    | Entry::Malformed
                    | Entry::Continued(_)
                    | Entry::Done(_)
                    | Entry::Error(_),
                    _,
                ) => None,
            })
            .collect()
    }

    /// The usage of a generation stopped part way: the prompt as counted when
    /// it began, and every answer and reasoning token appended (T3-13),
    /// counted in what the log holds and estimated at that rate for what it
    /// dropped.
    pub(super) fn usage(&self, prompt_tokens: u32) -> Usage {
        let count = |reasoning: bool, bytes: usize| {
            let held = self.texts(reasoning);
            let sample = crate::tokenizer::head(&held, USAGE_SAMPLE);
            crate::tokenizer::estimate(sample, bytes.max(held.len()))
        };
        let answer = count(false, self.answer_bytes);
        let reasoning = count(true, self.reasoning_bytes);
        Usage::new(prompt_tokens, answer.saturating_add(reasoning))
            .with_reasoning((self.reasoning_bytes > 0).then_some(reasoning))
    }

    pub(super) fn terminal(&self) -> Option<&Entry> {
        self.entries.back().filter(|entry| entry.is_terminal())
    }
}

/// The most a read of a log copies at once (see [`Frames::read`]).
pub const READ_WINDOW: usize = 64 * 1024;

/// The part of a log's text counted exactly for its usage so far; the rest
/// is estimated at the same rate (a log holds up to `max_log_bytes`, and
/// counting 8 MiB took seconds of a runtime thread in a debug build).
const USAGE_SAMPLE: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    fn token(text: &str) -> Entry {
        Entry::Token(text.into())
    }

    #[test]
    fn frames_are_read_from_any_index_and_nothing_follows_the_terminal_one() {
        let mut frames = Frames::new(1 << 20);
        assert_eq!(frames.push(token("a")), (0, false));
        assert_eq!(frames.push(token("b")), (1, false));
        let done = Entry::Done(Finish::new("stop", Usage::default()));
        assert_eq!(frames.push(done.clone()), (2, true));
        assert!(!frames.push(token("late")).1);
        assert_eq!(frames.len(), 3);
        let read = frames.read(Some(0)).unwrap();
        assert_eq!(
            (read.first, read.entries, read.ended),
            (1, vec![token("b"), done], true)
        );
        assert!(frames.read(Some(2)).unwrap().entries.is_empty());
        assert_eq!(frames.status(), Status::Done);
        assert_eq!(frames.text(), "ab");
    }

    /// T3-6: a read copies a window of the log, not all of it; the rest is
    /// read after, and only the read that reaches the end says it ended.
    #[test]
    fn a_read_copies_at_most_a_window() {
        let mut frames = Frames::new(1 << 30);
        for n in 0..100_000 {
            frames.push(token(&format!("t{n}")));
        }
        frames.push(Entry::Done(Finish::new("stop", Usage::default())));
        let mut after = None;
        let mut seen = 0;
        loop {
            let read = frames.read(after).unwrap();
            let bytes: usize = read.entries.iter().map(Entry::bytes).sum();
            assert!(bytes <= READ_WINDOW, "{bytes}");
            seen += read.entries.len();
            after = Some(read.first + read.entries.len() as u64 - 1);
            assert_eq!(read.more, !read.ended);
            if read.ended {
                break;
            }
        }
        assert_eq!(seen, 100_001);
    }

    /// T3-13: the usage so far counts reasoning, and what was dropped.
    #[test]
    fn usage_so_far_counts_reasoning_and_dropped_frames() {
        let mut frames = Frames::new(4 * token("a").bytes());
        for _ in 0..50 {
            frames.push(Entry::Reasoning(" think".into()));
        }
        frames.push(token(" yes"));
        let usage = frames.usage(7);
        assert_eq!(usage.reasoning_tokens, Some(50));
        assert_eq!(usage.completion_tokens, 51);
        assert_eq!(usage.total_tokens, 58);
    }

    #[test]
    fn past_its_bound_the_log_drops_its_oldest_frames_but_never_the_terminal_one() {
        let entry = token("a").bytes();
        let mut frames = Frames::new(3 * entry);
        for text in ["a", "b", "c", "d", "e"] {
            frames.push(token(text));
        }
        assert!(frames.bytes() <= 3 * entry);
        assert_eq!(frames.read(None).unwrap_err(), Gone { first_kept: 2 });
        assert_eq!(
            frames.read(Some(1)).unwrap().entries,
            [token("c"), token("d"), token("e")]
        );
        let err = Entry::Error(ApiError::shutting_down());
        frames.push(err.clone());
        assert_eq!(frames.terminal(), Some(&err));
        assert_eq!(frames.status(), Status::Error);
    }
}
