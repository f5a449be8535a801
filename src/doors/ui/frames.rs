//! The AI SDK's UI message stream (header `x-vercel-ai-ui-message-stream:
//! v1`): SSE `data:` lines of JSON chunks, each with its `type`, ending
//! with `data: [DONE]`.
//!
//! One answer is one message in one step: `start` (its `messageId`) and
//! `start-step`; text as `text-start`, one `text-delta` per token,
//! `text-end`; reasoning the same way with `reasoning-*`; a tool call as
//! `tool-input-start`, its arguments in `tool-input-delta`s, and at the end
//! `tool-input-available` with the parsed input; then `finish-step` and
//! `finish` (`finishReason`, and the model and usage as `messageMetadata`).
//! A failure is an `error` chunk (`errorText`, what `useChat` shows as its
//! `error`); a generation stopped by `DELETE` ends with the SDK's own
//! `abort` chunk.

use bytes::Bytes;
use serde_json::{json, Value};

use crate::doors::calls::Calls;
use crate::error::ApiError;
use crate::generation::Finish;
use crate::generations::CANCELLED;
use crate::pipeline::framer::Framer;

/// The header that tells the AI SDK the body is a UI message stream.
pub const STREAM_HEADER: &str = "x-vercel-ai-ui-message-stream";

/// The part open now, which the next other part closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(u32),
    Reasoning(u32),
}

/// The UI door's framer.
pub struct UiChunks {
    message_id: String,
    model: String,
    open: Option<Open>,
    /// Parts opened so far, for their ids (`text-0`, `reasoning-1`, ...).
    parts: u32,
    calls: Calls,
}

impl UiChunks {
    /// The frames of the assistant message `message_id`: the same id on
    /// every view of one generation, so a resumed stream replaces the
    /// message a page already shows rather than adding one.
    pub fn new(message_id: String, model: String) -> UiChunks {
        UiChunks {
            message_id,
            model,
            open: None,
            parts: 0,
            calls: Calls::default(),
        }
    }

    /// Opens a text or reasoning part unless it is the one open.
    fn open(&mut self, out: &mut Vec<u8>, reasoning: bool) -> String {
        match (self.open, reasoning) {
            (Some(Open::Text(n)), false) => return format!("text-{n}"),
            (Some(Open::Reasoning(n)), true) => return format!("reasoning-{n}"),
            (Some(Open::Text(_) | Open::Reasoning(_)) | None, _) => {}
        }
        self.close(out);
        let n = self.parts;
        self.parts += 1;
        let (open, id, kind) = match reasoning {
            false => (Open::Text(n), format!("text-{n}"), "text-start"),
            true => (
                Open::Reasoning(n),
                format!("reasoning-{n}"),
                "reasoning-start",
            ),
        };
        self.open = Some(open);
        chunk(out, &json!({"type": kind, "id": id}));
        id
    }

    fn close(&mut self, out: &mut Vec<u8>) {
        match self.open.take() {
            Some(Open::Text(n)) => {
                chunk(out, &json!({"type": "text-end", "id": format!("text-{n}")}))
            }
            Some(Open::Reasoning(n)) => chunk(
                out,
                &json!({"type": "reasoning-end", "id": format!("reasoning-{n}")}),
            ),
            None => {}
        }
    }

    fn delta(&mut self, text: &str, reasoning: bool) -> Bytes {
        let mut out = Vec::with_capacity(text.len() + 64);
        let id = self.open(&mut out, reasoning);
        let kind = match reasoning {
            false => "text-delta",
            true => "reasoning-delta",
        };
        chunk(&mut out, &json!({"type": kind, "id": id, "delta": text}));
        Bytes::from(out)
    }
}

/// One `data:` line and its blank line.
fn chunk(out: &mut Vec<u8>, value: &Value) {
    out.extend_from_slice(b"data: ");
    serde_json::to_writer(&mut *out, value).expect("JSON serialises");
    out.extend_from_slice(b"\n\n");
}

const DONE: &[u8] = b"data: [DONE]\n\n";

/// The AI SDK's finish reasons, from OpenAI's.
fn finish_reason(reason: &str) -> &'static str {
    match reason {
        "stop" => "stop",
        "length" => "length",
        "tool_calls" => "tool-calls",
        "content_filter" => "content-filter",
        _ => "other",
    }
}

