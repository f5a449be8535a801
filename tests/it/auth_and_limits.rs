//! Client API keys, rate limits and stream limits, on both front doors.

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::json;

fn auth_config() -> String {
    format!("[auth]\napi_keys = [\"sk-local-dev\"]\napi_keys_env = \"CLIENT_KEYS\"\n{FAST_MOCK}")
}

async fn auth_server() -> Server {
    spawn(config_with_env(
        &auth_config(),
        &[("CLIENT_KEYS", "sk-from-env, sk-second")],
    ))
    .await
}

#[tokio::test]
async fn a_request_without_a_key_or_with_a_wrong_one_is_a_401() {
    let server = auth_server().await;
    let url = server.url("/v1/stream");
    for request in [
        client().post(&url).json(&quick()),
        client().post(&url).bearer_auth("sk-wrong").json(&quick()),
        client()
            .post(&url)
            .header("x-api-key", "sk-local-de")
            .json(&quick()),
        client()
            .post(&url)
            .header("authorization", "Basic sk-local-dev")
            .json(&quick()),
    ] {
        let got = send(request).await;
        assert_eq!(got.status, 401, "{}", got.text);
        assert_eq!(error_of(&got)["type"], "unauthorized");
        assert!(!got.text.contains("sk-local-dev"), "a key is never echoed");
    }
    // The OpenAI door answers in OpenAI's shape, so the SDKs raise AuthenticationError.
    let got = send(
        client()
            .post(server.url("/v1/chat/completions"))
            .json(&quick_chat()),
    )
    .await;
    assert_eq!(got.status, 401);
    assert_eq!(error_of(&got)["code"], "invalid_api_key");
    assert!(error_of(&got).get("param").is_some());
    let got = send(client().get(server.url("/v1/models"))).await;
    assert_eq!(got.status, 401, "listing models needs a key too");
}

#[tokio::test]
async fn a_good_key_works_as_bearer_or_x_api_key_and_from_the_environment() {
    let server = auth_server().await;
    let url = server.url("/v1/stream");
    for request in [
        client().post(&url).bearer_auth("sk-local-dev"),
        client().post(&url).header("x-api-key", "sk-local-dev"),
        client().post(&url).bearer_auth("sk-from-env"),
        client().post(&url).header("x-api-key", "sk-second"),
    ] {
        let got = send(request.json(&quick())).await;
        assert_eq!(got.status, 200, "{}", got.text);
        assert_eq!(got.terminal().event, "done");
    }
    let got = send(
        client()
            .post(server.url("/v1/chat/completions"))
            .bearer_auth("sk-local-dev")
            .json(&quick_chat()),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text);
}

#[tokio::test]
async fn health_and_cors_preflight_stay_open_with_auth_on() {
    let server = auth_server().await;
    let health = client().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let preflight = client()
        .request(reqwest::Method::OPTIONS, server.url("/v1/stream"))
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    assert!(preflight
        .headers()
        .contains_key("access-control-allow-origin"));
}

// ---------------------------------------------------------------- rate limits

#[tokio::test]
async fn a_burst_admits_exactly_burst_requests_then_429_with_retry_after() {
    let toml = format!("[limits]\nrequests_per_second = 1\nburst = 3\n{FAST_MOCK}");
    // The tokenizer takes a while to build in a debug build; build it first,
    // so the burst is not spread over more than the one second it refills in.
    sluice::tokenizer::warm_up();
    let server = spawn(config(&toml)).await;
    let started = Instant::now();
    let mut statuses = Vec::new();
    let mut rejected = Vec::new();
    for i in 0..6 {
        // Alternate doors: one client, one budget.
        let got = if i % 2 == 0 {
            post_json(&server, quick()).await
        } else {
            post_to(&server, "/v1/chat/completions", quick_chat()).await
        };
        statuses.push(got.status);
        if got.status == 429 {
            rejected.push(got);
        }
    }
    let refilled = started.elapsed().as_secs() as usize; // one more per whole second
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    assert!(
        (3..=3 + refilled).contains(&admitted),
        "{statuses:?} in {:?}",
        started.elapsed()
    );
    assert_eq!(statuses[..3], [200, 200, 200]);
    for got in &rejected {
        let retry_after: u64 = got.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
        assert_eq!(error_of(got)["type"], "rate_limited");
    }
    // The OpenAI door's 429 carries OpenAI's code.
    let got = post_to(&server, "/v1/chat/completions", quick_chat()).await;
    assert_eq!(got.status, 429);
    assert_eq!(error_of(&got)["code"], "rate_limit_exceeded");
    // One second later, the budget has refilled by one.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(post_json(&server, quick()).await.status, 200);
}

/// Opens a stream that stays open (tokens every 100 ms) and returns it once
/// its headers arrived.
async fn open_stream(server: &Server, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut request = client().post(server.url("/v1/stream")).json(
        &json!({"prompt": "hi", "mock": {"ttft_ms": 0, "token_delay_ms": 100, "tokens": 300}}),
    );
    if let Some(addr) = forwarded_for {
        request = request.header("x-forwarded-for", addr);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn per_client_concurrent_streams_is_a_429_until_one_ends() {
    let toml = "[limits]\nper_client_concurrent_streams = 2\n";
    let server = spawn(config(toml)).await;
    let first = open_stream(&server, None).await;
    let second = open_stream(&server, None).await;
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = receive(open_stream(&server, None).await).await;
    assert_eq!(third.status, 429, "{}", third.text);
    assert_eq!(error_of(&third)["type"], "rate_limited");
    assert!(third.headers.contains_key("retry-after"));
    drop(first); // the client goes away: its slot comes back
    let mut admitted = None;
    for _ in 0..50 {
        let next = open_stream(&server, None).await;
        if next.status() == 200 {
            admitted = Some(next);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(admitted.is_some(), "a slot came back after a stream ended");
}

#[tokio::test]
async fn max_concurrent_streams_is_a_503_for_everyone() {
    let toml = "[limits]\nmax_concurrent_streams = 2\ntrust_forwarded_for = true\n";
    let server = spawn(config(toml)).await;
    let _a = open_stream(&server, Some("10.0.0.1")).await;
    let _b = open_stream(&server, Some("10.0.0.2")).await;
    let got = receive(open_stream(&server, Some("10.0.0.3")).await).await;
    assert_eq!(got.status, 503, "{}", got.text);
    assert_eq!(error_of(&got)["type"], "overloaded");
    let got = post_to(&server, "/v1/chat/completions", quick_chat()).await;
    assert_eq!(got.status, 503);
    assert_eq!(error_of(&got)["type"], "overloaded");
}

#[tokio::test]
async fn forwarded_for_keys_clients_only_when_trusted() {
    for (trusted, third_status) in [(true, 200), (false, 429)] {
        let toml = format!(
            "[limits]\nper_client_concurrent_streams = 1\ntrust_forwarded_for = {trusted}\n"
        );
        let server = spawn(config(&toml)).await;
        let first = open_stream(&server, Some("198.51.100.7")).await;
        assert_eq!(first.status(), 200);
        // A different client behind the proxy: its own budget only if trusted.
        let other = open_stream(&server, Some("203.0.113.9, 198.51.100.8")).await;
        assert_eq!(other.status(), third_status, "trusted = {trusted}");
    }
}
