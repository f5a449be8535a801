//! The Anthropic Messages door, `POST /v1/messages` (contract section 10):
//! the event sequence byte for byte, stop reasons, pings, mid-stream errors,
//! whole `message` objects, errors in Anthropic's shape and types, `x-api-key`,
//! every provider behind it, and hang-ups.

use std::time::{Duration, Instant};

use crate::common::fake_openai::TOKENS;
use crate::common::{fake_anthropic, *};
use crate::responses_door::{every_provider, named_events};
use serde_json::{json, Value};

fn messages(model: &str, stream: bool) -> Value {
    json!({"model": model, "max_tokens": 256, "stream": stream,
           "messages": [{"role": "user", "content": "Tell me a joke"}]})
}

async fn post(server: &Server, body: Value) -> Received {
    post_to(server, "/v1/messages", body).await
}

fn text_deltas(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(kind, _)| kind == "content_block_delta")
        .map(|(_, data)| data["delta"]["text"].as_str().unwrap())
        .collect()
}

/// The `message_delta` of a finished stream.
fn message_delta(events: &[(String, Value)]) -> Value {
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds[kinds.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    events[events.len() - 2].1.clone()
}

#[tokio::test]
async fn a_stream_is_anthropics_event_sequence_byte_for_byte() {
    let server = spawn(fast_mock_config()).await;
    let got = post(
        &server,
        json!({"model": "mock", "max_tokens": 100, "stream": true, "system": "Be brief.",
               "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
               "mock": {"text": "Hi there"}}),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.headers["content-type"], "text/event-stream");
    let id = named_events(&got)[0].1["message"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(id.starts_with("msg_"));
    let delta = |text: &str| {
        format!("event: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{text}\"}}}}\n\n")
    };
    let expected = [
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_ID\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"mock\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":13,\"output_tokens\":0}}}\n\n",
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
        "event: ping\ndata: {\"type\":\"ping\"}\n\n",
        &delta("Hi"),
        &delta(" there"),
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"input_tokens\":13,\"output_tokens\":2}}\n\n",
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
    ]
    .concat();
    assert_eq!(got.text.replace(&id, "msg_ID"), expected);
}

#[tokio::test]
async fn stop_reasons_are_anthropics_for_the_cap_and_a_stop_sequence() {
    let server = spawn(fast_mock_config()).await;
    let mut capped = messages("mock", true);
    capped["max_tokens"] = json!(3);
    let events = named_events(&post(&server, capped).await);
    let delta = message_delta(&events);
    assert_eq!(delta["delta"]["stop_reason"], "max_tokens");
    assert_eq!(delta["usage"]["output_tokens"], 3);

    let mut stopped = messages("mock:text=one two three four", true);
    stopped["stop_sequences"] = json!(["zzz", " three"]);
    let events = named_events(&post(&server, stopped.clone()).await);
    assert_eq!(text_deltas(&events), "one two");
    let delta = message_delta(&events);
    assert_eq!(
        delta["delta"],
        json!({"stop_reason": "stop_sequence", "stop_sequence": " three"})
    );

    stopped["stream"] = json!(false);
    let message = post(&server, stopped).await.json();
    assert_eq!(message["stop_reason"], "stop_sequence");
    assert_eq!(message["stop_sequence"], " three");
    assert_eq!(
        message["content"],
        json!([{"type": "text", "text": "one two"}])
    );
}

#[tokio::test]
async fn a_failure_after_the_start_is_an_error_event_and_the_end() {
    let server = spawn(fast_mock_config()).await;
    let got = post(&server, messages("mock:fail_after=2", true)).await;
    assert_eq!(got.status, 200);
    assert!(!got.cut);
    let events = named_events(&got);
    let deltas = events.iter().filter(|(k, _)| k == "content_block_delta");
    assert_eq!(deltas.count(), 2, "{}", got.text);
    let (kind, error) = events.last().unwrap();
    assert_eq!(kind, "error");
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "api_error");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("fail_after"));
    assert!(!events.iter().any(|(k, _)| k == "message_stop"));
}

