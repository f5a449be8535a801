//! The mock model: a local LLM with realistic tokens and timing, and failures
//! on demand, for frontend development, demos and tests.
//!
//! Knobs come from the route's config entry and can be overridden per request
//! (section 4 of the contract). A generation is a plan (the pieces to send,
//! decided up front from the prompt, seed and knobs, so it is deterministic)
//! played out on tokio timers: a slow mock stream costs a timer entry and a
//! small state machine, not a thread or a busy task, so thousands are cheap.
//! Dropping the stream drops the timer, which is how the mock stops when the
//! client leaves.

//!
//! A plan is reasoning (the `reasoning_tokens` knob), then an answer or, when
//! the request forces a tool (or the `tool_call` knob names one), one call
//! of it with arguments generated from the tool's schema (`arguments`).

mod answer;
pub(crate) mod arguments;
mod embed;
mod faults;
mod pace;
mod plan;

use async_stream::stream;
use serde_json::json;

use super::{Embedding, Provider};
use crate::generation::{
    Fault, FaultEvent, Finish, GenRequest, MockKnobs, Role, TokenEvent, TokenStream, UpstreamError,
    Usage,
};
use crate::tokenizer;
use pace::Pace;
use plan::{Output, Plan};

/// A model served by the mock.
pub struct Mock {
    defaults: MockKnobs,
}

impl Mock {
    pub fn new(defaults: MockKnobs) -> Mock {
        Mock { defaults }
    }
}

impl Provider for Mock {
    fn embed(&self, request: crate::generation::EmbedRequest) -> Embedding<'_> {
        Box::pin(async move { Ok(embed::embed(&request)) })
    }

    fn generate(&self, mut request: GenRequest) -> TokenStream {
        // A final assistant message is an answer to continue (section 17):
        // the mock plans the answer to the conversation before it, and goes
        // on after the pieces the prefill already has.
        let prefill = match request.messages.last() {
            Some(last) if last.role == Role::Assistant => request.messages.pop().map(|m| m.content),
            Some(_) | None => None,
        };
        let knobs = faults::shape(self.defaults.overridden_by(&request.mock), &request);
        Box::pin(stream! {
            if let Some(status) = knobs.error_status {
                let retry_after = (status == 429).then_some(1);
                yield TokenEvent::Error(UpstreamError::MockStatus { status, retry_after });
                return;
            }
            match faults::opening(&knobs) {
                faults::Opening::Fail(err) => {
                    yield TokenEvent::Error(err);
                    return;
                }
                faults::Opening::Event(fault) => {
                    yield TokenEvent::Fault(fault);
                    // Nothing follows; the pipeline answers nothing at all.
                    std::future::pending::<()>().await;
                    return;
                }
                faults::Opening::Generate => {}
            }
            let empty = faults::is(&knobs, Fault::Empty);
            let bad_arguments = faults::is(&knobs, Fault::BadToolArgs);
            let heavy = is_heavy(&knobs, &request);
            let planning = {
                let knobs = knobs.clone();
                // The request goes with the planning: only the prompt's count
                // is kept for the stream's life.
                move || {
                    let mut rng = fastrand::Rng::with_seed(seed_for(&request));
                    let plan = Plan::new(&knobs, &request, &mut rng);
                    (plan, rng, tokenizer::prompt_tokens(&request.messages))
                }
            };
            let (plan, mut rng, prompt_tokens) = match heavy {
                // A big plan is CPU the stream's core would spend with every
                // other stream on it waiting: it is made on the blocking pool.
                true => match tokio::task::spawn_blocking(planning).await {
                    Ok(planned) => planned,
                    Err(err) => {
                        yield TokenEvent::Error(UpstreamError::Stream(format!("the mock could not plan its answer: {err}")));
                        return;
                    }
                },
                false => planning(),
            };
            let skipped = match (&plan.output, &prefill) {
                (Output::Answer(answer), Some(prefill)) => answer.continued_after(prefill),
                (Output::Answer(_) | Output::ToolCalls(_), _) => 0,
            };
            let knobs = faults::struck(knobs, skipped);
            let midway = faults::midway(&knobs);
            let mut pace = Pace::new(&knobs);
            pace.first_token().await;

            // Every piece after the first waits its gap.
            let mut first = true;
            for (piece, _) in plan.reasoning.iter().filter(|_| !empty && skipped == 0) {
                if !std::mem::take(&mut first) {
                    pace.between_tokens(&mut rng).await;
                }
                yield TokenEvent::Reasoning(piece.to_owned());
            }
            // `fail_after` and `drop_after` count the answer's pieces (a
            // call's arguments' pieces, one call after another).
            let mut output_tokens = 0u32;
            let mut sent = skipped;
            match &plan.output {
                Output::Answer(answer) => {
                    for (piece, tokens) in answer.iter().skip(skipped).filter(|_| !empty) {
                        if let Some(failure) = failure_at(&knobs, sent) {
                            yield failure;
                            return;
                        }
                        if let Some((_, fault)) = midway.filter(|(at, _)| *at == sent) {
                            match fault {
                                faults::Midway::Stall(pause) => tokio::time::sleep(pause).await,
                                faults::Midway::Cut => {
                                    yield TokenEvent::Cut;
                                    return;
                                }
                                faults::Midway::Malformed => yield TokenEvent::Fault(FaultEvent::Malformed),
                                faults::Midway::ContentFilter => {
                                    let usage = Usage::new(prompt_tokens, plan.reasoning.tokens() + output_tokens);
                                    yield TokenEvent::Done(Finish::new("content_filter", usage));
                                    return;
                                }
                            }
                        }
                        if !std::mem::take(&mut first) {
                            pace.between_tokens(&mut rng).await;
                        }
                        output_tokens += tokens;
                        sent += 1;
                        yield TokenEvent::Token(piece.to_owned());
                    }
                }
                Output::ToolCalls(calls) => {
                    for (index, call) in calls.iter().enumerate() {
                        if !std::mem::take(&mut first) {
                            pace.between_tokens(&mut rng).await;
                        }
                        yield TokenEvent::ToolCalls(json!([{
                            "index": index, "id": call.id, "type": "function",
                            "function": {"name": call.name, "arguments": ""},
                        }]));
                        if bad_arguments {
                            let whole: String = call.arguments.iter().map(|(piece, _)| piece).collect();
                            pace.between_tokens(&mut rng).await;
                            output_tokens += call.arguments.tokens() / 2;
                            sent += 1;
                            yield TokenEvent::ToolCalls(
                                json!([{"index": index, "function": {"arguments": faults::broken(&whole)}}]),
                            );
                            continue;
                        }
                        for (piece, tokens) in call.arguments.iter() {
                            if let Some(failure) = failure_at(&knobs, sent) {
                                yield failure;
                                return;
                            }
                            pace.between_tokens(&mut rng).await;
                            output_tokens += tokens;
                            sent += 1;
                            yield TokenEvent::ToolCalls(
                                json!([{"index": index, "function": {"arguments": piece}}]),
                            );
                        }
                    }
                }
            }
            let total = sent;
            // A failure asked for at or past the end still happens, in place of `done`.
            if let Some(failure) = [knobs.fail_after, knobs.drop_after]
                .into_iter()
                .flatten()
                .min()
                .and_then(|at| failure_at(&knobs, (at as usize).max(total)))
            {
                yield failure;
                return;
            }
            // A mid-answer fault asked for at or past the end still happens.
            match midway.filter(|(at, _)| *at >= total).map(|(_, fault)| fault) {
                Some(faults::Midway::Cut) => {
                    yield TokenEvent::Cut;
                    return;
                }
                Some(faults::Midway::Malformed) => yield TokenEvent::Fault(FaultEvent::Malformed),
                Some(faults::Midway::Stall(pause)) => tokio::time::sleep(pause).await,
                Some(faults::Midway::ContentFilter) | None => {}
            }
            if faults::is(&knobs, Fault::NoTerminal) {
                yield TokenEvent::Fault(FaultEvent::Unterminated);
                return;
            }
            let reasoning = if empty || skipped > 0 { 0 } else { plan.reasoning.tokens() };
            let usage = Usage::new(prompt_tokens, reasoning + output_tokens)
                .with_reasoning(knobs.reasoning_tokens.map(|_| reasoning));
            let finish_reason = match midway {
                Some((_, faults::Midway::ContentFilter)) => "content_filter",
                Some(_) | None => plan.finish_reason,
            };
            yield TokenEvent::Done(Finish {
                stop_sequence: plan.stop_sequence,
                ..Finish::new(finish_reason, usage)
            });
        })
    }
}

