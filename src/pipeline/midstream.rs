//! Continuing an answer cut mid-stream (contract section 17).
//!
//! On a route with `midstream = "continue"`, the serving call's events pass
//! through a [`Midstream`] on their way to the relay or the collector. It
//! keeps what a continuation needs: the answer's text so far (up to
//! [`MAX_ANSWER`]), the tool calls the client has whole, and the usage of the
//! calls that were cut. When the upstream fails after the first token (the
//! connection broke, `idle_ms` passed, an error event, more than three
//! unparsable events), the same conversation is asked for again with the
//! answer so far as its last message, the assistant's: a prefill, which
//! Anthropic continues natively and OpenAI-compatible and Ollama servers
//! continue when they support a final assistant message (an instruction to
//! continue goes in the system prompt before it, never after it: a server
//! that sees a user message last answers from the start). The serving model
//! is asked first, then the route's fallbacks in order, at most
//! `midstream_attempts` calls in all for the answer; a model that refuses a
//! continuation with a 4xx is not asked again. Reasoning so far is not
//! resent.
//!
//! The client gets one answer: a [`Seam`] event where the continuation
//! begins (each door shows it its own way), then the continuation with the
//! text it repeats from the end of the answer so far dropped ([`Overlap`]),
//! and one terminal event whose usage sums every call.
//!
//! Tool calls are held whole: a call's deltas are relayed as one when the
//! next call starts or the answer ends, so a call cut half way was never
//! seen by the client, and the continuation makes it again from the start;
//! the continuation's calls at indices the client already has whole are
//! dropped as repeats. (A chunk that carries a call along with other parts
//! is relayed as it comes; a cut after one is not continued.)
//!
//! What it may not do: frame anything (the doors do), or retry before the
//! first token (the failover does).

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use opentelemetry::trace::TraceContextExt;
use opentelemetry::KeyValue;
use tokio::time::Instant;

use super::attempt::{count_error, try_once, Attempt};
use super::deadlines::Deadlines;
use crate::generation::{GenRequest, Seam, TokenEvent, UpstreamError, Usage};
use crate::models::ModelRoute;
use crate::tokenizer;

mod calls;
mod overlap;
mod prefill;

use calls::HeldCalls;
use overlap::Overlap;
use prefill::continuation;

/// The most answer text kept for a continuation (1 MiB); a longer answer
/// is not continued, and its failure ends it as on a route that does not.
pub const MAX_ANSWER: usize = 1 << 20;

/// A continuation being asked for: which route of the chain serves it (and
/// its first event), or the error the answer ends with.
pub type Continuing = Pin<Box<dyn Future<Output = Asked> + Send>>;

/// What a continuation's calls came to.
pub struct Asked {
    /// The route that serves it (its index in the chain), when one does.
    pub served: Option<(usize, Attempt)>,
    /// Calls made.
    pub calls: u32,
    /// Routes that refused with a 4xx.
    pub refused: Vec<usize>,
    /// The original failure, for the error frame when no call served.
    pub failure: UpstreamError,
}

/// An answer in flight on a route that continues.
pub struct Midstream {
    /// The route asked for, then its fallbacks.
    chain: Vec<Arc<ModelRoute>>,
    /// The one serving now.
    serving: usize,
    /// The conversation as the client sent it.
    request: GenRequest,
    calls_left: u32,
    refused: Vec<bool>,
    /// The answer's text so far, as the client has it.
    answer: String,
    /// The answer outgrew [`MAX_ANSWER`], or a chunk carried calls beside
    /// other parts: a failure now ends the answer.
    not_continuable: bool,
    /// Answer and reasoning events relayed: a seam's `after_tokens`.
    outputs: u32,
    /// The usage of the calls that were cut, as counted here.
    spent: Usage,
    /// Where the current call's text began in `answer`, and its prompt.
    call_from: usize,
    call_prompt: u32,
    calls: HeldCalls,
    /// The seam's repeat filter, until it has decided.
    overlap: Option<Overlap>,
    /// Events ready for the relay.
    ready: VecDeque<TokenEvent>,
    /// The request's trace context (its span, when tracing is on): the
    /// continuation's attempts are spans under it.
    trace: opentelemetry::Context,
}

impl Midstream {
    /// For an answer served by `chain[serving]`.
    pub fn new(chain: Vec<Arc<ModelRoute>>, serving: usize, request: GenRequest) -> Midstream {
        let calls_left = chain.first().map_or(0, |route| route.midstream_attempts);
        let call_prompt = tokenizer::prompt_tokens(&request.messages);
        Midstream {
            refused: vec![false; chain.len()],
            chain,
            serving,
            request,
            calls_left,
            answer: String::new(),
            not_continuable: false,
            outputs: 0,
            spent: Usage::default(),
            call_from: 0,
            call_prompt,
            calls: HeldCalls::default(),
            overlap: None,
            ready: VecDeque::new(),
            // `choose` runs in the request's context.
            trace: opentelemetry::Context::current(),
        }
    }

