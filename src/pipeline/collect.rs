//! Non-streaming answers: the serving generation run to its end and gathered
//! into its text, tool calls and finish, for a door to build one object from.
//! The same deadlines and shutdown grace as a stream, with no frames.

use std::future::Future;

use serde_json::{json, Value};
use tokio::time::{sleep_until, Instant};
use tokio_util::sync::CancellationToken;

use super::failover::Serving;
use super::source::{Next, Source};
use crate::error::ApiError;
use crate::generation::{
    merge_tool_calls, ChunkDelta, FaultEvent, Finish, TokenEvent, UpstreamError,
};
use crate::generations::{Entry, Log};
use crate::observe::{Ended, StreamMeter};

/// A finished generation.
pub struct Collected {
    /// The model that served (a fallback, perhaps).
    pub served_by: String,
    pub content: String,
    /// The reasoning, apart from the answer.
    pub reasoning: String,
    /// The signature of the reasoning, when the provider gave one (Anthropic).
    pub signature: Option<String>,
    /// Tool calls assembled from their deltas, in index order.
    pub tool_calls: Vec<Value>,
    /// What an OpenAI-compatible upstream sent besides: a refusal's text, a
    /// legacy `function_call`, and the content's `logprobs` entries.
    pub extras: Extras,
    pub finish: Finish,
}

/// Delta fields only the OpenAI door's objects carry.
#[derive(Debug, Default)]
pub struct Extras {
    pub refusal: Option<String>,
    pub function_call: Option<Value>,
    /// `logprobs.content` entries, in order; `None` when no chunk had any.
    pub logprobs: Option<Vec<Value>>,
}

impl Extras {
    fn merge(&mut self, delta: &ChunkDelta) {
        if let Some(refusal) = delta.refusal() {
            self.refusal
                .get_or_insert_with(String::new)
                .push_str(refusal);
        }
        if let Some(call) = delta.delta.get("function_call").and_then(Value::as_object) {
            let whole = self
                .function_call
                .get_or_insert_with(|| json!({"name": "", "arguments": ""}));
            for key in ["name", "arguments"] {
                if let Some(piece) = call.get(key).and_then(Value::as_str) {
                    let joined = whole[key].as_str().unwrap_or("").to_owned() + piece;
                    whole[key] = Value::from(joined);
                }
            }
        }
        if let Some(entries) = delta
            .logprobs
            .as_ref()
            .and_then(|l| l.get("content"))
            .and_then(Value::as_array)
        {
            self.logprobs
                .get_or_insert_with(Vec::new)
                .extend(entries.iter().cloned());
        }
    }
}

/// Runs the chosen generation to its end. Any failure is the response's
/// error, since nothing has been sent yet.
pub async fn collect(
    choice: impl Future<Output = Result<Serving, UpstreamError>>,
    mut meter: StreamMeter,
    shutdown: CancellationToken,
) -> Result<Collected, ApiError> {
    let result = tokio::select! {
        result = gather(choice, &mut meter) => result,
        () = shutdown.cancelled() => Err(ApiError::shutting_down()),
    };
    meter.end(match &result {
        Ok(_) => Ended::Done,
        Err(err) => Ended::Error(err.kind),
    });
    result
}

async fn gather(
    choice: impl Future<Output = Result<Serving, UpstreamError>>,
    meter: &mut StreamMeter,
) -> Result<Collected, ApiError> {
    let serving = choice.await?;
    let model = serving.model.clone();
    meter.serving(&model);
    let mut source = Source::from(serving);
    let mut content = String::new();
    let mut reasoning = String::new();
    let mut signature = None;
    let mut tool_calls = Vec::new();
    let mut extras = Extras::default();
    // One timer, moved on lazily, as in the relay.
    let timer = sleep_until(source.next_due(None));
    tokio::pin!(timer);
    loop {
        let event = tokio::select! {
            next = source.next() => match next {
                Next::Chosen => continue,
                Next::Event(event) => event,
            },
            () = &mut timer => match source.passed(Instant::now()) {
                Some(err) => TokenEvent::Error(err),
                None => {
                    timer.as_mut().reset(source.next_due(None));
                    continue;
                }
            },
        };
        match event {
            TokenEvent::Token(token) => {
                meter.token();
                content.push_str(&token);
            }
            TokenEvent::Reasoning(text) => reasoning.push_str(&text),
            TokenEvent::Signature(text) => signature = Some(text),
            TokenEvent::ToolCalls(deltas) => merge_tool_calls(&mut tool_calls, &deltas),
            TokenEvent::Delta(delta) => {
                if let Some(text) = delta.reasoning() {
                    reasoning.push_str(text);
                }
                if let Some(text) = delta.content() {
                    meter.token();
                    content.push_str(text);
                }
                if let Some(calls) = delta.tool_calls() {
                    merge_tool_calls(&mut tool_calls, calls);
                }
                extras.merge(&delta);
            }
            TokenEvent::Continued(_) => meter.continued(),
            TokenEvent::Done(finish) => {
                meter.finished(&finish);
                return Ok(Collected {
                    served_by: model,
                    content,
                    reasoning,
                    signature,
                    tool_calls,
                    extras,
                    finish,
                });
            }
            TokenEvent::Error(err) => {
                source.count_error(&err);
                return Err(err.into());
            }
            TokenEvent::Cut => {
                return Err(UpstreamError::Stream("the generation was cut off".into()).into())
            }
            // A whole answer has no frames to break.
            TokenEvent::Fault(FaultEvent::Malformed) => {}
            TokenEvent::Fault(FaultEvent::Unterminated) => {
                return Err(UpstreamError::ended_early().into())
            }
            TokenEvent::Fault(fault @ (FaultEvent::Hang | FaultEvent::Reset)) => {
                if fault == FaultEvent::Reset {
                    crate::warden::cut_here();
                }
                // No answer until the client gives up or `total_ms` passes.
                if let Some((total, err)) = source.total() {
                    tokio::time::sleep_until(total).await;
                    return Err(err.into());
                }
                return Err(UpstreamError::ended_early().into());
            }
        }
        source.on_output(Instant::now());
    }
}

