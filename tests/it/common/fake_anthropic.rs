//! A fake Anthropic Messages API: a real HTTP server on 127.0.0.1 streaming
//! the documented SSE events (`message_start`, `content_block_start`, `ping`,
//! `content_block_delta` with `text_delta` or `input_json_delta`,
//! `content_block_stop`, `message_delta` with the stop reason and output
//! usage, `message_stop`, and `error`), each as `event: TYPE` + `data: JSON`.
//!
//! The requested `model` picks a behaviour: `ok`, `max-tokens`, `tool`,
//! `overloaded` (an `overloaded_error` event after two tokens), `status-429`
//! (always, `retry-after: 1`), `once-429` (the first request only), `once-529`,
//! `status-500`, `drip` (a token every 50 ms, for hang-ups), `thinking` (a
//! `thinking` block with `thinking_delta`s and a `signature_delta` before the
//! text, as extended thinking streams it).

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

pub const TEXT: &[&str] = &["Hello", " from", " Claude", "."];
pub const KEY: &str = "sk-ant-api03-SECRETSECRET";
pub const THINKING: &[&str] = &["Let me", " think."];
pub const SIGNATURE: &str = "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pk";

#[derive(Default)]
pub struct Seen {
    pub requests: Mutex<HashMap<String, usize>>,
    pub last_body: Mutex<Option<Value>>,
    pub last_headers: Mutex<Option<HeaderMap>>,
    pub cancelled: AtomicUsize,
}

impl Seen {
    pub fn requests_for(&self, model: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .get(model)
            .copied()
            .unwrap_or(0)
    }
}

pub struct Fake {
    pub base_url: String,
    pub seen: Arc<Seen>,
}

pub async fn start() -> Fake {
    let seen = Arc::new(Seen::default());
    let app = axum::Router::new()
        .route("/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
        .with_state(seen.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Fake {
        base_url: format!("http://{addr}"),
        seen,
    }
}

/// Anthropic's count: 1000 plus the messages, whatever they say; the body
/// is kept for the test to look at.
async fn count_tokens(
    axum::extract::State(seen): axum::extract::State<Arc<Seen>>,
    axum::Json(body): axum::Json<Value>,
) -> axum::Json<Value> {
    let messages = body["messages"].as_array().map_or(0, Vec::len);
    *seen.last_body.lock().unwrap() = Some(body);
    axum::Json(json!({"input_tokens": 1000 + messages}))
}

fn event(kind: &str, data: Value) -> String {
    format!("event: {kind}\ndata: {data}\n\n")
}

fn error_status(status: u16, kind: &str, retry_after: Option<&str>) -> Response {
    let body =
        json!({"type": "error", "error": {"type": kind, "message": format!("{kind} (key {KEY})")}});
    let mut response = (StatusCode::from_u16(status).unwrap(), Json(body)).into_response();
    if let Some(secs) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", secs.parse().unwrap());
    }
    response
}

/// Counts the stream as cancelled if dropped before `finish`.
struct Watch(Arc<Seen>, bool);

impl Watch {
    fn finish(&mut self) {
        self.1 = true;
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if !self.1 {
            self.0.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

async fn messages(
    State(seen): State<Arc<Seen>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let model = body["model"].as_str().unwrap_or("ok").to_owned();
    let count = {
        let mut requests = seen.requests.lock().unwrap();
        let n = requests.entry(model.clone()).or_default();
        *n += 1;
        *n
    };
    *seen.last_body.lock().unwrap() = Some(body.clone());
    *seen.last_headers.lock().unwrap() = Some(headers);
    match (model.as_str(), count) {
        ("status-429", _) | ("once-429", 1) => {
            return error_status(429, "rate_limit_error", Some("1"))
        }
        ("once-529", 1) => return error_status(529, "overloaded_error", None),
        ("status-500", _) => return error_status(500, "api_error", None),
        _ => {}
    }
    let mut watch = Watch(seen, false);
    let stream = stream! {
        let m = model.as_str();
        yield Ok::<_, std::io::Error>(Bytes::from(event("message_start", json!({"type": "message_start", "message": {
            "id": "msg_fake", "type": "message", "role": "assistant", "content": [], "model": m,
            "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 25, "output_tokens": 1}}}))));
        if m == "thinking" {
            yield Ok(Bytes::from(event("content_block_start", json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""}}))));
            for piece in THINKING {
                yield Ok(Bytes::from(event("content_block_delta", json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "thinking_delta", "thinking": piece}}))));
            }
            yield Ok(Bytes::from(event("content_block_delta", json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "signature_delta", "signature": SIGNATURE}}))));
            yield Ok(Bytes::from(event("content_block_stop", json!({"type": "content_block_stop", "index": 0}))));
        }
        let text_index = if m == "thinking" { 1 } else { 0 };
        if m == "tool" {
            yield Ok(Bytes::from(event("content_block_start", json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "tool_use", "id": "toolu_01", "name": "get_weather", "input": {}}}))));
            for piece in ["{\"city\":", " \"Oslo\"}"] {
                yield Ok(Bytes::from(event("content_block_delta", json!({"type": "content_block_delta", "index": 0,
                    "delta": {"type": "input_json_delta", "partial_json": piece}}))));
            }
            yield Ok(Bytes::from(event("content_block_stop", json!({"type": "content_block_stop", "index": 0}))));
        } else {
            yield Ok(Bytes::from(event("content_block_start", json!({"type": "content_block_start", "index": text_index,
                "content_block": {"type": "text", "text": ""}}))));
            yield Ok(Bytes::from(event("ping", json!({"type": "ping"}))));
            let rounds = if m == "drip" { 1000 } else { 1 };
            let mut sent = 0;
            for _ in 0..rounds {
                for text in TEXT {
                    tokio::time::sleep(Duration::from_millis(if m == "drip" { 50 } else { 2 })).await;
                    yield Ok(Bytes::from(event("content_block_delta", json!({"type": "content_block_delta", "index": text_index,
                        "delta": {"type": "text_delta", "text": text}}))));
                    sent += 1;
                    if m == "overloaded" && sent == 2 {
                        yield Ok(Bytes::from(event("error", json!({"type": "error",
                            "error": {"type": "overloaded_error", "message": format!("Overloaded (key {KEY})")}}))));
                        watch.finish();
                        return;
                    }
                }
            }
            yield Ok(Bytes::from(event("content_block_stop", json!({"type": "content_block_stop", "index": text_index}))));
        }
        let stop_reason = match m { "max-tokens" => "max_tokens", "tool" => "tool_use", _ => "end_turn" };
        yield Ok(Bytes::from(event("message_delta", json!({"type": "message_delta",
            "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": {"output_tokens": 15}}))));
        yield Ok(Bytes::from(event("message_stop", json!({"type": "message_stop"}))));
        watch.finish();
    };
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}