    /// The next event ready for the relay.
    pub fn pop(&mut self) -> Option<TokenEvent> {
        self.ready.pop_front()
    }

    /// Takes the serving call's next event: what it makes ready, or the
    /// failure to continue after.
    pub fn take(&mut self, event: TokenEvent) -> Option<UpstreamError> {
        if !matches!(event, TokenEvent::Token(_)) {
            self.settle_overlap();
        }
        match event {
            TokenEvent::Token(text) => {
                let text = match &mut self.overlap {
                    Some(overlap) => match overlap.push(&text) {
                        Some(kept) => {
                            self.overlap = None;
                            kept
                        }
                        None => return None,
                    },
                    None => text,
                };
                self.text(text);
            }
            TokenEvent::Reasoning(_) => {
                self.outputs += 1;
                self.ready.push_back(event);
            }
            TokenEvent::ToolCalls(deltas) => {
                if let Some(whole) = self.calls.take(&deltas) {
                    self.ready.push_back(TokenEvent::ToolCalls(whole));
                }
            }
            TokenEvent::Delta(delta) => {
                if delta.tool_calls().is_some() {
                    self.not_continuable = true;
                }
                if let Some(text) = delta.content() {
                    self.keep(text);
                }
                self.outputs += 1;
                self.ready.push_back(TokenEvent::Delta(delta));
            }
            TokenEvent::Done(mut finish) => {
                if let Some(whole) = self.calls.finish() {
                    self.ready.push_back(TokenEvent::ToolCalls(whole));
                }
                finish.usage = sum(self.spent, finish.usage);
                self.ready.push_back(TokenEvent::Done(finish));
            }
            TokenEvent::Error(err) if self.continues_after(&err) => return Some(err),
            TokenEvent::Signature(_)
            | TokenEvent::Error(_)
            | TokenEvent::Cut
            | TokenEvent::Fault(_)
            | TokenEvent::Continued(_) => self.ready.push_back(event),
        }
        None
    }

    /// Whether `err`, ending the serving call, is continued.
    pub fn continues_after(&self, err: &UpstreamError) -> bool {
        let broke = match err {
            UpstreamError::Transport(_)
            | UpstreamError::Stream(_)
            | UpstreamError::Malformed(_)
            | UpstreamError::IdleTimeout(_)
            | UpstreamError::MockStatus { .. } => true,
            // Out of time, or failures a second call would meet again.
            UpstreamError::TotalTimeout(_)
            | UpstreamError::ContentPolicy(_)
            | UpstreamError::ContextLength(_)
            | UpstreamError::Status { .. }
            | UpstreamError::NoRecording(_)
            | UpstreamError::ConnectTimeout(_)
            | UpstreamError::FirstTokenTimeout(_) => false,
        };
        broke && !self.not_continuable && self.calls_left > 0
    }

    /// Asks for the continuation after `failure` of the serving call, whose
    /// deadlines were `deadlines`; the cut call's usage is counted now.
    pub fn ask(&mut self, failure: UpstreamError, deadlines: &Deadlines) -> Continuing {
        self.settle_overlap();
        let produced = tokenizer::count(&self.answer[self.call_from..]);
        self.spent = sum(self.spent, Usage::new(self.call_prompt, produced));
        self.calls.drop_held();
        let order = self.order();
        let routes: Vec<(usize, Arc<ModelRoute>, GenRequest)> = order
            .into_iter()
            .map(|at| {
                let route = self.chain[at].clone();
                let request = continuation(&self.request, &self.answer, route.kind);
                (at, route, request)
            })
            .collect();
        if let Some((_, _, request)) = routes.first() {
            self.call_prompt = tokenizer::prompt_tokens(&request.messages);
        }
        let deadlines = deadlines.clone();
        tracing::warn!(
            model = %self.chain[self.serving].name, reason = %failure,
            after_tokens = self.outputs, "upstream failed mid-answer; asking for a continuation"
        );
        let asking = async move {
            let mut asked = Asked {
                served: None,
                calls: 0,
                refused: Vec::new(),
                failure,
            };
            for (at, route, request) in routes {
                asked.calls += 1;
                let call = try_once(&route, request, deadlines.continuing(Instant::now()));
                let (total, out_of_time) = deadlines.total();
                let tried = match tokio::time::timeout_at(total, call).await {
                    Ok(tried) => tried,
                    Err(_) => Err(out_of_time),
                };
                match tried {
                    Ok(serving) => {
                        asked.served = Some((at, serving));
                        break;
                    }
                    Err(err) => {
                        count_error(&route.configured, &err);
                        tracing::warn!(model = %route.name, reason = %err, "a continuation failed");
                        if is_refusal(&err) {
                            asked.refused.push(at);
                        }
                        if matches!(err, UpstreamError::TotalTimeout(_)) {
                            break;
                        }
                    }
                }
            }
            asked
        };
        Box::pin(opentelemetry::trace::FutureExt::with_context(
            asking,
            self.trace.clone(),
        ))
    }

