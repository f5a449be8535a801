//! One event's frame: what the relay's loop writes for it, whether the body
//! ends with it, and the entry it leaves in the generation's log (through
//! the [`LogWriter`]).

use bytes::Bytes;

use std::sync::Arc;

use crate::error::ApiError;
use crate::generation::{FaultEvent, Finish, TokenEvent, UpstreamError};
use crate::generations::{Entry, Log, CANCELLED};
use crate::observe::{Ended, StreamMeter};
use crate::pipeline::framer::Framer;

/// Appends what a body writes to its generation's log. Dropped before the
/// terminal frame (the client left, no one will read on), it ends the log
/// with a `cancelled` done frame and the usage so far.
pub struct LogWriter {
    pub(super) log: Arc<Log>,
    ended: bool,
}

impl LogWriter {
    pub fn new(log: Arc<Log>) -> LogWriter {
        LogWriter { log, ended: false }
    }

    pub(super) fn append(&mut self, entry: Entry) {
        self.ended |= entry.is_terminal();
        self.log.append(entry);
    }

    /// The finish of a generation stopped now.
    pub(super) fn cancelled(&self) -> Finish {
        Finish::new(CANCELLED, self.log.usage_so_far())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if !self.ended {
            let finish = self.cancelled();
            self.append(Entry::Done(finish));
        }
    }
}

/// What one event makes the body write.
pub(super) struct Written {
    pub frame: Option<Bytes>,
    pub end: Option<End>,
}

pub(super) enum End {
    /// The terminal frame is written: end the body.
    Close,
    /// Abort the response, so the client sees a failed transfer.
    Abort(&'static str),
}

/// The frame for `event`, and whether the body ends with it; the event goes
/// into the log too, when there is one.
pub(super) fn write(
    framer: &mut dyn Framer,
    meter: &mut StreamMeter,
    log: Option<&mut LogWriter>,
    event: TokenEvent,
) -> Written {
    let (frame, end, entry) = match event {
        TokenEvent::Token(token) => {
            meter.token();
            let frame = framer.token(&token);
            (Some(frame), None, Some(Entry::Token(token)))
        }
        TokenEvent::Reasoning(text) => {
            let frame = framer.reasoning(&text);
            (Some(frame), None, Some(Entry::Reasoning(text)))
        }
        TokenEvent::Signature(signature) => {
            let frame = framer.signature(&signature);
            (frame, None, Some(Entry::Signature(signature)))
        }
        TokenEvent::ToolCalls(calls) => {
            let frame = framer.tool_calls(&calls);
            (frame, None, Some(Entry::ToolCalls(calls)))
        }
        TokenEvent::Delta(delta) => {
            if delta.content().is_some() {
                meter.token();
            }
            if let Some(log) = log {
                // The log is door-neutral: the parts every door can show.
                if let Some(text) = delta.reasoning() {
                    log.append(Entry::Reasoning(text.to_owned()));
                }
                if let Some(text) = delta.content() {
                    log.append(Entry::Token(text.to_owned()));
                }
                if let Some(calls) = delta.tool_calls() {
                    log.append(Entry::ToolCalls(calls.clone()));
                }
            }
            return Written {
                frame: framer.delta(&delta),
                end: None,
            };
        }
        TokenEvent::Done(finish) => {
            meter.end(Ended::Done);
            meter.finished(&finish);
            let frame = framer.done(&finish);
            let frame = (!frame.is_empty()).then_some(frame);
            (frame, Some(End::Close), Some(Entry::Done(finish)))
        }
        TokenEvent::Error(err) => {
            let err = ApiError::from(err);
            meter.end(Ended::Error(err.kind));
            let end = match framer.aborts_on_error() {
                true => End::Abort("the stream failed"),
                false => End::Close,
            };
            (Some(framer.error(&err)), Some(end), Some(Entry::Error(err)))
        }
        TokenEvent::Continued(seam) => {
            meter.continued();
            let frame = framer.continued(&seam);
            (Some(frame), None, Some(Entry::Continued(seam)))
        }
        TokenEvent::Fault(FaultEvent::Malformed) => {
            (Some(framer.malformed()), None, Some(Entry::Malformed))
        }
        // Nothing follows: the mock holds its stream open.
        TokenEvent::Fault(FaultEvent::Hang) => (None, None, None),
        TokenEvent::Fault(FaultEvent::Unterminated) => {
            meter.end(Ended::Cut);
            // The body ends as if finished, with no terminal frame; the log
            // says what happened.
            let err = ApiError::from(UpstreamError::Stream(
                "the mock ended with no terminal event, as asked by fault=no_terminal".into(),
            ));
            (None, Some(End::Close), Some(Entry::Error(err)))
        }
        TokenEvent::Fault(FaultEvent::Reset) | TokenEvent::Cut => {
            meter.end(Ended::Cut);
            // The connection is cut with no terminal frame; the log, which a
            // reconnect reads, says why the generation ended.
            let err = ApiError::from(UpstreamError::Stream(
                "the mock dropped the connection, as asked by drop_after".into(),
            ));
            let end = End::Abort("the mock was asked to drop the connection");
            (None, Some(end), Some(Entry::Error(err)))
        }
    };
    if let (Some(log), Some(entry)) = (log, entry) {
        log.append(entry);
    }
    Written { frame, end }
}
