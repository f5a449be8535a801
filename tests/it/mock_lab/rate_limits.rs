//! A mock route with `rpm`/`tpm` answers with the provider's rate-limit
//! headers for the door asked, counting down per client, and past a limit a
//! 429 in the door's shape with `retry-after`.

use serde_json::{json, Value};

use crate::common::*;

const LIMITED: &str =
    "[[models]]\nname = \"mock\"\nprovider = \"mock\"\nttft_ms = 0\ntoken_delay_ms = 0\nrpm = 3\n";

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn the_openai_door_counts_requests_down_then_answers_429_with_retry_after() {
    let server = spawn(config(LIMITED)).await;
    let chat = || {
        client()
            .post(server.url("/v1/chat/completions"))
            .json(&json!({"model": "mock", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    for remaining in ["2", "1", "0"] {
        let response = chat().await.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(
            header(&response, "x-ratelimit-limit-requests").as_deref(),
            Some("3")
        );
        assert_eq!(
            header(&response, "x-ratelimit-remaining-requests").as_deref(),
            Some(remaining)
        );
        let reset = header(&response, "x-ratelimit-reset-requests").unwrap();
        assert!(reset.ends_with('s'), "{reset}");
    }
    let refused = chat().await.unwrap();
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = header(&refused, "retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    let retry_ms: u64 = header(&refused, "retry-after-ms").unwrap().parse().unwrap();
    assert!(retry_ms > 0 && retry_ms <= 60_000);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
}

#[tokio::test]
async fn the_messages_door_sends_anthropic_s_headers_and_counts_tokens() {
    let server = spawn(config(
        "[[models]]\nname = \"mock\"\nprovider = \"mock\"\nttft_ms = 0\ntoken_delay_ms = 0\ntpm = 300\n",
    ))
    .await;
    let message = || {
        client()
            .post(server.url("/v1/messages"))
            .json(&json!({"model": "mock", "max_tokens": 100,
                "messages": [{"role": "user", "content": "hi"}]}))
            .send()
    };
    let first = message().await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(
        header(&first, "anthropic-ratelimit-tokens-limit").as_deref(),
        Some("300")
    );
    let remaining: u32 = header(&first, "anthropic-ratelimit-tokens-remaining")
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        remaining < 200,
        "the request and its max_tokens counted: {remaining}"
    );
    let reset = header(&first, "anthropic-ratelimit-tokens-reset").unwrap();
    assert!(reset.ends_with('Z') && reset.contains('T'), "{reset}");
    assert_eq!(message().await.unwrap().status(), 200);
    let refused = message().await.unwrap();
    assert_eq!(refused.status(), 429);
    assert!(header(&refused, "retry-after").is_some());
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
}

#[tokio::test]
async fn a_request_may_set_its_own_limit_and_clients_are_counted_apart() {
    let server = spawn(config(&format!(
        "[auth]\napi_keys = [\"key-a\", \"key-b\"]\n{FAST_MOCK}"
    )))
    .await;
    let stream = |key: &'static str| {
        client()
            .post(server.url("/v1/stream"))
            .bearer_auth(key)
            .json(&json!({"prompt": "hi", "mock": {"rpm": 1}}))
            .send()
    };
    let first = stream("key-a").await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(
        header(&first, "x-ratelimit-remaining-requests").as_deref(),
        Some("0")
    );
    assert_eq!(stream("key-a").await.unwrap().status(), 429);
    // Another key has its own minute.
    assert_eq!(stream("key-b").await.unwrap().status(), 200);
}
