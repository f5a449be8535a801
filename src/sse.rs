//! A Server-Sent Events decoder for upstream streams, following the WHATWG
//! "event stream interpretation" algorithm.
//!
//! Bytes go in as they arrive from the network, split anywhere; events come
//! out as soon as their blank line has been seen. Handled: LF, CRLF and bare
//! CR line ends (a CRLF split across two reads too), multi-line `data:`,
//! comments, `event:`/`id:`/`retry:` fields, a leading BOM, and invalid UTF-8
//! (replaced, never a panic).
//!
//! One deliberate departure from the spec: at the end of the stream, a last
//! event that has no closing blank line is still delivered ([`Decoder::finish`]),
//! because some OpenAI-compatible servers end with `data: [DONE]\n` and a
//! client of theirs would otherwise lose the final event.
//!
//! Bounded: a line, or an event's data, longer than [`MAX_EVENT_BYTES`] stops
//! the decoder ([`Decoder::overflowed`]), and a partial line is searched for
//! its end only in the bytes that are new, so a long line delivered in many
//! reads costs linear time, not quadratic.
//!
//! Hand-written rather than taken from a crate: `eventsource-stream`, the
//! common choice, drops that final unterminated event and copies its buffer on
//! every line; this sits on the per-token hot path of every proxied stream and
//! keeps one reusable buffer.

use std::collections::VecDeque;

/// The longest line, and the most data one event may hold: far past any
/// token chunk, and what the Ollama provider's line codec allows.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The `event:` field; `message` when none was given.
    pub event: String,
    pub data: String,
    /// The last `id:` seen on the stream, as the spec's "last event ID".
    pub id: Option<String>,
    pub retry: Option<u64>,
}

#[derive(Debug, Default)]
pub struct Decoder {
    /// Bytes received but not yet split into lines.
    buf: Vec<u8>,
    /// A line or an event was longer than [`MAX_EVENT_BYTES`]: nothing more
    /// is decoded.
    overflowed: bool,
    /// The previous read ended in CR: a LF at the start of the next read
    /// belongs to that line end.
    after_cr: bool,
    /// The stream's first bytes have been checked for a BOM.
    started: bool,
    data: String,
    event: String,
    last_id: Option<String>,
    retry: Option<u64>,
    ready: VecDeque<Event>,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Feeds bytes as they arrived; complete events are then available from
    /// [`Decoder::next_event`].
    pub fn push(&mut self, mut bytes: &[u8]) {
        if self.overflowed {
            return;
        }
        if self.after_cr && !bytes.is_empty() {
            self.after_cr = false;
            if bytes[0] == b'\n' {
                bytes = &bytes[1..];
            }
        }
        if self.started && self.buf.is_empty() {
            // The usual case, whole lines in one read: no copy but the tail.
            let rest = self.split_lines(bytes);
            self.keep(&bytes[rest..]);
            return;
        }
        // A partial line waits: only the new bytes can hold its end.
        if self.started && memchr::memchr2(b'\n', b'\r', bytes).is_none() {
            self.keep(bytes);
            return;
        }
        self.buf.extend_from_slice(bytes);
        if !self.started {
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            if self.buf.len() < BOM.len() && BOM.starts_with(&self.buf) {
                return; // could still be a BOM split across reads
            }
            self.started = true;
            if self.buf.starts_with(BOM) {
                self.buf.drain(..BOM.len());
            }
        }
        let buf = std::mem::take(&mut self.buf);
        let rest = self.split_lines(&buf);
        self.buf = buf;
        self.buf.drain(..rest);
        self.check_bounds();
    }

    /// True once a line or an event passed [`MAX_EVENT_BYTES`]; the stream
    /// is then broken and no more events come.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    /// Appends the start of a line still to be ended.
    fn keep(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.check_bounds();
    }

    fn check_bounds(&mut self) {
        if self.buf.len() > MAX_EVENT_BYTES || self.data.len() > MAX_EVENT_BYTES {
            self.overflowed = true;
            self.buf = Vec::new();
            self.data = String::new();
        }
    }

    /// The next complete event, if any.
    pub fn next_event(&mut self) -> Option<Event> {
        self.ready.pop_front()
    }

    /// Ends the stream: a last line without a line end is taken as a line, and
    /// a last event without its blank line is queued for [`Decoder::next_event`].
    pub fn finish(&mut self) {
        if self.overflowed {
            return;
        }
        if !self.buf.is_empty() {
            let line = std::mem::take(&mut self.buf);
            self.process_line(&line);
        }
        self.dispatch();
    }

    /// Processes every complete line in `buf`; returns where the incomplete
    /// last line starts.
    fn split_lines(&mut self, buf: &[u8]) -> usize {
        let mut start = 0;
        while let Some(offset) = memchr::memchr2(b'\n', b'\r', &buf[start..]) {
            if self.overflowed {
                break;
            }
            let end = start + offset;
            self.process_line(&buf[start..end]);
            start = end + 1;
            if buf[end] == b'\r' {
                match buf.get(start) {
                    Some(b'\n') => start += 1,
                    Some(_) => {}
                    None => self.after_cr = true,
                }
            }
        }
        start
    }

    fn process_line(&mut self, line: &[u8]) {
        if line.is_empty() {
            self.dispatch();
            return;
        }
        if line[0] == b':' {
            return; // a comment
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        // Valid UTF-8 is the rule; `from_utf8` checks it faster than the lossy path.
        let value = match std::str::from_utf8(value) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(value),
        };
        match field {
            b"data" => {
                if self.data.len() + value.len() >= MAX_EVENT_BYTES {
                    self.overflowed = true;
                    return;
                }
                // One allocation for the usual one-line event, not a
                // second one for its line end (callgrind: ~600 instructions
                // a token went to that realloc).
                self.data.reserve(value.len() + 1);
                self.data.push_str(&value);
                self.data.push('\n');
            }
            b"event" => self.event = value.into_owned(),
            b"id" if !value.contains('\0') => self.last_id = Some(value.into_owned()),
            b"retry" => {
                if let Ok(ms) = value.parse() {
                    self.retry = Some(ms);
                }
            }
            _ => {}
        }
    }

    fn dispatch(&mut self) {
        let mut event = std::mem::take(&mut self.event);
        if self.data.is_empty() {
            return;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop(); // the spec's trailing LF
        if event.is_empty() {
            event.push_str("message");
        }
        self.ready.push_back(Event {
            event,
            data,
            id: self.last_id.clone(),
            retry: self.retry,
        });
    }
}
