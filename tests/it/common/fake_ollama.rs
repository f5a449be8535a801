//! A fake Ollama server: `POST /api/chat` streaming NDJSON as Ollama
//! documents it: lines with `message.content` and `done: false`, then a last
//! line with `done: true`, `done_reason`, `prompt_eval_count` and `eval_count`.
//!
//! The requested `model` picks a behaviour: `ok`, `length`, `error-line` (an
//! `{"error": ...}` line after two tokens), `status-500`, `not-found` (404
//! with Ollama's error body), `once-503` (the first request only),
//! `thinking` (lines with `message.thinking` before the content, as Ollama
//! 0.9+ streams a thinking model).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_stream::stream;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::net::TcpListener;

pub const TEXT: &[&str] = &["The", " sky", " is", " blue", "."];
pub const THINKING: &[&str] = &["Sky", " colour", "?"];

#[derive(Default)]
pub struct Seen {
    pub requests: Mutex<HashMap<String, usize>>,
    pub last_body: Mutex<Option<Value>>,
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
        .route("/api/chat", post(chat))
        .with_state(seen.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Fake {
        base_url: format!("http://{addr}"),
        seen,
    }
}

fn line(model: &str, content: &str) -> String {
    let line = json!({"model": model, "created_at": "2026-11-24T08:52:19.385406455Z",
        "message": {"role": "assistant", "content": content}, "done": false});
    format!("{line}\n")
}

async fn chat(State(seen): State<Arc<Seen>>, Json(body): Json<Value>) -> Response {
    let model = body["model"].as_str().unwrap_or("ok").to_owned();
    let count = {
        let mut requests = seen.requests.lock().unwrap();
        let n = requests.entry(model.clone()).or_default();
        *n += 1;
        *n
    };
    *seen.last_body.lock().unwrap() = Some(body.clone());
    match (model.as_str(), count) {
        ("status-500", _) | ("once-503", 1) => {
            let status = if model == "status-500" { 500 } else { 503 };
            return (
                StatusCode::from_u16(status).unwrap(),
                Json(json!({"error": "llama runner process has terminated"})),
            )
                .into_response();
        }
        ("not-found", _) => {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "model \"not-found\" not found, try pulling it first"})),
            )
                .into_response();
        }
        _ => {}
    }
    let stream = stream! {
        let m = model.as_str();
        if m == "thinking" {
            for thought in THINKING {
                let l = json!({"model": m, "created_at": "2026-11-24T08:52:19Z",
                    "message": {"role": "assistant", "content": "", "thinking": thought}, "done": false});
                yield Ok::<_, std::io::Error>(Bytes::from(format!("{l}\n")));
            }
        }
        for (i, text) in TEXT.iter().enumerate() {
            tokio::time::sleep(Duration::from_millis(2)).await;
            // Lines split at odd places across writes, as TCP may deliver them.
            let l = line(m, text);
            let (a, b) = l.split_at(l.len() / 2);
            yield Ok::<_, std::io::Error>(Bytes::from(a.to_owned()));
            yield Ok(Bytes::from(b.to_owned()));
            if m == "error-line" && i == 1 {
                yield Ok(Bytes::from(format!("{}\n", json!({"error": "an error was encountered while running the model"}))));
                return;
            }
        }
        let done_reason = if m == "length" { "length" } else { "stop" };
        let last = json!({"model": m, "created_at": "2026-11-24T08:52:20Z",
            "message": {"role": "assistant", "content": ""}, "done": true, "done_reason": done_reason,
            "total_duration": 4883583458u64, "load_duration": 1334875, "prompt_eval_count": 26,
            "prompt_eval_duration": 342546000, "eval_count": TEXT.len(), "eval_duration": 4535599000u64});
        yield Ok(Bytes::from(format!("{last}\n")));
    };
    Response::builder()
        .header("content-type", "application/x-ndjson")
        .body(Body::from_stream(stream))
        .unwrap()
}
