//! A fake upstream that fails part way, in all three wire formats
//! (OpenAI's `/v1/chat/completions`, Anthropic's `/v1/messages`, Ollama's
//! `/api/chat`), for section 17's tests.
//!
//! Its answer is always [`ANSWER`], one word a token. The requested model
//! names a behaviour; the fault strikes on the first request for that model
//! only, after [`K`] tokens:
//! - `cut` (the connection breaks), `stall` (silence), `error-event`,
//!   `malformed` (four unparsable events), `reject` (a cut, then a 400 for
//!   every continuation), `malformed-one` (one unparsable event mid-answer,
//!   then the rest), `ok` (no fault);
//! - before any token, on every request: `silent` (no response at all),
//!   `slow-first` (the first token after 1.5 s), `content-filter` and
//!   `context-length` (a 400 of each kind), `status-500` (a 500).
//!
//! It keeps every request's body and `traceparent` header.
//!
//! A request whose last message is the assistant's, holding a prefix of the
//! answer, is a continuation: the fake streams the rest of the answer, in
//! the OpenAI and Ollama formats restating the last word first as models
//! often do (sluice drops the repeat). Any other request is answered from
//! the start, so a continuation sent in the wrong shape (a user message
//! last) shows up as a duplicated answer.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_stream::stream;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::net::TcpListener;

pub const ANSWER: &str = "The quick brown fox jumps over the lazy dog.";
/// Tokens before a fault.
pub const K: usize = 3;
/// What the fake says every call's prompt is.
pub const PROMPT_TOKENS: u64 = 100;

#[derive(Default)]
pub struct Seen {
    /// Every request's body, in order.
    pub bodies: Mutex<Vec<Value>>,
    /// Every request's `traceparent` header, in order.
    pub traceparents: Mutex<Vec<Option<String>>>,
    /// Requests per model.
    counts: Mutex<HashMap<String, usize>>,
    /// Streams dropped before they ended: the caller hung up.
    pub cancelled: AtomicUsize,
}

impl Seen {
    pub fn requests(&self, model: &str) -> usize {
        self.counts.lock().unwrap().get(model).copied().unwrap_or(0)
    }
}

pub struct FakeFlaky {
    pub addr: String,
    pub seen: Arc<Seen>,
}

