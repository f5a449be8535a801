//! The native door, `/v1/stream`, against the real server: frame rules,
//! request forms, wire formats, headers, heartbeats and pre-stream errors.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::json;

#[tokio::test]
async fn every_token_is_its_own_frame_with_a_distinct_id_then_one_done() {
    let server = spawn(fast_mock_config()).await;
    let got = post_json(&server, json!({"prompt": "Tell me a joke"})).await;
    assert_eq!(got.status, 200);
    assert!(!got.cut);
    let (last, tokens) = got.events.split_last().unwrap();
    assert!(tokens.len() > 20, "a full answer has many tokens");
    let mut ids = HashSet::new();
    for event in tokens {
        assert_eq!(event.event, "message", "token frames carry no event: line");
        let id = event.id.clone().expect("every token frame has an id");
        assert!(ids.insert(id), "ids are distinct");
        token_of(event);
    }
    // Every frame, the terminal one too, has its own id line (`GEN:N`), and
    // no frame carries two tokens.
    let id_lines = got.text.lines().filter(|l| l.starts_with("id: ")).count();
    assert_eq!(id_lines, tokens.len() + 1);
    assert_eq!(last.event, "done");
    assert_eq!(
        got.text.matches("event: ").count(),
        1,
        "exactly one terminal frame"
    );
    assert!(got.text.ends_with("\n\n"));
    let done = got.terminal_json();
    assert_eq!(done["finish_reason"], "stop");
    assert_eq!(done["model"], "mock");
    let usage = &done["usage"];
    let completion = usage["completion_tokens"].as_u64().unwrap();
    assert!(completion >= tokens.len() as u64);
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + completion
    );
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 0);
}

