//! Section 14, faults by name: each fault of the table, on the native and
//! OpenAI doors (and the Messages door where its shape differs), as a client
//! sees it on the wire. The official SDKs' exceptions for them are checked by
//! `sdk_clients::the_python_sdks_raise_their_own_errors_for_the_mocks_faults`.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

/// A quick mock, and `total_ms` short enough for `hang` to end.
fn lab() -> sluice::config::Config {
    config(&format!("[timeouts]\ntotal_ms = 3000\n{FAST_MOCK}"))
}

fn native(mock: Value) -> Value {
    json!({"prompt": "Tell me about rivers", "mock": mock})
}

fn chat(mock: Value) -> Value {
    json!({"model": "mock", "stream": true, "messages": [{"role": "user", "content": "hi"}], "mock": mock})
}

/// The `data:` of the OpenAI door's chunks with content, and whether one
/// `data:` line did not parse.
fn chat_tokens(got: &Received) -> (Vec<String>, bool) {
    let mut tokens = Vec::new();
    let mut broken = false;
    for event in got.events.iter().filter(|e| e.data != "[DONE]") {
        match serde_json::from_str::<Value>(&event.data) {
            Ok(chunk) => {
                let text = chunk["choices"][0]["delta"]["content"].as_str();
                // The role-only first chunk has `"content": ""`.
                if let Some(text) = text.filter(|t| !t.is_empty()) {
                    tokens.push(text.to_owned());
                }
            }
            Err(_) => broken = true,
        }
    }
    (tokens, broken)
}

