//! AG-UI's events as SSE `data:` lines: `RUN_STARTED`; the answer as one
//! text message (`TEXT_MESSAGE_START`, one `TEXT_MESSAGE_CONTENT` per
//! token, `TEXT_MESSAGE_END`); reasoning as a reasoning span with its
//! message (`REASONING_START`, `REASONING_MESSAGE_START`, `..._CONTENT`,
//! `..._END`, `REASONING_END`); each call of a frontend tool as
//! `TOOL_CALL_START`, `TOOL_CALL_ARGS` pieces and `TOOL_CALL_END`; then
//! `RUN_FINISHED` (with the usage; `outcome: cancelled` for a stopped run)
//! or `RUN_ERROR`.
//!
//! AG-UI's verifier (which `HttpAgent` runs) wants every message, span and
//! call closed before the next opens and before `RUN_FINISHED`: this framer
//! closes whatever is open first.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::doors::calls::Calls;
use crate::error::ApiError;
use crate::generation::Finish;
use crate::generations::CANCELLED;
use crate::pipeline::framer::Framer;

/// What is open now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Reasoning,
    /// The call at this position of the answer's calls.
    Call(usize),
}

/// The AG-UI door's framer for one run.
pub struct AgUiEvents {
    thread_id: String,
    run_id: String,
    model: String,
    /// The ids of the answer's messages: `RUN_ID-text-N`, `RUN_ID-reasoning-N`.
    parts: u32,
    open: Option<(Open, String)>,
    /// The message the text and calls belong to, once text opened one.
    message: Option<String>,
    calls: Calls,
}

impl AgUiEvents {
    pub fn new(thread_id: String, run_id: String, model: String) -> AgUiEvents {
        AgUiEvents {
            thread_id,
            run_id,
            model,
            parts: 0,
            open: None,
            message: None,
            calls: Calls::default(),
        }
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        match self.open.take() {
            Some((Open::Text, id)) => {
                event(out, json!({"type": "TEXT_MESSAGE_END", "messageId": id}))
            }
            Some((Open::Reasoning, id)) => {
                event(
                    out,
                    json!({"type": "REASONING_MESSAGE_END", "messageId": id}),
                );
                event(out, json!({"type": "REASONING_END", "messageId": id}));
            }
            Some((Open::Call(call), _)) => {
                let id = &self.calls.get(call).id;
                event(out, json!({"type": "TOOL_CALL_END", "toolCallId": id}));
            }
            None => {}
        }
    }

    /// The id of the text or reasoning message open now, opening it first.
    fn open(&mut self, out: &mut Vec<u8>, want: Open) -> String {
        if let Some((open, id)) = &self.open {
            if *open == want {
                return id.clone();
            }
        }
        self.close(out);
        let n = self.parts;
        self.parts += 1;
        let id = match want {
            Open::Text => {
                let id = format!("{}-text-{n}", self.run_id);
                event(
                    out,
                    json!({"type": "TEXT_MESSAGE_START", "messageId": id, "role": "assistant"}),
                );
                self.message = Some(id.clone());
                id
            }
            Open::Reasoning | Open::Call(_) => {
                let id = format!("{}-reasoning-{n}", self.run_id);
                event(out, json!({"type": "REASONING_START", "messageId": id}));
                event(
                    out,
                    json!({"type": "REASONING_MESSAGE_START", "messageId": id, "role": "reasoning"}),
                );
                id
            }
        };
        self.open = Some((want, id.clone()));
        id
    }

    fn content(&mut self, text: &str, want: Open) -> Bytes {
        // AG-UI refuses an empty delta.
        if text.is_empty() {
            return Bytes::new();
        }
        let mut out = Vec::with_capacity(text.len() + 96);
        let id = self.open(&mut out, want);
        let kind = match want {
            Open::Text => "TEXT_MESSAGE_CONTENT",
            Open::Reasoning | Open::Call(_) => "REASONING_MESSAGE_CONTENT",
        };
        event(
            &mut out,
            json!({"type": kind, "messageId": id, "delta": text}),
        );
        Bytes::from(out)
    }

    fn usage(&self, finish: &Finish) -> Value {
        let usage = finish.usage;
        json!([{
            "model": self.model,
            "inputTokens": usage.prompt_tokens,
            "outputTokens": usage.completion_tokens,
            "totalTokens": usage.total_tokens,
        }])
    }
}

