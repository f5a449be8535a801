//! Generations as resources (contract section 7): `GEN:N` ids, the
//! generations API, reconnecting with `Last-Event-ID`, cancellation,
//! abandonment, the reconnect grace, auth isolation and stream slots.

use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::common::fake_openai::{self, FakeOpenAi, TOKENS, UPSTREAM_KEY};
use crate::common::*;
use serde_json::{json, Value};
use sluice::sse::{Decoder, Event};

/// A mock paced slowly enough to drop a connection part way.
const PACED_MOCK: &str =
    "[[models]]\nname = \"mock\"\nprovider = \"mock\"\nttft_ms = 0\ntoken_delay_ms = 40\ntokens = 30\n";

/// Reads `response` until it has `k` events (or ends), then drops it.
async fn first_events(mut response: reqwest::Response, k: usize) -> Vec<Event> {
    let mut decoder = Decoder::new();
    let mut events = Vec::new();
    while events.len() < k {
        match response.chunk().await {
            Ok(Some(bytes)) => {
                decoder.push(&bytes);
                while let Some(event) = decoder.next_event() {
                    events.push(event);
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    events.truncate(k);
    events
}

/// The `N` of a `GEN:N` id, checking the `GEN`.
fn index_of(event: &Event, generation: &str) -> u64 {
    let id = event.id.as_deref().expect("every frame has an id");
    let (gen, n) = id.rsplit_once(':').expect("GEN:N");
    assert_eq!(gen, generation, "{id}");
    n.parse().unwrap()
}

async fn create(server: &Server, body: Value) -> Value {
    let response = client()
        .post(server.url("/v1/generations"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let created: Value = response.json().await.unwrap();
    assert_eq!(
        location,
        format!("/v1/generations/{}", created["id"].as_str().unwrap())
    );
    created
}

async fn events(
    server: &Server,
    id: &str,
    headers: &[(&str, &str)],
    query: &str,
) -> reqwest::Response {
    let mut request = client().get(server.url(&format!("/v1/generations/{id}/events{query}")));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

async fn status(server: &Server, id: &str) -> Value {
    client()
        .get(server.url(&format!("/v1/generations/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Starts a native stream; its generation's id and the response.
async fn open(server: &Server, body: Value) -> (String, reqwest::Response) {
    let response = client()
        .post(server.url("/v1/stream"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-sluice-generation"]
        .to_str()
        .unwrap()
        .to_owned();
    (id, response)
}

async fn upstream(extra: &str) -> (FakeOpenAi, Server) {
    let fake = fake_openai::start().await;
    let toml = fake_openai::config_toml(&fake.base_url, extra);
    let server = spawn(config_with_env(&toml, &[("FAKE_KEY", UPSTREAM_KEY)])).await;
    (fake, server)
}

#[tokio::test]
async fn a_native_stream_is_a_generation_every_frame_id_names_it() {
    let server = spawn(fast_mock_config()).await;
    let got = post_json(&server, json!({"prompt": "hi", "mock": {"tokens": 5}})).await;
    assert_eq!(got.status, 200);
    // The retry shares its block with the first frame (section 18).
    assert!(got.text.starts_with("retry: 1000\nid: "), "{}", got.text);
    let generation = got.headers["x-sluice-generation"]
        .to_str()
        .unwrap()
        .to_owned();
    let random = generation.strip_prefix("gen_").expect("gen_ prefix");
    assert!(random.len() >= 16);
    let indexes: Vec<u64> = got
        .events
        .iter()
        .map(|e| index_of(e, &generation))
        .collect();
    let expected: Vec<u64> = (0..got.events.len() as u64).collect();
    assert_eq!(
        indexes, expected,
        "ids count the log from 0, the terminal frame included"
    );
    assert_eq!(got.terminal().event, "done");
    // The generation is kept: its status and text are there to read.
    let status = status(&server, &generation).await;
    assert_eq!(status["status"], "done");
    assert_eq!(status["text"], got.token_text());
    assert_eq!(status["finish_reason"], "stop");
    assert_eq!(status["usage"], got.terminal_json()["usage"]);
}

#[tokio::test]
async fn post_answers_201_at_once_then_the_events_carry_the_whole_answer() {
    let server = spawn(config(
        "[[models]]\nname = \"mock\"\nprovider = \"mock\"\nttft_ms = 2000\n",
    ))
    .await;
    let started = std::time::Instant::now();
    let created = create(
        &server,
        json!({"prompt": "hi", "mock": {"tokens": 4, "token_delay_ms": 0}}),
    )
    .await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "201 does not wait for a token"
    );
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["status"], "running");
    assert_eq!(created["model"], "mock");
    assert_eq!(
        created["events_url"],
        format!("/v1/generations/{id}/events")
    );
    let got = receive(events(&server, id, &[], "").await).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.headers["x-sluice-generation"], id);
    assert_eq!(got.tokens().len(), 4);
    assert_eq!(got.terminal().event, "done");
    assert_eq!(index_of(got.terminal(), id), 4);
}

#[tokio::test]
async fn two_watchers_see_identical_frames_and_a_late_one_the_whole_log() {
    let server = spawn(config(PACED_MOCK)).await;
    let created = create(&server, json!({"prompt": "hi", "mock": {"tokens": 10}})).await;
    let id = created["id"].as_str().unwrap();
    let (a, b) = tokio::join!(
        async { receive(events(&server, id, &[], "").await).await },
        async { receive(events(&server, id, &[], "").await).await }
    );
    assert_eq!(a.events, b.events);
    assert_eq!(a.tokens().len(), 10);
    let late = receive(events(&server, id, &[], "").await).await;
    assert_eq!(
        late.events, a.events,
        "the log replays in full after the end"
    );
}

#[tokio::test]
async fn a_dropped_watcher_resumes_by_header_or_by_after_with_no_gap_and_no_duplicate() {
    let server = spawn(config(PACED_MOCK)).await;
    let created = create(&server, json!({"prompt": "hi", "mock": {"tokens": 12}})).await;
    let id = created["id"].as_str().unwrap();
    let whole = receive(events(&server, id, &[], "").await).await;

    let first = first_events(events(&server, id, &[], "").await, 3).await;
    let last = first.last().unwrap().id.clone().unwrap();
    let by_header = receive(events(&server, id, &[("last-event-id", &last)], "").await).await;
    let by_after = receive(events(&server, id, &[], "?after=2").await).await;
    let resumed_native = receive(
        client()
            .get(server.url("/v1/stream"))
            .header("last-event-id", &last)
            .send()
            .await
            .unwrap(),
    )
    .await;
    for rest in [&by_header, &by_after, &resumed_native] {
        assert_eq!(rest.status, 200);
        let joined: Vec<&Event> = first.iter().chain(rest.events.iter()).collect();
        assert_eq!(joined, whole.events.iter().collect::<Vec<_>>());
    }
}

#[tokio::test]
async fn a_stream_dropped_part_way_resumes_on_v1_stream_while_it_runs() {
    let (fake, server) = upstream("[streams]\nreconnect_grace_ms = 3000\n").await;
    let (id, response) = open(&server, json!({"model": "up-slow", "prompt": "hi"})).await;
    let first = first_events(response, 2).await;
    let last = first.last().unwrap().id.clone().unwrap();
    let rest = receive(
        client()
            .post(server.url("/v1/stream"))
            .header("last-event-id", &last)
            .json(&json!({"prompt": "ignored: a reconnect starts nothing"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(rest.status, 200);
    let tokens: Vec<String> = first
        .iter()
        .chain(rest.events.iter())
        .filter(|e| e.event == "message")
        .map(token_of)
        .collect();
    assert_eq!(tokens, TOKENS);
    assert_eq!(rest.terminal().event, "done");
    assert_eq!(index_of(rest.terminal(), &id), TOKENS.len() as u64);
    assert_eq!(
        fake.seen.requests.load(Ordering::SeqCst),
        1,
        "one upstream call"
    );
}

#[tokio::test]
async fn with_no_grace_a_client_leaving_still_cancels_at_once() {
    let (fake, server) = upstream("").await;
    let (id, response) = open(&server, json!({"model": "up-drip", "prompt": "hi"})).await;
    first_events(response, 3).await;
    assert!(
        fake.seen.saw_cancels(1, Duration::from_secs(2)).await,
        "the upstream saw the hang-up"
    );
    let status = status(&server, &id).await;
    assert_eq!(status["status"], "cancelled");
    assert_eq!(status["finish_reason"], "cancelled");
}

#[tokio::test]
async fn after_the_terminal_frame_a_reconnect_is_a_204() {
    let server = spawn(fast_mock_config()).await;
    let got = post_json(&server, json!({"prompt": "hi", "mock": {"tokens": 3}})).await;
    let terminal = got.terminal().id.clone().unwrap();
    for path in [
        "/v1/stream".to_owned(),
        format!(
            "/v1/generations/{}/events",
            &terminal[..terminal.rfind(':').unwrap()]
        ),
    ] {
        let response = client()
            .get(server.url(&path))
            .header("last-event-id", &terminal)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204, "{path}");
    }
    // One frame earlier, the terminal frame is still to come.
    let (generation, n) = terminal.rsplit_once(':').unwrap();
    let before = format!("{generation}:{}", n.parse::<u64>().unwrap() - 1);
    let rest = send(
        client()
            .get(server.url("/v1/stream"))
            .header("last-event-id", &before),
    )
    .await;
    assert_eq!(rest.status, 200);
    assert_eq!(rest.events, got.events[got.events.len() - 1..]);
}

#[tokio::test]
async fn unknown_generations_are_404s_and_a_foreign_last_event_id_is_ignored() {
    let server = spawn(fast_mock_config()).await;
    let unknown = "gen_AAAAAAAAAAAAAAAAAAAAAA";
    for request in [
        client().get(server.url(&format!("/v1/generations/{unknown}"))),
        client().delete(server.url(&format!("/v1/generations/{unknown}"))),
        client().get(server.url(&format!("/v1/generations/{unknown}/events"))),
        client()
            .get(server.url("/v1/stream?prompt=hi"))
            .header("last-event-id", format!("{unknown}:3")),
    ] {
        let got = send(request).await;
        assert_eq!(got.status, 404, "{}", got.text);
        assert_eq!(error_of(&got)["type"], "not_found");
    }
    // Not of the form GEN:N: a new generation starts.
    let got = send(
        client()
            .get(server.url("/v1/stream?prompt=hi&mock_tokens=2"))
            .header("last-event-id", "41"),
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.tokens().len(), 2);
}

#[tokio::test]
async fn delete_closes_the_upstream_and_watchers_get_done_cancelled_with_usage() {
    let (fake, server) = upstream("").await;
    let created = create(&server, json!({"model": "up-drip", "prompt": "hi"})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let watcher = events(&server, &id, &[], "").await;
    let watched = tokio::spawn(receive(watcher));
    assert!(
        eventually(Duration::from_secs(5), || fake
            .seen
            .requests
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let deleted: Value = client()
        .delete(server.url(&format!("/v1/generations/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(deleted["status"], "cancelled");
    assert!(
        fake.seen.saw_cancels(1, Duration::from_secs(2)).await,
        "the upstream connection is closed within 2 s"
    );
    let got = watched.await.unwrap();
    assert_eq!(got.terminal().event, "done");
    let done = got.terminal_json();
    assert_eq!(done["finish_reason"], "cancelled");
    let completion = done["usage"]["completion_tokens"].as_u64().unwrap();
    assert!(completion > 0, "the usage so far: {done}");
    // Idempotent: the same answer again, nothing changed.
    let again: Value = client()
        .delete(server.url(&format!("/v1/generations/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again, deleted);
}

/// The relay notices a cancel while its upstream is silent, not at its next
/// heartbeat (15 s) or idle deadline (30 s): the stop is asked on every wake.
#[tokio::test]
async fn delete_ends_a_generation_whose_upstream_has_gone_quiet_at_once() {
    let (fake, server) = upstream("").await;
    let created = create(&server, json!({"model": "up-burst", "prompt": "hi"})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let watcher = events(&server, &id, &[], "").await;
    let tokens = first_events(watcher, 2).await;
    assert_eq!(tokens.len(), 2, "the burst's first tokens came");
    let asked = std::time::Instant::now();
    let deleted = client()
        .delete(server.url(&format!("/v1/generations/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    assert!(
        fake.seen.saw_cancels(1, Duration::from_secs(2)).await,
        "the silent upstream's connection is closed within 2 s"
    );
    let after = events(&server, &id, &[], "").await;
    let got = tokio::time::timeout(Duration::from_secs(3), receive(after))
        .await
        .expect("the generation ended within 3 s of its DELETE");
    assert_eq!(got.terminal_json()["finish_reason"], "cancelled");
    assert!(asked.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_generation_nobody_watches_is_abandoned_after_abandon_ms() {
    let (fake, server) = upstream("[streams]\nabandon_ms = 400\n").await;
    let created = create(&server, json!({"model": "up-drip", "prompt": "hi"})).await;
    let id = created["id"].as_str().unwrap();
    assert!(
        fake.seen.saw_cancels(1, Duration::from_secs(5)).await,
        "the abandoned generation's upstream request is closed"
    );
    assert_eq!(status(&server, id).await["status"], "cancelled");
}

#[tokio::test]
async fn a_watched_generation_is_not_abandoned() {
    let server = spawn(config(&format!(
        "[streams]\nabandon_ms = 300\n{PACED_MOCK}"
    )))
    .await;
    let created = create(&server, json!({"prompt": "hi", "mock": {"tokens": 20}})).await;
    let id = created["id"].as_str().unwrap();
    // 20 tokens at 40 ms outlast abandon_ms while watched.
    let got = receive(events(&server, id, &[], "").await).await;
    assert_eq!(got.tokens().len(), 20);
    assert_eq!(got.terminal_json()["finish_reason"], "stop");
}

#[tokio::test]
async fn with_auth_a_generation_exists_only_for_the_key_that_made_it() {
    let server = spawn(config(&format!(
        "[auth]\napi_keys = [\"key-a\", \"key-b\"]\n{FAST_MOCK}"
    )))
    .await;
    let response = client()
        .post(server.url("/v1/generations"))
        .bearer_auth("key-a")
        .json(&json!({"prompt": "hi", "mock": {"tokens": 2}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let as_a = send(
        client()
            .get(server.url(&format!("/v1/generations/{id}")))
            .bearer_auth("key-a"),
    )
    .await;
    assert_eq!(as_a.status, 200);
    for request in [
        client()
            .get(server.url(&format!("/v1/generations/{id}")))
            .bearer_auth("key-b"),
        client()
            .delete(server.url(&format!("/v1/generations/{id}")))
            .bearer_auth("key-b"),
        client()
            .get(server.url(&format!("/v1/generations/{id}/events")))
            .bearer_auth("key-b"),
    ] {
        assert_eq!(send(request).await.status, 404);
    }
    let unauthenticated = send(client().get(server.url(&format!("/v1/generations/{id}")))).await;
    assert_eq!(unauthenticated.status, 401);
}

#[tokio::test]
async fn a_running_generation_holds_its_stream_slot_watched_or_not() {
    let server = spawn(config(&format!(
        "[limits]\nper_client_concurrent_streams = 1\n{PACED_MOCK}"
    )))
    .await;
    let created = create(&server, json!({"prompt": "hi", "mock": {"tokens": 1000}})).await;
    let id = created["id"].as_str().unwrap();
    let refused = send(
        client()
            .post(server.url("/v1/generations"))
            .json(&json!({"prompt": "hi"})),
    )
    .await;
    assert_eq!(refused.status, 429);
    let refused = post_json(&server, json!({"prompt": "hi"})).await;
    assert_eq!(refused.status, 429);
    // Watching it takes no slot of its own.
    let watching = first_events(events(&server, id, &[], "").await, 2).await;
    assert_eq!(watching.len(), 2);
    let deleted = send(client().delete(server.url(&format!("/v1/generations/{id}")))).await;
    assert_eq!(deleted.json()["status"], "cancelled");
    // The slot is given back when the generation's runner ends.
    let mut status = 0;
    for _ in 0..40 {
        let got = post_json(
            &server,
            json!({"prompt": "hi", "mock": {"tokens": 2, "token_delay_ms": 0}}),
        )
        .await;
        status = got.status;
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200, "the slot came back after the cancel");
}

#[tokio::test]
async fn events_take_format_and_reject_a_bad_after() {
    let server = spawn(fast_mock_config()).await;
    let created = create(&server, json!({"prompt": "hi", "mock": {"tokens": 3}})).await;
    let id = created["id"].as_str().unwrap();
    let ndjson = receive(events(&server, id, &[], "?format=ndjson").await).await;
    let lines: Vec<Value> = ndjson
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4);
    assert!(lines[3]["done"].is_object());
    let bad = receive(events(&server, id, &[], "?after=three").await).await;
    assert_eq!(bad.status, 400);
    assert_eq!(error_of(&bad)["param"], "after");
}

#[tokio::test]
async fn cors_lets_a_browser_send_last_event_id_and_delete() {
    let server = spawn(fast_mock_config()).await;
    let preflight = client()
        .request(reqwest::Method::OPTIONS, server.url("/v1/stream"))
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "last-event-id")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success());
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(allowed.contains("last-event-id"), "{allowed}");
    let preflight = client()
        .request(
            reqwest::Method::OPTIONS,
            server.url("/v1/generations/gen_x"),
        )
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "DELETE")
        .send()
        .await
        .unwrap();
    let methods = preflight.headers()["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(methods.contains("DELETE"), "{methods}");
}

#[tokio::test]
async fn metrics_count_generations_by_status_and_resumes() {
    let server = spawn(fast_mock_config()).await;
    let scrape = || async {
        client()
            .get(server.url("/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let value = |text: &str, name: &str| -> f64 {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let before = scrape().await;
    let got = post_json(&server, json!({"prompt": "hi", "mock": {"tokens": 3}})).await;
    let mid = got.events[1].id.clone().unwrap();
    let resumed = send(
        client()
            .get(server.url("/v1/stream"))
            .header("last-event-id", &mid),
    )
    .await;
    assert_eq!(resumed.status, 200);
    let after = scrape().await;
    // The recorder is process-wide and tests run in parallel: at least ours.
    let done = r#"sluice_generations_total{status="done"}"#;
    assert!(value(&after, done) >= value(&before, done) + 1.0, "{after}");
    let resumes = "sluice_generation_resumes_total";
    assert!(
        value(&after, resumes) >= value(&before, resumes) + 1.0,
        "{after}"
    );
    assert!(after.contains("sluice_generations_running"));
}