#[tokio::test]
async fn failures_before_the_stream_are_the_providers_statuses_in_each_doors_shape() {
    let server = spawn(lab()).await;
    let limited = post_json(&server, native(json!({"fault": "rate_limited"}))).await;
    assert_eq!(limited.status, 429);
    assert!(limited.headers.contains_key("retry-after"));
    let limited = post_to(
        &server,
        "/v1/chat/completions",
        chat(json!({"fault": "rate_limited"})),
    )
    .await;
    assert_eq!(limited.status, 429);
    assert_eq!(limited.json()["error"]["code"], "rate_limit_exceeded");

    let overloaded = post_json(&server, native(json!({"fault": "overloaded"}))).await;
    assert_eq!(overloaded.status, 503);
    let messages = json!({"model": "mock", "max_tokens": 64, "stream": true,
        "messages": [{"role": "user", "content": "hi"}], "mock": {"fault": "overloaded", "fault_status": 529}});
    let overloaded = post_to(&server, "/v1/messages", messages).await;
    assert_eq!(overloaded.status, 529);
    assert_eq!(overloaded.json()["error"]["type"], "overloaded_error");

    let long = post_to(
        &server,
        "/v1/chat/completions",
        chat(json!({"fault": "context_length"})),
    )
    .await;
    assert_eq!(long.status, 400);
    assert_eq!(long.json()["error"]["code"], "context_length_exceeded");
    let messages = json!({"model": "mock", "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}], "mock": {"fault": "context_length"}});
    let long = post_to(&server, "/v1/messages", messages).await;
    assert_eq!(long.status, 400);
    assert_eq!(long.json()["error"]["type"], "invalid_request_error");
    // Knobs in the model name work too.
    let by_name = json!({"model": "mock:fault=rate_limited", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(
        post_to(&server, "/v1/chat/completions", by_name)
            .await
            .status,
        429
    );
}

#[tokio::test]
async fn hang_sends_no_headers_and_reset_closes_the_connection_with_no_response() {
    let server = spawn(lab()).await;
    // `hang`: nothing within a second (the client would give up here) ...
    let hung = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap()
        .post(server.url("/v1/stream"))
        .json(&native(json!({"fault": "hang"})))
        .send()
        .await;
    assert!(
        hung.unwrap_err().is_timeout(),
        "no response within a second"
    );
    // ... and a client that waits gets `total_ms`'s 504 (3 s here).
    let started = Instant::now();
    let waited = post_json(&server, native(json!({"fault": "hang"}))).await;
    assert_eq!(waited.status, 504);
    assert!(started.elapsed() >= Duration::from_millis(2500));

    for path in ["/v1/stream", "/v1/chat/completions"] {
        let body = match path {
            "/v1/stream" => native(json!({"fault": "reset"})),
            _ => chat(json!({"fault": "reset"})),
        };
        let reset = client().post(server.url(path)).json(&body).send().await;
        let err = reset.expect_err("no response to a reset");
        assert!(
            !err.is_timeout(),
            "{path}: closed at once, not timed out: {err}"
        );
    }
    // The server goes on serving.
    assert_eq!(
        post_json(&server, native(json!({"tokens": 2})))
            .await
            .status,
        200
    );
}

#[tokio::test]
async fn cut_malformed_no_terminal_and_content_filter_come_after_fault_after_tokens() {
    let server = spawn(lab()).await;
    let cut = post_json(
        &server,
        native(json!({"fault": "cut", "fault_after": 3, "tokens": 8})),
    )
    .await;
    assert_eq!(cut.tokens().len(), 3);
    assert!(cut.cut, "the connection is cut");
    assert!(!cut
        .events
        .iter()
        .any(|e| e.event == "done" || e.event == "error"));

    let malformed = post_json(
        &server,
        native(json!({"fault": "malformed", "fault_after": 2, "tokens": 6})),
    )
    .await;
    let broken = malformed
        .events
        .iter()
        .filter(|e| serde_json::from_str::<Value>(&e.data).is_err())
        .count();
    assert_eq!(broken, 1, "{}", malformed.text);
    assert_eq!(malformed.terminal().event, "done", "then the rest");
    let (tokens, broken) = chat_tokens(
        &post_to(
            &server,
            "/v1/chat/completions",
            chat(json!({"fault": "malformed", "fault_after": 2, "tokens": 6})),
        )
        .await,
    );
    assert!(broken);
    assert_eq!(tokens.len(), 6);

    let unterminated = post_json(
        &server,
        native(json!({"fault": "no_terminal", "tokens": 4})),
    )
    .await;
    assert_eq!(unterminated.tokens().len(), 4);
    assert!(!unterminated.cut, "the body ends cleanly");
    assert!(!unterminated
        .events
        .iter()
        .any(|e| e.event == "done" || e.event == "error"));
    let unterminated = post_to(
        &server,
        "/v1/chat/completions",
        chat(json!({"fault": "no_terminal", "tokens": 4})),
    )
    .await;
    assert!(!unterminated.cut);
    assert!(!unterminated.text.contains("[DONE]"));
    assert!(!unterminated.text.contains("finish_reason\":\"stop"));

    let filtered = post_json(
        &server,
        native(json!({"fault": "content_filter", "fault_after": 3, "tokens": 8})),
    )
    .await;
    assert_eq!(filtered.tokens().len(), 3);
    assert_eq!(filtered.terminal_json()["finish_reason"], "content_filter");
    let messages = json!({"model": "mock", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}],
        "mock": {"fault": "content_filter", "fault_after": 3, "tokens": 8}});
    assert_eq!(
        answer_of(server.url("/v1/messages"), &messages).await["stop_reason"],
        "refusal"
    );
}

#[tokio::test]
async fn slow_first_token_and_stall_hold_their_silence() {
    let server = spawn(lab()).await;
    let started = Instant::now();
    let response = client()
        .post(server.url("/v1/stream"))
        .json(&native(
            json!({"fault": "slow_first_token", "fault_ms": 1200, "tokens": 2}),
        ))
        .send()
        .await
        .unwrap();
    let chunks = timed_chunks(started, response).await;
    let first_token = chunks
        .iter()
        .find(|(_, text)| text.contains("\"token\""))
        .unwrap();
    assert!(
        first_token.0 >= Duration::from_millis(1200),
        "{:?}",
        first_token.0
    );

    let started = Instant::now();
    let response = client()
        .post(server.url("/v1/stream"))
        .json(&native(
            json!({"fault": "stall", "fault_after": 2, "fault_ms": 1200, "tokens": 4}),
        ))
        .send()
        .await
        .unwrap();
    let chunks = timed_chunks(started, response).await;
    let tokens: Vec<Duration> = chunks
        .iter()
        .flat_map(|(at, text)| std::iter::repeat_n(*at, text.matches("\"token\"").count()))
        .collect();
    assert_eq!(tokens.len(), 4);
    assert!(
        tokens[2] - tokens[1] >= Duration::from_millis(1200),
        "{tokens:?}"
    );
}

#[tokio::test]
async fn empty_answers_nothing_and_bad_tool_args_do_not_parse() {
    let server = spawn(lab()).await;
    let empty = post_json(&server, native(json!({"fault": "empty"}))).await;
    assert!(empty.tokens().is_empty());
    assert_eq!(empty.terminal().event, "done");
    assert_eq!(empty.terminal_json()["usage"]["completion_tokens"], 0);

    let body = json!({"model": "mock", "messages": [{"role": "user", "content": "Weather in Paris?"}],
        "tools": [{"type": "function", "function": {"name": "weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "mock": {"fault": "bad_tool_args"}});
    let answer = answer_of(server.url("/v1/chat/completions"), &body).await;
    let call = &answer["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "weather");
    let arguments = call["function"]["arguments"].as_str().unwrap();
    assert!(
        serde_json::from_str::<Value>(arguments).is_err(),
        "{arguments}"
    );
}

#[tokio::test]
async fn fault_knobs_are_checked_like_the_others() {
    let server = spawn(lab()).await;
    for (mock, field) in [
        (json!({"fault": "gremlins"}), "mock.fault"),
        (
            json!({"fault": "overloaded", "fault_status": 200}),
            "mock.fault_status",
        ),
        (
            json!({"fault": "stall", "fault_ms": 99_999_999}),
            "mock.fault_ms",
        ),
    ] {
        let got = post_json(&server, native(mock.clone())).await;
        assert_eq!(got.status, 400, "{mock}");
        assert_eq!(got.json()["error"]["param"], field, "{}", got.text);
    }
}

/// The faults the tests above watch on one door, on the other.
#[tokio::test]
async fn the_same_faults_on_the_other_door() {
    let server = spawn(lab()).await;
    let long = post_json(&server, native(json!({"fault": "context_length"}))).await;
    assert_eq!(long.status, 400);
    assert_eq!(long.json()["error"]["type"], "context_length_exceeded");

    let url = || server.url("/v1/chat/completions");
    let cut = receive(
        client()
            .post(url())
            .json(&chat(
                json!({"fault": "cut", "fault_after": 3, "tokens": 8}),
            ))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(chat_tokens(&cut).0.len(), 3);
    assert!(cut.cut);
    assert!(!cut.text.contains("[DONE]"));

    let filtered = post_to(
        &server,
        "/v1/chat/completions",
        chat(json!({"fault": "content_filter", "fault_after": 3, "tokens": 8})),
    )
    .await;
    assert_eq!(chat_tokens(&filtered).0.len(), 3);
    assert!(
        filtered
            .text
            .contains("\"finish_reason\":\"content_filter\""),
        "{}",
        filtered.text
    );

    let empty = post_to(
        &server,
        "/v1/chat/completions",
        chat(json!({"fault": "empty"})),
    )
    .await;
    assert!(chat_tokens(&empty).0.is_empty());
    assert!(empty.text.ends_with("data: [DONE]\n\n"));

    let started = Instant::now();
    let slow = client()
        .post(url())
        .json(&chat(
            json!({"fault": "slow_first_token", "fault_ms": 1000, "tokens": 2}),
        ))
        .send()
        .await
        .unwrap();
    let chunks = timed_chunks(started, slow).await;
    let first = chunks
        .iter()
        .find(|(_, text)| text.contains("\"content\":\""))
        .unwrap();
    assert!(first.0 >= Duration::from_millis(1000), "{:?}", first.0);
}
