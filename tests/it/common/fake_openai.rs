//! A fake OpenAI Chat Completions server: a real HTTP server on 127.0.0.1 that
//! streams `chat.completion.chunk`s in the documented wire format
//! (`data: {json}\n\n` events, a role-only first delta, one content delta per
//! token, a chunk with `finish_reason`, a usage chunk with `choices: []` when
//! `stream_options.include_usage` is set, then `data: [DONE]`).
//!
//! The requested `model` picks a behaviour, so one fake serves every fault:
//! `ok`, `no-usage`, `crlf`, `die`, `hang`, `slow`, `drip`, `error-event`,
//! `status-429`, `status-500`, `no-blank-end`, `no-finish`, `tools`,
//! `status-529`, `malformed` (four broken chunks after two tokens, one
//! more than a stream forgives),
//! `partial-usage` (a usage chunk without `completion_tokens`), `huge-line`
//! (a 4 MiB line that never ends), `firehose` (16 KiB deltas, forever),
//! `pause-after-finish` (5 s of silence between `finish_reason` and the
//! usage); and the
//! section-11 shapes (see [`scripted`]): `reasoning` (a 2.6 s phase of
//! `reasoning_content` deltas, then the answer), `reasoning-alt` (the
//! `reasoning` name), `mixed` (content and a tool call in one delta),
//! `refusal`, `function-call` (legacy), `logprobs`, `wild-index` (a tool
//! call at index 2^32 - 1).

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

pub const TOKENS: &[&str] = &["Hello", ",", " wor", "ld", "!", " 👋"];
/// The upstream key the tests configure; it must never reach a client.
pub const UPSTREAM_KEY: &str = "sk-upstream-SECRET-0123456789";

#[derive(Default)]
pub struct Seen {
    pub requests: AtomicUsize,
    /// Streams whose body was dropped before it finished: the client hung up.
    pub cancelled: AtomicUsize,
    pub finished: AtomicUsize,
    pub last_body: Mutex<Option<Value>>,
    pub last_auth: Mutex<Option<String>>,
}

impl Seen {
    /// Whether the fake has seen `n` hang-ups within `within`.
    pub async fn saw_cancels(&self, n: usize, within: Duration) -> bool {
        super::eventually(within, || self.cancelled.load(Ordering::SeqCst) == n).await
    }
}

pub struct FakeOpenAi {
    pub base_url: String,
    pub seen: Arc<Seen>,
}