pub async fn start() -> FakeFlaky {
    let seen = Arc::new(Seen::default());
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(openai))
        .route("/v1/messages", post(anthropic))
        .route("/api/chat", post(ollama))
        .with_state(seen.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    FakeFlaky {
        addr: format!("http://{addr}"),
        seen,
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Wire {
    OpenAi,
    Anthropic,
    Ollama,
}

/// The answer split into tokens, a word (with its leading space) each.
pub fn tokens_of(text: &str) -> Vec<String> {
    let mut tokens: Vec<String> = Vec::new();
    for (i, word) in text.split(' ').enumerate() {
        match i {
            0 if word.is_empty() => {}
            0 => tokens.push(word.to_owned()),
            _ => tokens.push(format!(" {word}")),
        }
    }
    tokens
}

/// What one request is answered with.
struct Plan {
    tokens: Vec<String>,
    /// The fault after the tokens, if any.
    fault: Option<&'static str>,
}

/// Stays alive as long as the response body; dropped early, it counts.
struct Watch(Arc<Seen>, bool);

impl Drop for Watch {
    fn drop(&mut self) {
        if !self.1 {
            self.0.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn openai(
    State(seen): State<Arc<Seen>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    answer(seen, &headers, body, Wire::OpenAi).await
}

async fn anthropic(
    State(seen): State<Arc<Seen>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    answer(seen, &headers, body, Wire::Anthropic).await
}

async fn ollama(
    State(seen): State<Arc<Seen>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    answer(seen, &headers, body, Wire::Ollama).await
}

async fn answer(seen: Arc<Seen>, headers: &HeaderMap, body: Value, wire: Wire) -> Response {
    let traceparent = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    seen.traceparents.lock().unwrap().push(traceparent);
    let model = body["model"].as_str().unwrap_or("ok").to_owned();
    let nth = {
        let mut counts = seen.counts.lock().unwrap();
        let count = counts.entry(model.clone()).or_default();
        *count += 1;
        *count
    };
    seen.bodies.lock().unwrap().push(body.clone());
    let last = body["messages"].as_array().and_then(|m| m.last()).cloned();
    let prefill = last
        .filter(|m| m["role"] == "assistant")
        .and_then(|m| m["content"].as_str().map(str::to_owned));
    match model.as_str() {
        "silent" => {
            std::future::pending::<()>().await;
        }
        "status-500" => {
            let error =
                json!({"error": {"message": "The server had an error", "type": "server_error"}});
            return (StatusCode::INTERNAL_SERVER_ERROR, Json(error)).into_response();
        }
        "content-filter" => {
            let error = json!({"error": {"message": "The response was filtered due to the prompt triggering the content management policy.", "type": null, "param": "prompt", "code": "content_filter", "status": 400}});
            return (StatusCode::BAD_REQUEST, Json(error)).into_response();
        }
        "context-length" => {
            let error = json!({"error": {"message": "This model's maximum context length is 8192 tokens.", "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"}});
            return (StatusCode::BAD_REQUEST, Json(error)).into_response();
        }
        "reject" if prefill.is_some() => {
            let error = json!({"error": {"message": "assistant prefill is not supported", "type": "invalid_request_error"}});
            return (StatusCode::BAD_REQUEST, Json(error)).into_response();
        }
        _ => {}
    }
    let plan = match prefill.filter(|p| ANSWER.starts_with(p.as_str()) && !p.is_empty()) {
        Some(prefill) => {
            let rest = &ANSWER[prefill.len()..];
            let mut tokens = tokens_of(rest);
            let restated = prefill.rfind(' ').map(|at| &prefill[at..]);
            if let (true, Some(word)) = (wire != Wire::Anthropic, restated) {
                tokens.insert(0, word.to_owned());
            }
            Plan {
                tokens,
                fault: None,
            }
        }
        None => {
            let fault = match (model.as_str(), nth) {
                ("cut" | "reject", 1) => Some("cut"),
                ("stall", 1) => Some("stall"),
                ("error-event", 1) => Some("error-event"),
                ("malformed", 1) => Some("malformed"),
                ("malformed-one", _) => Some("malformed-one"),
                _ => None,
            };
            Plan {
                tokens: tokens_of(ANSWER),
                fault,
            }
        }
    };
    let first_wait = match model.as_str() {
        "slow-first" => Duration::from_millis(1500),
        _ => Duration::ZERO,
    };
    let watch = Watch(seen, false);
    let body = stream! {
        let mut watch = watch;
        tokio::time::sleep(first_wait).await;
        if let Some(opening) = opening(wire, &model) {
            yield Ok::<_, std::io::Error>(Bytes::from(opening));
        }
        let sent = plan.tokens.len();
        for (i, token) in plan.tokens.iter().enumerate() {
            if i == K {
                match plan.fault {
                    Some("cut") => {
                        watch.1 = true;
                        yield Err(std::io::Error::other("cut"));
                        return;
                    }
                    Some("stall") => {
                        watch.1 = true;
                        std::future::pending::<()>().await;
                    }
                    Some("error-event") => {
                        watch.1 = true;
                        yield Ok(Bytes::from(error_event(wire)));
                        return;
                    }
                    Some("malformed") => {
                        for _ in 0..4 {
                            yield Ok(Bytes::from(malformed(wire)));
                        }
                        // Nothing more: sluice ends it after the fourth.
                        std::future::pending::<()>().await;
                    }
                    Some("malformed-one") => yield Ok(Bytes::from(malformed(wire))),
                    _ => {}
                }
            }
            yield Ok(Bytes::from(token_event(wire, &model, token)));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        yield Ok(Bytes::from(ending(wire, &model, sent)));
        watch.1 = true;
    };
    let content_type = match wire {
        Wire::Ollama => "application/x-ndjson",
        Wire::OpenAi | Wire::Anthropic => "text/event-stream",
    };
    Response::builder()
        .header("content-type", content_type)
        .body(Body::from_stream(body))
        .unwrap()
}

fn opening(wire: Wire, model: &str) -> Option<String> {
    match wire {
        Wire::OpenAi => Some(format!(
            "data: {}\n\n",
            json!({"id": "c1", "object": "chat.completion.chunk", "model": model,
                "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]})
        )),
        Wire::Anthropic => Some(format!(
            "event: message_start\ndata: {}\n\nevent: content_block_start\ndata: {}\n\n",
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant",
                "model": model, "content": [], "usage": {"input_tokens": PROMPT_TOKENS, "output_tokens": 1}}}),
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
        )),
        Wire::Ollama => None,
    }
}

fn token_event(wire: Wire, model: &str, token: &str) -> String {
    match wire {
        Wire::OpenAi => format!(
            "data: {}\n\n",
            json!({"id": "c1", "object": "chat.completion.chunk", "model": model,
                "choices": [{"index": 0, "delta": {"content": token}, "finish_reason": null}]})
        ),
        Wire::Anthropic => format!(
            "event: content_block_delta\ndata: {}\n\n",
            json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": token}})
        ),
        Wire::Ollama => format!(
            "{}\n",
            json!({"model": model, "message": {"role": "assistant", "content": token}, "done": false})
        ),
    }
}

fn ending(wire: Wire, model: &str, sent: usize) -> String {
    match wire {
        Wire::OpenAi => format!(
            "data: {}\n\ndata: {}\n\ndata: [DONE]\n\n",
            json!({"id": "c1", "object": "chat.completion.chunk", "model": model,
                "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
            json!({"id": "c1", "object": "chat.completion.chunk", "model": model, "choices": [],
                "usage": {"prompt_tokens": PROMPT_TOKENS, "completion_tokens": sent, "total_tokens": PROMPT_TOKENS + sent as u64}})
        ),
        Wire::Anthropic => format!(
            "event: content_block_stop\ndata: {}\n\nevent: message_delta\ndata: {}\n\nevent: message_stop\ndata: {}\n\n",
            json!({"type": "content_block_stop", "index": 0}),
            json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": sent}}),
            json!({"type": "message_stop"})
        ),
        Wire::Ollama => format!(
            "{}\n",
            json!({"model": model, "message": {"role": "assistant", "content": ""}, "done": true,
                "done_reason": "stop", "prompt_eval_count": PROMPT_TOKENS, "eval_count": sent})
        ),
    }
}

fn error_event(wire: Wire) -> String {
    match wire {
        Wire::OpenAi => "data: {\"error\":{\"message\":\"the server had an error mid-stream\",\"type\":\"server_error\"}}\n\n".into(),
        Wire::Anthropic => "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n".into(),
        Wire::Ollama => "{\"error\":\"the runner stopped mid-stream\"}\n".into(),
    }
}

fn malformed(wire: Wire) -> String {
    match wire {
        Wire::OpenAi => "data: {\"choices\":[{\"delta\":\n\n".into(),
        Wire::Anthropic => "event: content_block_delta\ndata: {\"type\":\n\n".into(),
        Wire::Ollama => "{\"message\":\n".into(),
    }
}
