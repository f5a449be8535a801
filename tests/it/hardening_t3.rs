//! The T3 defects review (`shared/reviews/defects-2026-12-t3.md`): one
//! regression test per finding that is not about a stream's ending (those
//! are in `reader_stalls.rs`) nor the Redis store's.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::*;

/// The three schema bombs of the review: a huge `minLength`, fan-out through
/// `$ref: "#"`, a huge `minItems`.
fn bombs() -> Vec<Value> {
    let fan_out: serde_json::Map<String, Value> = (0..6)
        .map(|i| (format!("p{i}"), json!({"$ref": "#"})))
        .collect();
    vec![
        json!({"type": "object", "properties": {"s": {"type": "string", "minLength": 300_000}}}),
        json!({"type": "object", "properties": fan_out}),
        json!({"type": "object", "properties": {"a": {"type": "array", "minItems": 1_099_511_627_776_u64}}}),
    ]
}

/// T3-1: a request whose tool schema asks for unbounded work gets bounded
/// arguments quickly, and the server keeps answering meanwhile.
#[tokio::test]
async fn t3_1_schema_bombs_get_bounded_answers_and_healthz_keeps_answering() {
    let server = spawn(fast_mock_config()).await;
    let probe_url = server.url("/healthz");
    let probing = tokio::spawn(async move {
        let probe = client();
        let mut slowest = Duration::ZERO;
        loop {
            let asked = Instant::now();
            if probe.get(&probe_url).send().await.is_err() {
                return slowest;
            }
            slowest = slowest.max(asked.elapsed());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    for schema in bombs() {
        let asked = Instant::now();
        let got = send(client().post(server.url("/v1/chat/completions")).json(&json!({
            "model": "mock",
            "messages": [{"role": "user", "content": "go"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": schema}}],
            "tool_choice": "required",
        })))
        .await;
        assert_eq!(got.status, 200, "{}", got.text);
        let arguments = got.json()["choices"][0]["message"]["tool_calls"][0]["function"]
            ["arguments"]
            .as_str()
            .expect("a tool call")
            .len();
        assert!(arguments <= 64 * 1024, "{arguments} bytes of arguments");
        assert!(
            asked.elapsed() < Duration::from_secs(10),
            "{:?}",
            asked.elapsed()
        );
    }
    probing.abort();
    let slowest = probing.await.unwrap_or(Duration::ZERO);
    assert!(
        slowest < Duration::from_millis(100),
        "/healthz took {slowest:?}"
    );
}

/// T3-6: a watcher reads the log a window at a time, and still gets every
/// frame of a long one; and watching costs a rate token.
#[tokio::test]
async fn t3_6_a_watcher_reads_a_long_log_in_windows_and_costs_a_rate_token() {
    let server = spawn(config(FAST_MOCK)).await;
    let made = post_json(&server, json!({"prompt": "hi", "mock": {"tokens": 20000}})).await;
    assert_eq!(made.status, 200);
    let id = made.headers["x-sluice-generation"]
        .to_str()
        .unwrap()
        .to_owned();
    let events = server.url(&format!("/v1/generations/{id}/events"));
    let watched = receive(client().get(&events).send().await.unwrap()).await;
    assert!(made.tokens().len() > 19_000);
    assert_eq!(watched.tokens().len(), made.tokens().len());
    assert_eq!(watched.terminal().event, "done");
    assert_eq!(watched.token_text(), made.token_text());
    // With a rate limit, watching spends its tokens: quick watches of a
    // short generation meet a 429 (however long each took: nothing here
    // depends on the refill's timing).
    let limited = spawn(config(&format!(
        "[limits]\nrequests_per_second = 1\nburst = 3\n{FAST_MOCK}"
    )))
    .await;
    let id = ended_generation(&limited, 3).await;
    let events = limited.url(&format!("/v1/generations/{id}/events"));
    let mut statuses = Vec::new();
    for _ in 0..10 {
        statuses.push(
            client()
                .get(&events)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert!(statuses.contains(&429), "{statuses:?}");
}

/// A generation of `tokens` fast mock tokens, ended; its id.
async fn ended_generation(server: &Server, tokens: u32) -> String {
    let made = post_json(server, json!({"prompt": "hi", "mock": {"tokens": tokens}})).await;
    assert_eq!(made.terminal().event, "done");
    made.headers["x-sluice-generation"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// T3-12: a `Last-Event-ID` sluice never wrote is a 400 (not a 200 with an
/// empty body an `EventSource` would loop on); `?after=N` past the end of
/// an ended log is a 204; a watcher that fell behind gets an error frame
/// with no id.
#[tokio::test]
async fn t3_12_resume_edges() {
    let server = spawn(config(&format!(
        "[streams]\nmax_log_bytes = 4096\n{FAST_MOCK}"
    )))
    .await;
    let id = ended_generation(&server, 3).await; // frames 0..=3, 3 is done
    let resume = |index: &str| {
        client()
            .get(server.url("/v1/stream"))
            .header("last-event-id", format!("{id}:{index}"))
            .send()
    };
    for never in ["18446744073709551615", "99", "4"] {
        let got = resume(never).await.unwrap();
        assert_eq!(got.status(), 400, "Last-Event-ID {never}");
        let body: Value = got.json().await.unwrap();
        assert_eq!(body["error"]["param"], "last-event-id", "{body}");
    }
    assert_eq!(resume("3").await.unwrap().status(), 204);
    assert_eq!(resume("1").await.unwrap().status(), 200);
    let after = |n: &str| {
        client()
            .get(server.url(&format!("/v1/generations/{id}/events?after={n}")))
            .send()
    };
    assert_eq!(after("500").await.unwrap().status(), 204);
    assert_eq!(after("18446744073709551615").await.unwrap().status(), 204);
    // Past the end of a running log: 400.
    let running = client()
        .post(server.url("/v1/stream"))
        .json(&json!({"prompt": "hi", "mock": {"tokens": 50, "token_delay_ms": 100}}))
        .send()
        .await
        .unwrap();
    let running_id = running.headers()["x-sluice-generation"]
        .to_str()
        .unwrap()
        .to_owned();
    let ahead = client()
        .get(server.url(&format!("/v1/generations/{running_id}/events?after=500")))
        .send()
        .await
        .unwrap();
    assert_eq!(ahead.status(), 400);
    drop(running);
    // A log trimmed to its bound: a watcher from frame 0 fell behind.
    let long = ended_generation(&server, 500).await;
    let behind = receive(
        client()
            .get(server.url(&format!("/v1/generations/{long}/events")))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(behind.terminal().event, "error", "{}", behind.text);
    assert!(behind.terminal().id.is_none(), "{}", behind.text);
}

/// T3-13: the usage of a generation cancelled during its reasoning counts
/// the reasoning.
#[tokio::test]
async fn t3_13_a_cancelled_generations_usage_counts_its_reasoning() {
    let server = spawn(fast_mock_config()).await;
    let response = client()
        .post(server.url("/v1/stream"))
        .json(&json!({"prompt": "hi", "mock": {"reasoning_tokens": 400, "tokens": 5, "token_delay_ms": 5}}))
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-sluice-generation"]
        .to_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let status: Value = client()
        .delete(server.url(&format!("/v1/generations/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["status"], "cancelled", "{status}");
    let got = receive(response).await;
    let done = got.terminal_json();
    assert_eq!(done["finish_reason"], "cancelled", "{done}");
    let usage = &done["usage"];
    let reasoning = usage["reasoning_tokens"].as_u64().unwrap_or(0);
    assert!(reasoning > 0, "{usage}");
    assert_eq!(
        usage["completion_tokens"].as_u64(),
        Some(reasoning),
        "{usage}"
    );
}

/// T3-14: a browser's no-cors request from another site carries no Origin
/// but says `Sec-Fetch-Site: cross-site`: refused like a foreign Origin. A
/// page on the same site (a dev server on another port) still gets through.
#[tokio::test]
async fn t3_14_a_cross_site_no_cors_get_is_refused() {
    let server = spawn(fast_mock_config()).await;
    let get = |site: &str| {
        client()
            .get(server.url("/v1/stream?prompt=hi&mock_tokens=2"))
            .header("sec-fetch-site", site)
            .header("sec-fetch-mode", "no-cors")
            .send()
    };
    let refused = get("cross-site").await.unwrap();
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["type"], "forbidden", "{body}");
    assert_eq!(get("same-site").await.unwrap().status(), 200);
    assert_eq!(get("none").await.unwrap().status(), 200);
    // With every origin allowed, no site is foreign.
    let open = spawn(config(&format!(
        "[cors]\nallow_origins = [\"*\"]\n{FAST_MOCK}"
    )))
    .await;
    let got = client()
        .get(open.url("/v1/stream?prompt=hi&mock_tokens=2"))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(got.status(), 200);
}

/// T3-15: the playground cannot be framed.
#[tokio::test]
async fn t3_15_the_playground_cannot_be_framed() {
    let server = spawn(fast_mock_config()).await;
    let page = client().get(server.url("/")).send().await.unwrap();
    let csp = page.headers()["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
}