#[tokio::test]
async fn silences_are_filled_with_pings_after_the_opening() {
    let server = spawn(config(
        "heartbeat_secs = 1\n[[models]]\nname = \"mock\"\nprovider = \"mock\"\nttft_ms = 2500\ntoken_delay_ms = 0\n",
    ))
    .await;
    let started = Instant::now();
    let response = client()
        .post(server.url("/v1/messages"))
        .json(&messages("mock:tokens=2", true))
        .send()
        .await
        .unwrap();
    // The response began within the heartbeat, before the first token.
    assert_eq!(response.status(), 200);
    assert!(started.elapsed() < Duration::from_millis(2000));
    let got = receive(response).await;
    let kinds: Vec<String> = named_events(&got).into_iter().map(|(k, _)| k).collect();
    // Heartbeat pings, then the text block with its own ping, then the tokens.
    let block = kinds
        .iter()
        .position(|k| k == "content_block_start")
        .unwrap();
    assert_eq!(kinds[0], "message_start");
    assert!(
        block >= 2 && kinds[1..block].iter().all(|k| k == "ping"),
        "{kinds:?}"
    );
    assert_eq!(kinds[block + 1..block + 3], ["ping", "content_block_delta"]);
}

#[tokio::test]
async fn without_stream_the_answer_is_one_message_object() {
    let server = spawn(fast_mock_config()).await;
    let streamed = named_events(&post(&server, messages("mock", true)).await);
    let got = post(&server, messages("mock", false)).await;
    assert_eq!(got.status, 200, "{}", got.text);
    let message = got.json();
    assert!(message["id"].as_str().unwrap().starts_with("msg_"));
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["model"], "mock");
    assert_eq!(message["stop_reason"], "end_turn");
    assert_eq!(
        message["content"],
        json!([{"type": "text", "text": text_deltas(&streamed)}])
    );
    assert_eq!(message["usage"], message_delta(&streamed)["usage"]);
}

#[tokio::test]
async fn errors_before_the_start_are_in_anthropics_shape_and_types() {
    let server = spawn(config(&format!(
        "[auth]\napi_keys = [\"sk-one\"]\n{FAST_MOCK}"
    )))
    .await;
    let with_key = |body: Value| {
        client()
            .post(server.url("/v1/messages"))
            .header("x-api-key", "sk-one")
            .header("anthropic-version", "2023-06-01")
            .json(&body)
    };
    let check = |got: &Received, status: u16, kind: &str| {
        assert_eq!(got.status, status, "{}", got.text);
        let body = got.json();
        assert_eq!(body["type"], "error", "{body}");
        assert_eq!(body["error"]["type"], kind, "{body}");
        assert!(body["error"]["message"].is_string());
    };
    let got = send(
        client()
            .post(server.url("/v1/messages"))
            .json(&messages("mock", true)),
    )
    .await;
    check(&got, 401, "authentication_error");
    let got = send(
        client()
            .post(server.url("/v1/messages"))
            .header("x-api-key", "sk-wrong")
            .json(&messages("mock", true)),
    )
    .await;
    check(&got, 401, "authentication_error");
    // A Bearer key is as good as `x-api-key`.
    let got = send(
        client()
            .post(server.url("/v1/messages"))
            .bearer_auth("sk-one")
            .json(&messages("mock:tokens=1", true)),
    )
    .await;
    assert_eq!(got.status, 200);

    check(
        &send(with_key(messages("nope", true))).await,
        404,
        "not_found_error",
    );
    let got = send(with_key(
        json!({"model": "mock", "messages": [{"role": "user", "content": "hi"}]}),
    ))
    .await;
    check(&got, 400, "invalid_request_error");
    assert!(got.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("max_tokens"));
    let got = send(with_key(messages("mock:error_status=429", true))).await;
    check(&got, 429, "rate_limit_error");
    assert!(got.headers.contains_key("retry-after"));
    check(
        &send(with_key(messages("mock:error_status=503", true))).await,
        503,
        "overloaded_error",
    );
    check(
        &send(with_key(messages("mock:error_status=502", false))).await,
        502,
        "api_error",
    );
    let got = send(with_key(json!("not an object"))).await;
    check(&got, 400, "invalid_request_error");
}