impl Framer for UiChunks {
    fn preamble(&mut self) -> Option<Bytes> {
        let mut out = Vec::new();
        chunk(
            &mut out,
            &json!({"type": "start", "messageId": self.message_id}),
        );
        chunk(&mut out, &json!({"type": "start-step"}));
        Some(Bytes::from(out))
    }

    fn token(&mut self, token: &str) -> Bytes {
        self.delta(token, false)
    }

    fn reasoning(&mut self, text: &str) -> Bytes {
        self.delta(text, true)
    }

    fn tool_calls(&mut self, calls: &Value) -> Option<Bytes> {
        let mut out = Vec::new();
        for delta in calls.as_array().into_iter().flatten() {
            let Some(fed) = self.calls.feed(delta) else {
                continue;
            };
            let call = self.calls.get(fed.call);
            let id = call.id.clone();
            if fed.new {
                let name = call.name.clone();
                self.close(&mut out);
                chunk(
                    &mut out,
                    &json!({"type": "tool-input-start", "toolCallId": id, "toolName": name}),
                );
            }
            if !fed.piece.is_empty() {
                chunk(
                    &mut out,
                    &json!({"type": "tool-input-delta", "toolCallId": id, "inputTextDelta": fed.piece}),
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
        for call in self.calls.all() {
            chunk(
                &mut out,
                &json!({"type": "tool-input-available", "toolCallId": call.id,
                    "toolName": call.name, "input": call.input()}),
            );
        }
        chunk(&mut out, &json!({"type": "finish-step"}));
        if finish.finish_reason == CANCELLED {
            chunk(&mut out, &json!({"type": "abort", "reason": CANCELLED}));
        } else {
            let usage = finish.usage;
            chunk(
                &mut out,
                &json!({"type": "finish", "finishReason": finish_reason(&finish.finish_reason),
                "messageMetadata": {
                    "model": self.model,
                    "finishReason": finish.finish_reason,
                    "usage": {
                        "inputTokens": usage.prompt_tokens,
                        "outputTokens": usage.completion_tokens,
                        "totalTokens": usage.total_tokens,
                        "reasoningTokens": usage.reasoning_tokens,
                    },
                }}),
            );
        }
        out.extend_from_slice(DONE);
        Bytes::from(out)
    }

    fn error(&mut self, error: &ApiError) -> Bytes {
        let mut out = Vec::new();
        chunk(
            &mut out,
            &json!({"type": "error", "errorText": error.to_string()}),
        );
        out.extend_from_slice(DONE);
        Bytes::from(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generation::Usage;

    fn chunks(frames: &[Bytes]) -> Vec<Value> {
        let text: String = frames
            .iter()
            .map(|f| String::from_utf8(f.to_vec()).unwrap())
            .collect();
        text.split_terminator("\n\n")
            .map(|frame| frame.strip_prefix("data: ").unwrap())
            .filter(|data| *data != "[DONE]")
            .map(|data| serde_json::from_str(data).unwrap())
            .collect()
    }

    #[test]
    fn reasoning_text_and_a_tool_call_are_parts_of_one_step() {
        let mut ui = UiChunks::new("msg_1".into(), "mock".into());
        let frames = vec![
            ui.preamble().unwrap(),
            ui.reasoning("hmm"),
            ui.token("Hi"),
            ui.token("!"),
            ui.tool_calls(&json!([{"index": 0, "id": "call_1", "function": {"name": "f", "arguments": "{\"a\""}}]))
                .unwrap(),
            ui.tool_calls(&json!([{"index": 0, "function": {"arguments": ":1}"}}]))
                .unwrap(),
            ui.done(&Finish::new("tool_calls", Usage::new(3, 4))),
        ];
        let types: Vec<String> = chunks(&frames)
            .iter()
            .map(|c| c["type"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(
            types,
            [
                "start",
                "start-step",
                "reasoning-start",
                "reasoning-delta",
                "reasoning-end",
                "text-start",
                "text-delta",
                "text-delta",
                "text-end",
                "tool-input-start",
                "tool-input-delta",
                "tool-input-delta",
                "tool-input-available",
                "finish-step",
                "finish",
            ]
        );
        let all = chunks(&frames);
        assert_eq!(all[12]["input"], json!({"a": 1}));
        assert_eq!(all[14]["finishReason"], "tool-calls");
        assert_eq!(all[14]["messageMetadata"]["usage"]["outputTokens"], 4);
        assert!(frames.last().unwrap().ends_with(b"data: [DONE]\n\n"));
    }
}