#[tokio::test]
async fn response_headers_say_event_stream_and_no_buffering() {
    let server = spawn(fast_mock_config()).await;
    let got = post_json(&server, json!({"prompt": "hi", "mock": {"tokens": 3}})).await;
    let header = |name: &str| {
        got.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    assert_eq!(header("content-type"), "text/event-stream");
    assert_eq!(header("cache-control"), "no-cache");
    assert_eq!(header("x-accel-buffering"), "no");
    assert!(!header("x-request-id").is_empty());
    assert!(got.headers.get("content-encoding").is_none());
}

#[tokio::test]
async fn json_is_parsed_whatever_the_content_type_says() {
    let server = spawn(fast_mock_config()).await;
    for content_type in [
        "application/json",
        "text/plain",
        "application/x-www-form-urlencoded",
    ] {
        let response = client()
            .post(server.url("/v1/stream"))
            .header("content-type", content_type)
            .body(r#"{"prompt":"hello","mock":{"text":"one two"}}"#)
            .send()
            .await
            .unwrap();
        let got = receive(response).await;
        assert_eq!(got.status, 200, "{content_type}: {}", got.text);
        assert_eq!(got.token_text(), "one two");
    }
}

#[tokio::test]
async fn form_fields_and_get_query_parameters_are_the_same_request() {
    let server = spawn(fast_mock_config()).await;
    let form = client()
        .post(server.url("/v1/stream"))
        .form(&[
            ("prompt", "Tell me a joke"),
            ("seed", "4"),
            ("max_tokens", "12"),
        ])
        .send()
        .await
        .unwrap();
    let form = receive(form).await;
    let get = client()
        .get(server.url("/v1/stream?prompt=Tell+me+a+joke&seed=4&max_tokens=12"))
        .send()
        .await
        .unwrap();
    let get = receive(get).await;
    let json = post_json(
        &server,
        json!({"prompt": "Tell me a joke", "seed": 4, "max_tokens": 12}),
    )
    .await;
    assert_eq!(form.status, 200, "{}", form.text);
    assert_eq!(get.status, 200, "{}", get.text);
    assert_eq!(form.tokens(), json.tokens());
    assert_eq!(get.tokens(), json.tokens());
    assert_eq!(json.terminal_json()["finish_reason"], "length");
    assert_eq!(json.terminal_json()["usage"]["completion_tokens"], 12);
}

#[tokio::test]
async fn get_takes_mock_knobs_as_mock_prefixed_parameters() {
    let server = spawn(fast_mock_config()).await;
    let response = client()
        .get(server.url("/v1/stream?prompt=x&mock_text=hi+there&mock_mode=lorem"))
        .send()
        .await
        .unwrap();
    assert_eq!(receive(response).await.token_text(), "hi there");
}

#[tokio::test]
async fn text_format_streams_bare_token_text() {
    let server = spawn(fast_mock_config()).await;
    let by_query = client()
        .post(server.url("/v1/stream?format=text"))
        .json(&json!({"prompt": "x", "mock": {"text": "Hello, *world*!\nBye."}}))
        .send()
        .await
        .unwrap();
    assert!(by_query.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(by_query.text().await.unwrap(), "Hello, *world*!\nBye.");
    let by_accept = client()
        .post(server.url("/v1/stream"))
        .header("accept", "text/plain")
        .json(&json!({"prompt": "x", "mock": {"text": "plain"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(by_accept.text().await.unwrap(), "plain");
}

#[tokio::test]
async fn ndjson_format_is_one_object_per_line_ending_in_done() {
    let server = spawn(fast_mock_config()).await;
    for (query, accept) in [("?format=ndjson", "*/*"), ("", "application/x-ndjson")] {
        let response = client()
            .post(server.url(&format!("/v1/stream{query}")))
            .header("accept", accept)
            .json(&json!({"prompt": "x", "mock": {"text": "a b c"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.headers()["content-type"], "application/x-ndjson");
        let text = response.text().await.unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let (done, tokens) = lines.split_last().unwrap();
        let joined: String = tokens
            .iter()
            .map(|l| l["token"].as_str().unwrap())
            .collect();
        assert_eq!(joined, "a b c");
        assert_eq!(done["done"]["finish_reason"], "stop");
        assert!(done["done"]["usage"]["total_tokens"].as_u64().unwrap() > 0);
    }
}

#[tokio::test]
async fn ndjson_and_text_end_failures_visibly() {
    let server = spawn(fast_mock_config()).await;
    let body = json!({"prompt": "x", "mock": {"text": "a b c d", "fail_after": 2}});
    let ndjson = client()
        .post(server.url("/v1/stream?format=ndjson"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let text = ndjson.text().await.unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "upstream_error");
    let plain = client()
        .post(server.url("/v1/stream?format=text"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let got = receive(plain).await;
    assert!(got.cut, "a failed text stream is an incomplete transfer");
    assert!(got.text.starts_with("a b"), "{}", got.text);
    assert!(got.text.contains("[sluice error]"), "{}", got.text);
}

#[tokio::test]
async fn tokens_are_flushed_one_by_one_as_they_exist() {
    let server = spawn(fast_mock_config()).await;
    let start = Instant::now();
    let response = client()
        .post(server.url("/v1/stream"))
        .json(
            &json!({"prompt": "x", "mock": {"text": "one two three four", "token_delay_ms": 250}}),
        )
        .send()
        .await
        .unwrap();
    let chunks = timed_chunks(start, response).await;
    let token_times: Vec<Duration> = chunks
        .iter()
        .filter(|(_, text)| text.contains("\"token\""))
        .map(|(at, text)| {
            assert_eq!(
                text.matches("\"token\"").count(),
                1,
                "one token per write: {text:?}"
            );
            *at
        })
        .collect();
    assert_eq!(token_times.len(), 4);
    for pair in token_times.windows(2) {
        // 250 ms apart at the source: arriving together would mean buffering.
        assert!(
            pair[1] - pair[0] > Duration::from_millis(150),
            "{token_times:?}"
        );
    }
}

#[tokio::test]
async fn heartbeats_fill_silences_before_the_first_token_and_between_tokens() {
    let mut config = fast_mock_config();
    config.heartbeat_secs = 1;
    let server = spawn(config).await;
    let start = Instant::now();
    let response = client()
        .post(server.url("/v1/stream"))
        .json(&json!({"prompt": "x", "mock": {"text": "a b", "ttft_ms": 2300, "token_delay_ms": 2300}}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        200,
        "the response begins after one heartbeat interval"
    );
    let chunks = timed_chunks(start, response).await;
    let all: String = chunks.iter().map(|(_, t)| t.as_str()).collect();
    let first_token = all.find("\"token\"").unwrap();
    let second_token = all.rfind("\"token\"").unwrap();
    let before = all[..first_token].matches(": keep-alive").count();
    let between = all[first_token..second_token]
        .matches(": keep-alive")
        .count();
    assert!(before >= 2, "heartbeats before the first token: {all:?}");
    assert!(between >= 1, "heartbeats between tokens: {all:?}");
    assert!(all.ends_with("\n\n") && all.contains("event: done"));
}

#[tokio::test]
async fn fast_streams_carry_no_heartbeat() {
    let server = spawn(fast_mock_config()).await;
    let got = post_json(&server, json!({"prompt": "x"})).await;
    assert!(!got.text.contains(": keep-alive"));
}

#[tokio::test]
async fn unknown_field_is_a_400_naming_it() {
    let server = spawn(fast_mock_config()).await;
    let got = post_json(&server, json!({"prompt": "x", "max_token": 5})).await;
    assert_eq!(got.status, 400);
    let body = got.json();
    assert_eq!(body["error"]["type"], "invalid_request");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_token"));
    assert_eq!(body["error"]["param"], "max_token");
    let got = post_json(&server, json!({"prompt": "x", "mock": {"ttft": 5}})).await;
    assert_eq!(got.status, 400);
    assert_eq!(got.json()["error"]["param"], "mock.ttft");
    let response = client()
        .get(server.url("/v1/stream?prompt=x&colour=red"))
        .send()
        .await
        .unwrap();
    let got = receive(response).await;
    assert_eq!(got.status, 400);
    assert!(got.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("colour"));
}

#[tokio::test]
async fn bad_input_gets_a_400_that_names_the_field() {
    let server = spawn(fast_mock_config()).await;
    let cases = [
        (r#"{"prompt": "x", "max_tokens": "ten"}"#, "max_tokens"),
        (r#"{"prompt": "x", "max_tokens": -1}"#, "max_tokens"),
        (r#"{"prompt": "x", "max_tokens": 0}"#, "max_tokens"),
        (r#"{"prompt": 5}"#, "prompt"),
        (r#"{"prompt": ""}"#, "prompt"),
        (r#"{}"#, "prompt"),
        (
            r#"{"messages": [{"role": "robot", "content": "x"}]}"#,
            "messages[0].role",
        ),
        (r#"{"prompt": "x", "temperature": 9}"#, "temperature"),
        (
            r#"{"prompt": "x", "mock": {"ttft_ms": "slow"}}"#,
            "mock.ttft_ms",
        ),
        (
            r#"{"prompt": "x", "mock": {"error_status": 200}}"#,
            "mock.error_status",
        ),
        (r#"{"prompt": "x", "mock": {"mode": "shout"}}"#, "mock.mode"),
        (r#"{"prompt": "x""#, "body"),
        (r#"["prompt"]"#, "body"),
        ("", "body"),
    ];
    for (body, param) in cases {
        let response = client()
            .post(server.url("/v1/stream"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        let got = receive(response).await;
        assert_eq!(got.status, 400, "{body} -> {}", got.text);
        let json = got.json();
        assert_eq!(json["error"]["type"], "invalid_request", "{body}");
        assert_eq!(json["error"]["param"], param, "{body} -> {}", got.text);
        assert!(!json["error"]["message"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn unknown_model_template_and_path_are_404s() {
    let server = spawn(fast_mock_config()).await;
    let got = post_json(&server, json!({"prompt": "x", "model": "gpt-9"})).await;
    assert_eq!(got.status, 404);
    assert_eq!(got.json()["error"]["type"], "not_found");
    assert!(got.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("gpt-9"));
    let got = post_json(&server, json!({"prompt": "x", "template": "nope"})).await;
    assert_eq!(got.status, 404);
    assert_eq!(got.json()["error"]["type"], "not_found");
    let response = client()
        .get(server.url("/v2/nothing"))
        .send()
        .await
        .unwrap();
    let got = receive(response).await;
    assert_eq!(got.status, 404);
    assert_eq!(got.json()["error"]["type"], "not_found");
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413() {
    let mut config = fast_mock_config();
    config.limits.max_body_bytes = 1000;
    let server = spawn(config).await;
    let big = "x".repeat(5000);
    let got = post_json(&server, json!({"prompt": big})).await;
    assert_eq!(got.status, 413);
    assert_eq!(got.json()["error"]["type"], "payload_too_large");
    // Chunked, with no Content-Length to check up front.
    let chunks = vec![Ok::<_, std::io::Error>(format!(r#"{{"prompt":"{big}"}}"#))];
    let response = client()
        .post(server.url("/v1/stream"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}

#[tokio::test]
async fn messages_and_system_make_the_conversation() {
    let server = spawn(fast_mock_config()).await;
    let got = post_json(
        &server,
        json!({
            "system": "Be brief.",
            "messages": [
                {"role": "user", "content": "first question"},
                {"role": "assistant", "content": "first answer"},
                {"role": "user", "content": "echo me back"}
            ],
            "mock": {"mode": "echo"}
        }),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.token_text(), "echo me back");
}

#[tokio::test]
async fn cors_lets_loopback_pages_in_by_default_and_follows_config() {
    let server = spawn(fast_mock_config()).await;
    let preflight = client()
        .request(reqwest::Method::OPTIONS, server.url("/v1/stream"))
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,authorization",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );

    let mut config = fast_mock_config();
    config.cors.allow_origins = vec!["https://chat.example".into()];
    let narrowed = spawn(config).await;
    for (origin, allowed) in [
        ("https://chat.example", true),
        ("https://evil.example", false),
    ] {
        let response = client()
            .post(narrowed.url("/v1/stream"))
            .header("origin", origin)
            .json(&json!({"prompt": "x", "mock": {"tokens": 1}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().is_success(), allowed, "{origin}");
        let header = response
            .headers()
            .get("access-control-allow-origin")
            .cloned();
        assert_eq!(header.is_some(), allowed, "{origin}");
    }
}

#[tokio::test]
async fn healthz_answers_200() {
    let server = spawn(fast_mock_config()).await;
    let response = client().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
}