#[tokio::test]
async fn every_provider_streams_through_the_door_and_no_key_leaks() {
    let up = every_provider().await;
    for (model, text) in &up.expected {
        let got = post(&up.server, messages(model, true)).await;
        assert_eq!(got.status, 200, "{model}: {}", got.text);
        let events = named_events(&got);
        assert_eq!(events[0].0, "message_start", "{model}");
        assert_eq!(text_deltas(&events), *text, "{model}");
        let delta = message_delta(&events);
        assert_eq!(delta["delta"]["stop_reason"], "end_turn", "{model}");
        assert!(
            delta["usage"]["output_tokens"].as_u64().unwrap() > 0,
            "{model}"
        );
        assert!(!got.text.contains("SECRET"), "{model}: a key leaked");
    }
    let got = post(&up.server, messages("claude-short", true)).await;
    assert_eq!(
        message_delta(&named_events(&got))["delta"]["stop_reason"],
        "max_tokens"
    );
}

#[tokio::test]
async fn system_history_and_stop_sequences_reach_each_upstream_translated() {
    let up = every_provider().await;
    let body = |model: &str| {
        json!({"model": model, "max_tokens": 64, "stream": true, "temperature": 0.25,
               "system": [{"type": "text", "text": "Be brief."}],
               "stop_sequences": ["\n\nUser:"],
               "messages": [{"role": "user", "content": "Hi"},
                            {"role": "assistant", "content": "Hello!"},
                            {"role": "user", "content": [{"type": "text", "text": "A joke?"}]}]})
    };
    let got = post(&up.server, body("gpt")).await;
    assert_eq!(text_deltas(&named_events(&got)), TOKENS.concat());
    let sent = up.openai.seen.last_body.lock().unwrap().clone().unwrap();
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
               {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "A joke?"}])
    );
    assert_eq!(sent["stop"], json!(["\n\nUser:"]));
    assert_eq!(sent["max_tokens"], 64);
    assert_eq!(
        sent["temperature"], 0.5,
        "OpenAI's scale is twice Anthropic's"
    );

    let got = post(&up.server, body("claude")).await;
    assert_eq!(
        text_deltas(&named_events(&got)),
        fake_anthropic::TEXT.concat()
    );
    let sent = up.anthropic.seen.last_body.lock().unwrap().clone().unwrap();
    assert_eq!(sent["system"], "Be brief.");
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
               {"role": "user", "content": "A joke?"}])
    );
    assert_eq!(sent["stop_sequences"], json!(["\n\nUser:"]));
    assert_eq!(
        sent["temperature"], 0.25,
        "Anthropic's own scale, unchanged"
    );
}

#[tokio::test]
async fn a_client_hanging_up_cancels_the_upstream() {
    let up = every_provider().await;
    let mut response = client()
        .post(up.server.url("/v1/messages"))
        .json(&messages("gpt-drip", true))
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    while seen.matches("event: content_block_delta").count() < 2 {
        let chunk = response.chunk().await.unwrap().expect("the stream goes on");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(response);
    assert!(up.openai.seen.saw_cancels(1, Duration::from_secs(2)).await);
}

#[tokio::test]
async fn both_new_doors_are_labelled_in_the_metrics() {
    let server = spawn(fast_mock_config()).await;
    post(&server, messages("mock:tokens=1", true)).await;
    post_to(
        &server,
        "/v1/responses",
        json!({"model": "mock:tokens=1", "input": "hi"}),
    )
    .await;
    let metrics = client()
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for door in ["anthropic_messages", "openai_responses"] {
        assert!(
            metrics.contains(&format!("door=\"{door}\"")),
            "no {door} in\n{metrics}"
        );
    }
}