    /// Takes what the continuation's calls came to: the serving call from
    /// here, or the error the answer ends with.
    pub fn asked(&mut self, asked: Asked) -> Result<Attempt, UpstreamError> {
        self.calls_left = self.calls_left.saturating_sub(asked.calls);
        for at in asked.refused {
            self.refused[at] = true;
        }
        let Some((at, serving)) = asked.served else {
            return Err(asked.failure);
        };
        self.serving = at;
        self.call_from = self.answer.len();
        let reason = asked.failure.kind_name();
        self.trace.span().add_event(
            "continued",
            vec![
                KeyValue::new("sluice.after_tokens", i64::from(self.outputs)),
                KeyValue::new("gen_ai.response.model", serving.model.clone()),
                KeyValue::new("sluice.reason", reason),
            ],
        );
        metrics::counter!(crate::metrics::CONTINUATIONS, "model" => self.chain[0].configured.clone(), "reason" => reason)
            .increment(1);
        self.ready.push_back(TokenEvent::Continued(Seam {
            after_tokens: self.outputs,
            model: serving.model.clone(),
            reason: reason.to_owned(),
        }));
        self.overlap = Some(Overlap::new(&self.answer));
        self.calls.continuing();
        Ok(serving)
    }

    /// The routes to ask, in order: the serving one, then the chain from its
    /// start, round again while calls are left, skipping those that refused.
    fn order(&self) -> Vec<usize> {
        let mut candidates = vec![self.serving];
        candidates.extend((0..self.chain.len()).filter(|at| *at != self.serving));
        candidates.retain(|at| !self.refused[*at]);
        if candidates.is_empty() {
            return Vec::new();
        }
        (0..self.calls_left as usize)
            .map(|n| candidates[n % candidates.len()])
            .collect()
    }

    /// Text for the client: kept, and ready.
    fn text(&mut self, text: String) {
        if text.is_empty() {
            return;
        }
        self.keep(&text);
        self.outputs += 1;
        self.ready.push_back(TokenEvent::Token(text));
    }

    fn keep(&mut self, text: &str) {
        if self.answer.len() + text.len() > MAX_ANSWER {
            self.not_continuable = true;
            return;
        }
        self.answer.push_str(text);
    }

    /// A non-text event ends the seam's wait: what it held is decided.
    fn settle_overlap(&mut self) {
        if let Some(overlap) = self.overlap.take() {
            let kept = overlap.finish();
            self.text(kept);
        }
    }
}

/// The usage of two calls together.
fn sum(a: Usage, b: Usage) -> Usage {
    let reasoning = match (a.reasoning_tokens, b.reasoning_tokens) {
        (None, None) => None,
        (x, y) => Some(x.unwrap_or(0).saturating_add(y.unwrap_or(0))),
    };
    Usage::new(
        a.prompt_tokens.saturating_add(b.prompt_tokens),
        a.completion_tokens.saturating_add(b.completion_tokens),
    )
    .with_reasoning(reasoning)
}

/// A refusal of the continuation itself: a 4xx.
fn is_refusal(err: &UpstreamError) -> bool {
    match err {
        UpstreamError::Status { status, .. } | UpstreamError::MockStatus { status, .. } => {
            (400..500).contains(status) && *status != 429
        }
        UpstreamError::ContentPolicy(_) | UpstreamError::ContextLength(_) => true,
        UpstreamError::Transport(_)
        | UpstreamError::Stream(_)
        | UpstreamError::Malformed(_)
        | UpstreamError::NoRecording(_)
        | UpstreamError::ConnectTimeout(_)
        | UpstreamError::FirstTokenTimeout(_)
        | UpstreamError::IdleTimeout(_)
        | UpstreamError::TotalTimeout(_) => false,
    }
}

/// For the fuzz targets (`sluice::fuzzing`): `pieces` of a continuation
/// after `answer` through the repeat filter, as the relay feeds it; what is
/// kept is the continuation less a prefix no longer than a repeat can be.
#[cfg(feature = "fuzzing")]
pub fn fuzz_seam(answer: &str, pieces: &[&str]) {
    let kept = overlap::kept(answer, pieces);
    let whole: String = pieces.concat();
    assert!(whole.ends_with(&kept), "only a prefix is dropped");
    let dropped = whole[..whole.len() - kept.len()].chars().count();
    let trailing = answer
        .chars()
        .rev()
        .take_while(|c| c.is_whitespace())
        .count();
    assert!(
        dropped <= overlap::MAX_REPEAT.max(trailing),
        "{dropped} characters dropped"
    );
}

#[cfg(test)]
mod tests;
