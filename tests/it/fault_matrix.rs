//! The fault matrix: every upstream fault on both streaming doors ends in
//! exactly one correct terminal frame (or, before the stream, the right
//! status), and never shows the upstream's key.

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use crate::common::fake_openai::{self, UPSTREAM_KEY};
use crate::common::*;
use serde_json::{json, Value};

/// How a case must end.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// An error status before the stream, of this contract type.
    Status(u16, &'static str),
    /// A 200 stream ending in one error frame of this type.
    ErrorFrame(&'static str),
    /// A 200 stream ending in one `done`.
    Done,
}

/// A server that takes the request and closes the connection before
/// answering a byte.
async fn resetting_upstream() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut head = [0u8; 1024];
            let _ = tcp.read(&mut head).await;
            drop(tcp);
        }
    });
    format!("http://{addr}/v1")
}

/// The terminal frames of a native stream and what the last one says.
fn native_end(got: &Received) -> (usize, Option<(String, Value)>) {
    let terminals: Vec<_> = got
        .events
        .iter()
        .filter(|e| e.event == "done" || e.event == "error")
        .collect();
    let last = terminals
        .last()
        .map(|e| (e.event.clone(), serde_json::from_str(&e.data).unwrap()));
    (terminals.len(), last)
}

/// The terminal frames of an OpenAI stream: `[DONE]`s and error chunks.
fn openai_end(got: &Received) -> (usize, Option<(String, Value)>) {
    let mut terminals = Vec::new();
    for event in &got.events {
        if event.data == "[DONE]" {
            terminals.push(("done".to_owned(), Value::Null));
            continue;
        }
        let chunk: Value = serde_json::from_str(&event.data).unwrap();
        if chunk.get("error").is_some() {
            terminals.push(("error".to_owned(), chunk));
        }
    }
    (terminals.len(), terminals.last().cloned())
}

async fn run_case(server: &Server, door: &str, model: &str, slow_reader: bool) -> Received {
    let (path, body) = match door {
        "native" => ("/v1/stream", json!({"model": model, "prompt": "hi"})),
        _ => (
            "/v1/chat/completions",
            json!({"model": model, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
        ),
    };
    let mut response = client()
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    if !slow_reader {
        return receive(response).await;
    }
    // A client that reads a chunk every 100 ms.
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut text = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        text.extend_from_slice(&chunk);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Received::of(status, headers, text, false)
}

#[tokio::test]
async fn every_upstream_fault_ends_in_one_correct_terminal_frame_on_both_doors() {
    let upstream = fake_openai::start().await;
    let reset = resetting_upstream().await;
    let mut toml = fake_openai::config_toml(
        &upstream.base_url,
        "[timeouts]\nfirst_token_ms = 800\nidle_ms = 800",
    );
    toml.push_str(&format!(
        "[[models]]\nname = \"up-reset\"\nprovider = \"openai\"\nbase_url = \"{reset}\"\napi_key_env = \"FAKE_KEY\"\nretries = 0\n"
    ));
    let server = spawn(config_with_env(&toml, &[("FAKE_KEY", UPSTREAM_KEY)])).await;
    let cases: &[(&str, &str, Expect)] = &[
        (
            "reset before the first byte",
            "up-reset",
            Expect::Status(502, "upstream_error"),
        ),
        (
            "reset mid-stream",
            "up-die",
            Expect::ErrorFrame("upstream_error"),
        ),
        (
            "stall before the first token",
            "up-hang",
            Expect::Status(504, "upstream_timeout"),
        ),
        (
            "stall after the first tokens",
            "up-burst",
            Expect::ErrorFrame("idle_timeout"),
        ),
        (
            "malformed chunk",
            "up-malformed",
            Expect::ErrorFrame("upstream_error"),
        ),
        (
            "429",
            "up-status-429",
            Expect::Status(502, "upstream_error"),
        ),
        (
            "500",
            "up-status-500",
            Expect::Status(502, "upstream_error"),
        ),
        (
            "529",
            "up-status-529",
            Expect::Status(502, "upstream_error"),
        ),
        (
            "huge line",
            "up-huge-line",
            Expect::Status(502, "upstream_error"),
        ),
        ("slow client", "up-ok", Expect::Done),
    ];
    let mut checked = 0;
    for (fault, model, expect) in cases {
        for door in ["native", "openai"] {
            let got = run_case(&server, door, model, *fault == "slow client").await;
            let context = format!("{fault} on the {door} door: {}", got.text);
            assert!(
                !got.text.contains(UPSTREAM_KEY) && !got.text.contains("SECRET"),
                "a key leaked: {context}"
            );
            match expect {
                Expect::Status(status, kind) => {
                    assert_eq!(got.status, *status, "{context}");
                    assert_eq!(error_of(&got)["type"], *kind, "{context}");
                }
                Expect::ErrorFrame(_) | Expect::Done => {
                    assert_eq!(got.status, 200, "{context}");
                    let (count, last) = match door {
                        "native" => native_end(&got),
                        _ => openai_end(&got),
                    };
                    assert_eq!(count, 1, "exactly one terminal frame: {context}");
                    let (event, data) = last.unwrap();
                    match expect {
                        Expect::ErrorFrame(kind) => {
                            assert_eq!(event, "error", "{context}");
                            assert_eq!(data["error"]["type"], *kind, "{context}");
                            assert!(
                                !got.text.contains("[DONE]"),
                                "no [DONE] after a failure: {context}"
                            );
                        }
                        _ => assert_eq!(event, "done", "{context}"),
                    }
                }
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 20);
}