/// One event as a `data:` line and its blank line.
fn event(out: &mut Vec<u8>, value: Value) {
    out.extend_from_slice(b"data: ");
    serde_json::to_writer(&mut *out, &value).expect("JSON serialises");
    out.extend_from_slice(b"\n\n");
}

impl Framer for AgUiEvents {
    fn preamble(&mut self) -> Option<Bytes> {
        let mut out = Vec::new();
        event(
            &mut out,
            json!({"type": "RUN_STARTED", "threadId": self.thread_id, "runId": self.run_id}),
        );
        Some(Bytes::from(out))
    }

    fn token(&mut self, token: &str) -> Bytes {
        self.content(token, Open::Text)
    }

    fn reasoning(&mut self, text: &str) -> Bytes {
        self.content(text, Open::Reasoning)
    }

    fn tool_calls(&mut self, calls: &Value) -> Option<Bytes> {
        let mut out = Vec::new();
        for delta in calls.as_array().into_iter().flatten() {
            let Some(fed) = self.calls.feed(delta) else {
                continue;
            };
            let open = Open::Call(fed.call);
            let id = self.calls.get(fed.call).id.clone();
            if fed.new {
                self.close(&mut out);
                let mut start = json!({"type": "TOOL_CALL_START", "toolCallId": id,
                    "toolCallName": self.calls.get(fed.call).name});
                if let Some(parent) = &self.message {
                    start["parentMessageId"] = Value::from(parent.clone());
                }
                event(&mut out, start);
                self.open = Some((open, id.clone()));
            } else if self.open.as_ref().map(|(o, _)| *o) != Some(open) {
                tracing::debug!(
                    call = fed.call,
                    "a tool call's piece came after it closed; dropped"
                );
                continue;
            }
            if !fed.piece.is_empty() {
                event(
                    &mut out,
                    json!({"type": "TOOL_CALL_ARGS", "toolCallId": id, "delta": fed.piece}),
                );
            }
        }
        (!out.is_empty()).then(|| Bytes::from(out))
    }

    fn serving(&mut self, model: &str) {
        model.clone_into(&mut self.model);
    }

    fn done(&mut self, finish: &Finish) -> Bytes {
        let mut out = Vec::new();
        self.close(&mut out);
        let mut finished = json!({"type": "RUN_FINISHED", "threadId": self.thread_id,
            "runId": self.run_id, "usage": self.usage(finish)});
        if finish.finish_reason == CANCELLED {
            finished["outcome"] = json!({"type": "cancelled"});
        }
        event(&mut out, finished);
        Bytes::from(out)
    }

    fn error(&mut self, error: &ApiError) -> Bytes {
        let mut out = Vec::new();
        event(
            &mut out,
            json!({"type": "RUN_ERROR", "message": error.to_string(), "code": error.kind.as_str()}),
        );
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generation::Usage;

    fn types(frames: &[Bytes]) -> Vec<String> {
        let text: String = frames
            .iter()
            .map(|f| String::from_utf8(f.to_vec()).unwrap())
            .collect();
        text.split_terminator("\n\n")
            .map(|frame| {
                let data: Value =
                    serde_json::from_str(frame.strip_prefix("data: ").unwrap()).unwrap();
                data["type"].as_str().unwrap().to_owned()
            })
            .collect()
    }

    #[test]
    fn every_message_and_call_is_closed_before_the_run_finishes() {
        let mut agui = AgUiEvents::new("t".into(), "r".into(), "mock".into());
        let frames = vec![
            agui.preamble().unwrap(),
            agui.reasoning("hmm"),
            agui.token("Hi"),
            agui.token(""),
            agui.tool_calls(
                &json!([{"index": 0, "id": "c1", "function": {"name": "f", "arguments": "{}"}}]),
            )
            .unwrap(),
            agui.done(&Finish::new("tool_calls", Usage::new(1, 2))),
        ];
        assert_eq!(
            types(&frames),
            [
                "RUN_STARTED",
                "REASONING_START",
                "REASONING_MESSAGE_START",
                "REASONING_MESSAGE_CONTENT",
                "REASONING_MESSAGE_END",
                "REASONING_END",
                "TEXT_MESSAGE_START",
                "TEXT_MESSAGE_CONTENT",
                "TEXT_MESSAGE_END",
                "TOOL_CALL_START",
                "TOOL_CALL_ARGS",
                "TOOL_CALL_END",
                "RUN_FINISHED",
            ]
        );
    }
}
