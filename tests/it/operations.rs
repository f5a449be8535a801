//! Operations: metrics after real streams, the JSON access log, readiness,
//! and graceful shutdown of the real binary on SIGTERM.

use std::time::{Duration, Instant};

use crate::common::binary::Sluice;
use crate::common::*;
use serde_json::{json, Value};

/// The value of a metric line `name{labels} value`, 0 when absent.
fn metric(text: &str, name_and_labels: &str) -> f64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name_and_labels)?.trim().parse().ok())
        .unwrap_or(0.0)
}

async fn scrape(server: &Server) -> String {
    let response = client().get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    response.text().await.unwrap()
}

/// A config with a mock model of its own, so the metrics of parallel tests
/// (one process, one recorder) do not mix.
fn own_model(name: &str, extra: &str) -> sluice::config::Config {
    config(&format!(
        "default_model = \"{name}\"\n{extra}\n[[models]]\nname = \"{name}\"\nprovider = \"mock\"\nttft_ms = 20\ntoken_delay_ms = 5\n"
    ))
}

#[tokio::test]
async fn metrics_move_after_a_stream() {
    let server = spawn(own_model("metered", "")).await;
    let before = scrape(&server).await;
    let got = post_json(&server, json!({"prompt": "hi", "mock": {"tokens": 7}})).await;
    assert_eq!(got.terminal().event, "done");
    let got = post_to(&server, "/v1/chat/completions", json!({"model": "metered", "messages": [{"role": "user", "content": "hi"}], "stream": true, "mock": {"tokens": 3}})).await;
    assert_eq!(got.status, 200);
    let after = scrape(&server).await;
    let delta = |name: &str| metric(&after, name) - metric(&before, name);
    assert_eq!(
        delta(r#"sluice_tokens_relayed_total{model="metered"}"#),
        10.0,
        "{after}"
    );
    assert_eq!(
        delta(r#"gen_ai_server_time_to_first_token_seconds_count{model="metered"}"#),
        2.0
    );
    assert!(
        metric(
            &after,
            r#"gen_ai_server_time_to_first_token_seconds_sum{model="metered"}"#
        ) >= 0.04,
        "two first tokens of at least 20 ms"
    );
    assert_eq!(
        delta(r#"gen_ai_server_time_per_output_token_seconds_count{model="metered"}"#),
        8.0,
        "gaps between tokens"
    );
    assert_eq!(
        delta(r#"sluice_streams_ended_total{model="metered",ended="done",error_type=""}"#),
        2.0
    );
    assert_eq!(
        delta(r#"sluice_requests_total{door="native",model="metered",status="200"}"#),
        1.0
    );
    assert_eq!(
        delta(r#"sluice_requests_total{door="openai_chat",model="metered",status="200"}"#),
        1.0
    );
    assert_eq!(
        delta(r#"sluice_proxy_overhead_seconds_count{model="metered"}"#),
        2.0
    );
    assert!(after.contains("# TYPE gen_ai_server_time_to_first_token_seconds histogram"));
}

#[tokio::test]
async fn metrics_say_how_streams_ended() {
    let server = spawn(own_model("ending", "")).await;
    let before = scrape(&server).await;
    // An error mid-stream, a cut, and a client that leaves.
    post_json(&server, json!({"prompt": "hi", "mock": {"fail_after": 2}})).await;
    post_json(&server, json!({"prompt": "hi", "mock": {"drop_after": 2}})).await;
    let mut leaving = client()
        .post(server.url("/v1/stream"))
        .json(&json!({"prompt": "hi", "mock": {"token_delay_ms": 50, "tokens": 500}}))
        .send()
        .await
        .unwrap();
    leaving.chunk().await.unwrap();
    drop(leaving);
    let gone = r#"sluice_streams_ended_total{model="ending",ended="client_gone",error_type=""}"#;
    let mut after = String::new();
    for _ in 0..50 {
        after = scrape(&server).await;
        if metric(&after, gone) >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let delta = |name: &str| metric(&after, name) - metric(&before, name);
    assert_eq!(
        delta(
            r#"sluice_streams_ended_total{model="ending",ended="error",error_type="upstream_error"}"#
        ),
        1.0,
        "{after}"
    );
    assert_eq!(
        delta(r#"sluice_streams_ended_total{model="ending",ended="cut",error_type=""}"#),
        1.0
    );
    assert_eq!(delta(gone), 1.0);
    assert_eq!(
        delta(r#"sluice_upstream_cancellations_total{model="ending"}"#),
        1.0
    );
    assert_eq!(
        delta(r#"sluice_upstream_errors_total{model="ending",kind="stream"}"#),
        1.0
    );
}

#[tokio::test]
async fn rejections_are_counted() {
    let server = spawn(own_model(
        "limited",
        "[limits]\nrequests_per_second = 1\nburst = 1\n",
    ))
    .await;
    let before = scrape(&server).await;
    assert_eq!(
        post_json(&server, json!({"prompt": "hi", "mock": {"tokens": 1}}))
            .await
            .status,
        200
    );
    assert_eq!(
        post_json(&server, json!({"prompt": "hi"})).await.status,
        429
    );
    let after = scrape(&server).await;
    let name = r#"sluice_rejections_total{reason="rate"}"#;
    assert!(
        metric(&after, name) - metric(&before, name) >= 1.0,
        "{after}"
    );
}

/// Starts a slow stream and returns it once its first token arrived.
async fn slow_stream(sluice: &Sluice, tokens: u32, delay_ms: u64) -> reqwest::Response {
    let mut response = client()
        .post(sluice.url("/v1/stream"))
        .json(&json!({"prompt": "hi", "mock": {"ttft_ms": 0, "token_delay_ms": delay_ms, "tokens": tokens}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut first = String::new();
    while !first.contains("data:") {
        first.push_str(&String::from_utf8_lossy(
            &response.chunk().await.unwrap().unwrap(),
        ));
    }
    response
}

async fn rest_of(mut response: reqwest::Response) -> Received {
    let mut text = Vec::new();
    while let Ok(Some(bytes)) = response.chunk().await {
        text.extend_from_slice(&bytes);
    }
    Received::of(200, Default::default(), text, false)
}

#[tokio::test]
async fn sigterm_lets_a_stream_in_flight_finish_then_exits_0() {
    let mut sluice = Sluice::start("shutdown_grace_secs = 10\n", &[]);
    let stream = slow_stream(&sluice, 20, 50).await;
    sluice.terminate();
    let got = rest_of(stream).await;
    assert_eq!(got.terminal().event, "done", "{}", got.text);
    assert_eq!(sluice.wait(Duration::from_secs(10)), Some(0));
}

#[tokio::test]
async fn streams_on_every_serving_thread_finish_before_the_exit() {
    let mut sluice = Sluice::start("shutdown_grace_secs = 10\n", &["--threads", "3"]);
    // A client each, so each stream has its own connection, which the kernel
    // hands to one of the three threads' sockets.
    let mut streams = Vec::new();
    for _ in 0..9 {
        streams.push(slow_stream(&sluice, 10, 50).await);
    }
    sluice.terminate();
    for stream in streams {
        let got = rest_of(stream).await;
        assert_eq!(got.terminal().event, "done", "{}", got.text);
    }
    assert_eq!(sluice.wait(Duration::from_secs(10)), Some(0));
}

/// Finding 12: an operator can force-quit during the grace period.
#[tokio::test]
async fn a_second_sigterm_exits_at_once() {
    let mut sluice = Sluice::start("shutdown_grace_secs = 60\n", &[]);
    let _stream = slow_stream(&sluice, 1000, 50).await;
    sluice.terminate();
    // The grace period would last a minute; the second signal ends it.
    std::thread::sleep(Duration::from_millis(300));
    sluice.terminate();
    assert_eq!(sluice.wait(Duration::from_secs(10)), Some(130));
}

#[tokio::test]
async fn a_stream_past_the_grace_period_ends_with_shutting_down() {
    let mut sluice = Sluice::start("shutdown_grace_secs = 1\n", &[]);
    let stream = slow_stream(&sluice, 1000, 50).await;
    let asked = Instant::now();
    sluice.terminate();
    let got = rest_of(stream).await;
    assert_eq!(got.terminal().event, "error", "{}", got.text);
    let error: Value = serde_json::from_str(&got.terminal().data).unwrap();
    assert_eq!(error["error"]["type"], "shutting_down");
    assert!(
        asked.elapsed() >= Duration::from_millis(900),
        "the stream had its grace period"
    );
    assert_eq!(sluice.wait(Duration::from_secs(10)), Some(0));
}

#[tokio::test]
async fn readiness_flips_when_shutdown_begins() {
    let mut sluice = Sluice::start("shutdown_delay_secs = 2\nshutdown_grace_secs = 5\n", &[]);
    let ready = client().get(sluice.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    sluice.terminate();
    let mut status = 200;
    for _ in 0..50 {
        status = client()
            .get(sluice.url("/readyz"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 503, "not ready once shutdown began");
    let health = client().get(sluice.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "still alive while draining");
    assert_eq!(sluice.wait(Duration::from_secs(10)), Some(0));
}

#[tokio::test]
async fn the_json_access_log_has_one_line_per_request_and_no_secrets() {
    let toml = "[auth]\napi_keys = [\"sk-client-SECRET-42\"]\n[[models]]\nname = \"mock\"\nprovider = \"mock\"\nttft_ms = 5\ntoken_delay_ms = 1\n";
    let sluice = Sluice::start(toml, &["--log-format", "json"]);
    let response = client()
        .post(sluice.url("/v1/stream"))
        .bearer_auth("sk-client-SECRET-42")
        .header("x-request-id", "req-abc-123")
        .json(&json!({"prompt": "my private prompt text", "mock": {"tokens": 4}}))
        .send()
        .await
        .unwrap();
    let got = receive(response).await;
    assert_eq!(got.terminal().event, "done");
    let denied = client()
        .post(sluice.url("/v1/stream"))
        .json(&json!({"prompt": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let mut access = Vec::new();
    for _ in 0..100 {
        access = sluice
            .log_lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(|l| l["target"] == "sluice::access")
            .collect::<Vec<_>>();
        if access.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(access.len(), 2, "{:?}", sluice.log_lines());
    let line = &access[0];
    assert_eq!(line["request_id"], "req-abc-123");
    assert_eq!(line["client"], "key#0");
    assert_eq!(line["door"], "native");
    assert_eq!(line["model"], "mock");
    assert_eq!(line["status"], 200);
    assert_eq!(line["tokens"], 4);
    assert_eq!(line["ended"], "done");
    assert!(line["ttft_ms"].as_f64().unwrap() >= 5.0, "{line}");
    assert!(line["duration_ms"].as_f64().unwrap() >= line["ttft_ms"].as_f64().unwrap());
    assert_eq!(access[1]["status"], 401);
    assert_eq!(access[1]["error_type"], "unauthorized");
    let all = sluice.log_lines().join("\n");
    assert!(!all.contains("SECRET"), "a key reached the log");
    assert!(
        !all.contains("private prompt"),
        "prompt text reached the log"
    );
}

/// An unknown path is a 404 in the shape of the door it falls under, and it
/// has an access-log line naming it, like any request.
#[tokio::test]
async fn an_unknown_path_is_a_404_in_its_door_s_shape_and_in_the_access_log() {
    let sluice = Sluice::start("", &[]);
    let get = async |path: &str| {
        let response = client()
            .post(sluice.url(path))
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json::<Value>().await.unwrap())
    };
    let (status, anthropic) = get("/v1/messages/batches").await;
    assert_eq!(status, 404);
    assert_eq!(anthropic["type"], "error", "{anthropic}");
    assert_eq!(anthropic["error"]["type"], "not_found_error");
    let (status, openai) = get("/v1/chat/completions/x").await;
    assert_eq!(status, 404);
    assert!(openai["error"]["message"]
        .as_str()
        .unwrap()
        .contains("/v1/chat/completions/x"));
    assert!(openai["error"].get("type").is_some(), "{openai}");
    let (status, _) = get("/v1/nothing-here").await;
    assert_eq!(status, 404);
    let logged = || {
        sluice
            .log_lines()
            .iter()
            .any(|l| l.contains("POST /v1/nothing-here") && l.contains("404"))
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    while !logged() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(logged(), "{:#?}", sluice.log_lines());
}