/// The failure the knobs ask for once `sent` tokens have gone out, if any.
fn failure_at(knobs: &MockKnobs, sent: usize) -> Option<TokenEvent> {
    let due = |at: Option<u32>| at.is_some_and(|at| at as usize <= sent);
    if due(knobs.fail_after) {
        Some(TokenEvent::Error(UpstreamError::Stream(format!(
            "the mock failed after {sent} tokens, as asked by fail_after"
        ))))
    } else if due(knobs.drop_after) {
        Some(TokenEvent::Cut)
    } else {
        None
    }
}

/// Whether planning this answer is worth taking off the stream's core: a
/// long answer or a long prompt to cut into tokens, whose CPU grows with
/// their length, or tool arguments generated from a client's schema (bounded,
/// see `arguments`, but up to 64 KiB of JSON to make and cut into tokens).
fn is_heavy(knobs: &MockKnobs, request: &GenRequest) -> bool {
    const HEAVY_TOKENS: u32 = 4_000;
    const HEAVY_PROMPT_BYTES: usize = 64 * 1024;
    let planned = knobs
        .tokens
        .unwrap_or(0)
        .saturating_add(knobs.reasoning_tokens.unwrap_or(0));
    let prompt: usize = request.messages.iter().map(|m| m.content.len()).sum();
    planned > HEAVY_TOKENS
        || prompt > HEAVY_PROMPT_BYTES
        || !request.tools.is_empty()
        || knobs
            .text
            .as_ref()
            .is_some_and(|t| t.len() > HEAVY_PROMPT_BYTES)
}

/// The same conversation and seed give the same answer.
fn seed_for(request: &GenRequest) -> u64 {
    // FNV-1a: tiny, and stable across Rust versions (std's hasher is not).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for message in &request.messages {
        for byte in message.content.bytes().chain([0xff]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash ^ request
        .seed
        .unwrap_or(0)
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

#[cfg(test)]
mod tests;