/// A generation's log read into a whole answer, frame by frame as they
/// come: what it holds so far (a background response's output while it
/// runs), and how it ended. What the log does not keep (a refusal,
/// `logprobs`) is not in it.
#[derive(Default)]
pub struct Reading {
    after: Option<u64>,
    pub content: String,
    pub reasoning: String,
    pub signature: Option<String>,
    pub tool_calls: Vec<Value>,
    /// How it ended, once it has.
    pub end: Option<Result<Finish, ApiError>>,
}

impl Reading {
    /// Reads the frames the log holds past those read before; true once
    /// the terminal frame is read.
    pub fn read(&mut self, log: &Log) -> Result<bool, ApiError> {
        while self.end.is_none() {
            let read = log.read(self.after).map_err(|gone| {
                ApiError::new(
                    crate::error::ErrorKind::NotFound,
                    format!(
                        "the answer is no longer whole: its log starts at frame {} (streams.max_log_bytes)",
                        gone.first_kept
                    ),
                )
            })?;
            let count = read.entries.len() as u64;
            for entry in read.entries {
                match entry {
                    Entry::Token(text) => self.content.push_str(&text),
                    Entry::Reasoning(text) => self.reasoning.push_str(&text),
                    Entry::Signature(text) => self.signature = Some(text),
                    // A whole answer has no frames to break.
                    Entry::Malformed | Entry::Continued(_) => {}
                    Entry::ToolCalls(deltas) => merge_tool_calls(&mut self.tool_calls, &deltas),
                    Entry::Done(finish) => self.end = Some(Ok(finish)),
                    Entry::Error(err) => self.end = Some(Err(err)),
                }
            }
            if count > 0 {
                self.after = Some(read.first + count - 1);
            }
            if read.ended && self.end.is_none() {
                return Err(ApiError::new(
                    crate::error::ErrorKind::Internal,
                    "the generation's log ended with no terminal frame",
                ));
            }
            if !read.more {
                break;
            }
        }
        Ok(self.end.is_some())
    }

    /// The answer as one, finished with `finish` (its own, or the usage so
    /// far for one still running), served by `served_by`.
    pub fn collected(self, served_by: String, finish: Finish) -> Collected {
        Collected {
            served_by,
            content: self.content,
            reasoning: self.reasoning,
            signature: self.signature,
            tool_calls: self.tool_calls,
            extras: Extras::default(),
            finish,
        }
    }
}

/// A generation read back from its log once it has ended (an idempotent
/// request's answer, or its repeat's); `Err` with its error when it failed.
pub async fn from_log(log: &Log) -> Result<Collected, ApiError> {
    let mut reading = Reading::default();
    loop {
        let changed = log.changed();
        reading.read(log)?;
        match reading.end.take() {
            Some(Ok(finish)) => return Ok(reading.collected(log.model(), finish)),
            Some(Err(err)) => return Err(err),
            None => changed.await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_call_deltas_merge_into_whole_calls() {
        let mut calls = Vec::new();
        merge_tool_calls(
            &mut calls,
            &json!([{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]),
        );
        merge_tool_calls(
            &mut calls,
            &json!([{"index":0,"function":{"arguments":"{\"city\":"}}]),
        );
        merge_tool_calls(
            &mut calls,
            &json!([{"index":0,"function":{"arguments":"\"Oslo\"}"}}]),
        );
        assert_eq!(
            calls,
            vec![
                json!({"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}})
            ]
        );
    }
}