pub async fn start() -> FakeOpenAi {
    let seen = Arc::new(Seen::default());
    let app = axum::Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/embeddings", post(embeddings))
        .with_state(seen.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    FakeOpenAi {
        base_url: format!("http://{addr}/v1"),
        seen,
    }
}

/// OpenAI's embeddings: `[i, 0.5, -0.5]` for input `i`, whatever the model;
/// the body and key are kept for the test to look at.
async fn embeddings(
    axum::extract::State(seen): axum::extract::State<Arc<Seen>>,
    headers: axum::http::HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> axum::Json<Value> {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    *seen.last_auth.lock().unwrap() = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let count = body["input"].as_array().map_or(1, Vec::len);
    *seen.last_body.lock().unwrap() = Some(body);
    let data: Vec<Value> = (0..count)
        .map(|i| json!({"object": "embedding", "index": i, "embedding": [i as f64, 0.5, -0.5]}))
        .collect();
    axum::Json(
        json!({"object": "list", "data": data, "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 7, "total_tokens": 7}}),
    )
}

/// Marks the stream cancelled if dropped before `finish`.
struct Watch {
    seen: Arc<Seen>,
    done: bool,
}

impl Watch {
    fn finish(&mut self) {
        self.done = true;
        self.seen.finished.fetch_add(1, Ordering::SeqCst);
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if !self.done {
            self.seen.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

fn chunk(model: &str, delta: Value, finish_reason: Value, with_usage: bool) -> String {
    let mut chunk = json!({
        "id": "chatcmpl-fake123",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": model,
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
    });
    if with_usage {
        chunk["usage"] = Value::Null;
    }
    format!("data: {chunk}\n\n")
}

async fn chat(
    State(seen): State<Arc<Seen>>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    seen.requests.fetch_add(1, Ordering::SeqCst);
    *seen.last_body.lock().unwrap() = Some(body.clone());
    *seen.last_auth.lock().unwrap() = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let model = body["model"].as_str().unwrap_or("ok").to_owned();
    let include_usage = body["stream_options"]["include_usage"] == json!(true);

    match model.as_str() {
        "status-429" => {
            let error = json!({"error": {"message": "Rate limit reached for key sk-upstream-SECRET-0123456789", "type": "rate_limit_error", "code": "rate_limit_exceeded"}});
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "7")],
                Json(error),
            )
                .into_response();
        }
        "status-500" => {
            let error = json!({"error": {"message": format!("The server had an error processing your request (key {UPSTREAM_KEY})"), "type": "server_error"}});
            return (StatusCode::INTERNAL_SERVER_ERROR, Json(error)).into_response();
        }
        "status-529" => {
            let error = json!({"error": {"message": format!("Overloaded (key {UPSTREAM_KEY})"), "type": "overloaded_error"}});
            return (StatusCode::from_u16(529).unwrap(), Json(error)).into_response();
        }
        _ => {}
    }

    if model == "tools" {
        return tool_call_stream(&model, include_usage);
    }
    if model == "firehose" {
        // Big content deltas as fast as the client takes them, forever.
        // Never finished: dropping it counts the hang-up.
        let watch = Watch { seen, done: false };
        let piece = "x".repeat(16 * 1024);
        let body = stream! {
            let _watch = watch;
            loop {
                yield Ok::<_, std::io::Error>(Bytes::from(chunk("firehose", json!({"content": piece}), Value::Null, false)));
            }
        };
        return Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(body))
            .unwrap();
    }
    if model == "huge-line" {
        // One 4 MiB line that never ends, in 64 KiB writes, then silence.
        let body = stream! {
            yield Ok::<_, std::io::Error>(Bytes::from_static(b"data: "));
            for _ in 0..64 {
                yield Ok(Bytes::from(vec![b'a'; 64 * 1024]));
            }
            std::future::pending::<()>().await;
        };
        return Response::builder()
            .header("content-type", "text/event-stream")
            .body(Body::from_stream(body))
            .unwrap();
    }
    if let Some(script) = scripted(&model) {
        return scripted_stream(&model, script, seen);
    }
    let mut watch = Watch { seen, done: false };
    let body = stream! {
        let m = model.as_str();
        let delay = match m {
            "slow" => Duration::from_millis(400),
            "drip" => Duration::from_millis(50),
            _ => Duration::from_millis(5),
        };
        if m == "hang" {
            std::future::pending::<()>().await;
        }
        yield Ok::<_, std::io::Error>(Bytes::from(chunk(m, json!({"role": "assistant", "content": ""}), Value::Null, include_usage)));
        let rounds = if m == "drip" { 10_000 } else { 1 };
        let mut sent = 0;
        for _ in 0..rounds {
            for token in TOKENS {
                if m != "burst" {
                    tokio::time::sleep(delay).await;
                }
                let frame = chunk(m, json!({"content": token}), Value::Null, include_usage);
                if m == "crlf" {
                    // CRLF line ends, written in awkward little pieces.
                    let frame = frame.replace('\n', "\r\n");
                    for piece in frame.as_bytes().chunks(7) {
                        yield Ok(Bytes::copy_from_slice(piece));
                    }
                } else {
                    yield Ok(Bytes::from(frame));
                }
                sent += 1;
                if m == "malformed" && sent == 2 {
                    // One more than a stream forgives (section 17).
                    for _ in 0..4 {
                        yield Ok(Bytes::from_static(b"data: {\"choices\": [oops\n\n"));
                    }
                    std::future::pending::<()>().await;
                }
                if m == "die" && sent == 2 {
                    // hyper drops unflushed bytes when a body fails: let them go out first.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    yield Err(std::io::Error::other("fake upstream died"));
                    return;
                }
                if m == "error-event" && sent == 2 {
                    let error = json!({"error": {"message": format!("The server is overloaded (key {UPSTREAM_KEY})"), "type": "server_error"}});
                    yield Ok(Bytes::from(format!("data: {error}\n\n")));
                    watch.finish();
                    return;
                }
            }
        }
        if m == "no-finish" {
            watch.finish();
            return;
        }
        if m == "burst" {
            // Every token at once, then silence with the stream left open.
            std::future::pending::<()>().await;
        }
        yield Ok(Bytes::from(chunk(m, json!({}), json!("stop"), include_usage)));
        if m == "pause-after-finish" {
            // The answer is whole; the usage and [DONE] come late.
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        if include_usage && m != "no-usage" {
            let counts = match m {
                "partial-usage" => json!({"prompt_tokens": 11, "total_tokens": 17}),
                _ => json!({"prompt_tokens": 11, "completion_tokens": TOKENS.len(), "total_tokens": 11 + TOKENS.len()}),
            };
            let usage = json!({
                "id": "chatcmpl-fake123", "object": "chat.completion.chunk", "created": 1_700_000_000,
                "model": m, "choices": [], "usage": counts,
            });
            yield Ok(Bytes::from(format!("data: {usage}\n\n")));
        }
        if m == "no-blank-end" {
            yield Ok(Bytes::from_static(b"data: [DONE]\n"));
        } else {
            yield Ok(Bytes::from_static(b"data: [DONE]\n\n"));
        }
        watch.finish();
    };
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(body))
        .unwrap()
}

/// The pieces of the tool call's arguments, as `tools` streams them.
pub const TOOL_ARGUMENTS: &[&str] = &["{\"ci", "ty\": \"Os", "lo\"}"];

/// A tool call, streamed as OpenAI documents it: the first delta carries the
/// role, the call's id, type and function name; then the arguments in pieces;
/// then `finish_reason: "tool_calls"`.
fn tool_call_stream(model: &str, include_usage: bool) -> Response {
    let mut body = chunk(
        model,
        json!({"role": "assistant", "content": null, "tool_calls": [
            {"index": 0, "id": "call_abc123", "type": "function", "function": {"name": "get_weather", "arguments": ""}}
        ]}),
        Value::Null,
        include_usage,
    );
    for piece in TOOL_ARGUMENTS {
        body.push_str(&chunk(
            model,
            json!({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}),
            Value::Null,
            include_usage,
        ));
    }
    body.push_str(&chunk(model, json!({}), json!("tool_calls"), include_usage));
    body.push_str("data: [DONE]\n\n");
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from(body))
        .unwrap()
}

/// A sluice config with one `openai` model per behaviour, all on this fake,
/// without retries (tests of retries configure their own).
pub fn config_toml(base_url: &str, extra: &str) -> String {
    let mut toml = format!("{extra}\n");
    for behaviour in [
        "ok",
        "no-usage",
        "crlf",
        "die",
        "hang",
        "slow",
        "drip",
        "error-event",
        "status-429",
        "status-500",
        "no-blank-end",
        "no-finish",
        "tools",
        "burst",
        "partial-usage",
        "pause-after-finish",
        "huge-line",
        "firehose",
        "status-529",
        "malformed",
    ] {
        toml.push_str(&format!(
            "[[models]]\nname = \"up-{behaviour}\"\nprovider = \"openai\"\nbase_url = \"{base_url}\"\n\
             api_key_env = \"FAKE_KEY\"\nupstream_model = \"{behaviour}\"\nretries = 0\n\n"
        ));
    }
    toml
}

/// The reasoning the `reasoning` models stream before their answer (cycled
/// to 13 pieces by `reasoning`).
pub const REASONING: &[&str] = &[
    "The user",
    " greets me",
    ".",
    " I should",
    " greet",
    " back",
    ".",
];

/// One scripted chunk: its delta, its choice's `logprobs`, and the pause before it.
type Step = (Value, Value, Duration);

/// The chunks of the section-11 behaviours (reasoning, deltas with several
/// parts, fields sluice does not interpret), after the role chunk; then the
/// finish reason. Documented shapes: DeepSeek's and vLLM's
/// `reasoning_content`, OpenRouter's `reasoning`, OpenAI's `refusal`,
/// `function_call` and `logprobs`.
pub fn scripted(model: &str) -> Option<(Vec<Step>, &'static str)> {
    let quick = Duration::from_millis(2);
    let answer = |steps: &mut Vec<Step>| {
        for token in TOKENS {
            steps.push((json!({"content": token}), Value::Null, quick));
        }
    };
    let mut steps = Vec::new();
    let finish = match model {
        "reasoning" | "reasoning-alt" => {
            // `reasoning`: 13 pieces 200 ms apart, a 2.6 s reasoning phase.
            let (key, gap, count) = match model {
                "reasoning" => ("reasoning_content", Duration::from_millis(200), 13),
                _ => ("reasoning", quick, REASONING.len()),
            };
            for piece in REASONING.iter().cycle().take(count) {
                steps.push((json!({key: piece, "content": null}), Value::Null, gap));
            }
            answer(&mut steps);
            "stop"
        }
        "wild-index" => {
            // A call index no answer has: 2^32 - 1.
            steps.push((
                json!({"tool_calls": [{"index": 4_294_967_295u64, "id": "call_wild", "type": "function",
                       "function": {"name": "f", "arguments": "{}"}}]}),
                Value::Null,
                quick,
            ));
            steps.push((
                json!({"tool_calls": [{"index": 0, "id": "call_0", "type": "function",
                       "function": {"name": "get_weather", "arguments": "{}"}}]}),
                Value::Null,
                quick,
            ));
            "tool_calls"
        }
        "mixed" => {
            steps.push((
                json!({"content": "Let me check.", "tool_calls": [{"index": 0, "id": "call_mixed", "type": "function",
                       "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]}),
                Value::Null,
                quick,
            ));
            "tool_calls"
        }
        "refusal" => {
            for piece in ["I can't", " help with that."] {
                steps.push((
                    json!({"refusal": piece, "content": null}),
                    Value::Null,
                    quick,
                ));
            }
            "stop"
        }
        "function-call" => {
            steps.push((
                json!({"function_call": {"name": "get_weather", "arguments": ""}}),
                Value::Null,
                quick,
            ));
            steps.push((
                json!({"function_call": {"arguments": "{\"city\":\"Oslo\"}"}}),
                Value::Null,
                quick,
            ));
            "function_call"
        }
        "logprobs" => {
            for token in ["Hi", "!"] {
                let logprobs = json!({"content": [{"token": token, "logprob": -0.25, "bytes": token.as_bytes(), "top_logprobs": []}], "refusal": null});
                steps.push((json!({"content": token}), logprobs, quick));
            }
            "stop"
        }
        _ => return None,
    };
    Some((steps, finish))
}

fn scripted_stream(
    model: &str,
    (steps, finish): (Vec<Step>, &'static str),
    seen: Arc<Seen>,
) -> Response {
    let model = model.to_owned();
    let mut watch = Watch { seen, done: false };
    let body = stream! {
        let frame = |delta: Value, logprobs: Value, finish: Value| {
            let chunk = json!({
                "id": "chatcmpl-fake123", "object": "chat.completion.chunk", "created": 1_700_000_000,
                "model": model, "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}],
            });
            Bytes::from(format!("data: {chunk}\n\n"))
        };
        yield Ok::<_, std::io::Error>(frame(json!({"role": "assistant", "content": ""}), Value::Null, Value::Null));
        for (delta, logprobs, pause) in steps {
            tokio::time::sleep(pause).await;
            yield Ok(frame(delta, logprobs, Value::Null));
        }
        yield Ok(frame(json!({}), Value::Null, json!(finish)));
        let usage = json!({"id": "chatcmpl-fake123", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": model, "choices": [],
            "usage": {"prompt_tokens": 11, "completion_tokens": 20, "total_tokens": 31,
                      "completion_tokens_details": {"reasoning_tokens": 13}}});
        yield Ok(Bytes::from(format!("data: {usage}\n\n")));
        yield Ok(Bytes::from_static(b"data: [DONE]\n\n"));
        watch.finish();
    };
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(body))
        .unwrap()
}
