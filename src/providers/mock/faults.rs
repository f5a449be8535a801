//! The mock's faults by name (contract section 14): the `fault` knob picks
//! one, and this says when it strikes and what it does, so the generation
//! loop (`mod.rs`) asks at four points: before anything, before planning,
//! before each piece of the answer, and at the end.
//!
//! The pipeline acts out the faults no provider event can express (no
//! response at all, a connection reset, a broken frame, a body with no
//! terminal event) from the `TokenEvent::Fault` the mock yields.

use std::time::Duration;

use crate::generation::{Fault, FaultEvent, GenRequest, MockKnobs, UpstreamError, FAULT_AFTER};

/// A `slow_first_token` lasts this long unless `fault_ms` says.
const SLOW_FIRST_TOKEN_MS: u64 = 20_000;
/// A `stall` lasts this long unless `fault_ms` says.
const STALL_MS: u64 = 30_000;

/// What happens before any token.
pub enum Opening {
    /// Fail as the provider would, before streaming.
    Fail(UpstreamError),
    /// Hand the pipeline a fault to act out, then nothing more.
    Event(FaultEvent),
    /// Go on.
    Generate,
}

pub fn opening(knobs: &MockKnobs) -> Opening {
    let Some(fault) = knobs.fault else {
        return Opening::Generate;
    };
    match fault {
        Fault::RateLimited => Opening::Fail(UpstreamError::MockStatus {
            status: 429,
            retry_after: Some(1),
        }),
        Fault::Overloaded => Opening::Fail(UpstreamError::MockStatus {
            status: knobs.fault_status.unwrap_or(503),
            retry_after: None,
        }),
        Fault::ContextLength => Opening::Fail(UpstreamError::ContextLength(
            "This model's maximum context length is 8192 tokens; the prompt is longer \
             (the mock's context_length fault)"
                .into(),
        )),
        Fault::Hang => Opening::Event(FaultEvent::Hang),
        Fault::Reset => Opening::Event(FaultEvent::Reset),
        Fault::SlowFirstToken
        | Fault::Stall
        | Fault::Cut
        | Fault::Malformed
        | Fault::NoTerminal
        | Fault::ContentFilter
        | Fault::Empty
        | Fault::BadToolArgs => Opening::Generate,
    }
}

/// The knobs the plan and the pace are made with: a slow first token is a
/// long `ttft_ms`; bad tool arguments need a tool call, the request's first
/// tool when none is named.
pub fn shape(mut knobs: MockKnobs, request: &GenRequest) -> MockKnobs {
    match knobs.fault {
        Some(Fault::SlowFirstToken) => {
            knobs.ttft_ms = Some(knobs.fault_ms.unwrap_or(SLOW_FIRST_TOKEN_MS));
        }
        Some(Fault::BadToolArgs) if knobs.tool_call.is_none() => {
            knobs.tool_call = request.tools.first().map(|tool| tool.name.clone());
        }
        Some(
            Fault::BadToolArgs
            | Fault::RateLimited
            | Fault::Overloaded
            | Fault::Hang
            | Fault::Reset
            | Fault::Stall
            | Fault::Cut
            | Fault::Malformed
            | Fault::NoTerminal
            | Fault::ContextLength
            | Fault::ContentFilter
            | Fault::Empty,
        )
        | None => {}
    }
    knobs
}

/// A fault that strikes part way through the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Midway {
    Stall(Duration),
    Cut,
    Malformed,
    ContentFilter,
}

/// The fault due before the answer's piece number `sent` (counted as
/// `fail_after` counts), and after which piece count it strikes.
pub fn midway(knobs: &MockKnobs) -> Option<(usize, Midway)> {
    let at = knobs.fault_after.unwrap_or(FAULT_AFTER) as usize;
    let what = match knobs.fault? {
        Fault::Stall => Midway::Stall(Duration::from_millis(knobs.fault_ms.unwrap_or(STALL_MS))),
        Fault::Cut => Midway::Cut,
        Fault::Malformed => Midway::Malformed,
        Fault::ContentFilter => Midway::ContentFilter,
        Fault::RateLimited
        | Fault::Overloaded
        | Fault::Hang
        | Fault::Reset
        | Fault::SlowFirstToken
        | Fault::NoTerminal
        | Fault::ContextLength
        | Fault::Empty
        | Fault::BadToolArgs => return None,
    };
    Some((at, what))
}

/// The knobs for an answer continued after its first `pieces` pieces
/// (section 17): a fault or failure due by then has struck already.
pub fn struck(mut knobs: MockKnobs, pieces: usize) -> MockKnobs {
    if pieces == 0 {
        return knobs;
    }
    let by_then = |at: Option<u32>| at.is_some_and(|at| at as usize <= pieces);
    if midway(&knobs).is_some_and(|(at, _)| at <= pieces) {
        knobs.fault = None;
    }
    if by_then(knobs.fail_after) {
        knobs.fail_after = None;
    }
    if by_then(knobs.drop_after) {
        knobs.drop_after = None;
    }
    knobs
}

/// Whether the fault is `what`.
pub fn is(knobs: &MockKnobs, what: Fault) -> bool {
    knobs.fault == Some(what)
}

/// The first half of a call's arguments (at least one character short):
/// JSON that does not parse, for `bad_tool_args`.
pub fn broken(arguments: &str) -> String {
    let mut end = arguments.len() / 2;
    while !arguments.is_char_boundary(end) {
        end -= 1;
    }
    arguments[..end].to_owned()
}
