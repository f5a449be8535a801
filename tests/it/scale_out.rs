//! Section 12: two real sluice processes sharing a real `redis-server` on a
//! free loopback port act as one: a generation made on one is watched,
//! resumed and cancelled through the other, limits hold across both, a
//! killed owner's watchers learn it, and Redis may go away and come back.
//! (The store's faults under stalls and restarts: `store_faults.rs`.)

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::binary::Sluice;
use crate::common::redis::*;
use crate::common::*;

#[tokio::test]
async fn a_generation_made_on_a_is_watched_on_b_with_the_same_frames() {
    a_generation_made_on_a_is_watched_on_b_with_the_same_frames_on(Kind::Plain).await;
}

/// The scenario on a Redis of `kind` (`managed_redis.rs` runs it over TLS).
pub(crate) async fn a_generation_made_on_a_is_watched_on_b_with_the_same_frames_on(kind: Kind) {
    let Some((_redis, a, b)) = pair_on(kind, "").await else {
        return;
    };
    let id = post_generation(&a, json!({"tokens": 6, "token_delay_ms": 100})).await;
    let (on_a, on_b) = tokio::join!(events(&a, &id), events(&b, &id));
    assert_eq!(on_b.status, 200);
    assert_eq!(on_b.terminal().event, "done");
    assert_eq!(on_b.tokens().len(), 6);
    assert_eq!(on_a.text, on_b.text, "the same frames with the same ids");
    assert_eq!(indexes(&on_b, &id), (0..7).collect::<Vec<_>>());
    // Its status through B, once done.
    let status = status(&b, &id).await;
    assert_eq!(status["status"], "done");
    assert_eq!(status["text"], on_a.token_text());
    assert_eq!(status["usage"]["completion_tokens"], 6);
}

#[tokio::test]
async fn watchers_past_blocking_readers_poll_and_share_one_copy() {
    watchers_past_blocking_readers_poll_and_share_one_copy_on(Kind::Plain).await;
}

pub(crate) async fn watchers_past_blocking_readers_poll_and_share_one_copy_on(kind: Kind) {
    let Some((_redis, a, b)) = pair_on(kind, "blocking_readers = 0\n").await else {
        return;
    };
    let id = post_generation(&a, json!({"tokens": 8, "token_delay_ms": 100})).await;
    let (on_a, first, second) = tokio::join!(events(&a, &id), events(&b, &id), events(&b, &id));
    for on_b in [&first, &second] {
        assert_eq!(on_b.terminal().event, "done", "{}", on_b.text);
        assert_eq!(on_a.text, on_b.text, "the same frames with the same ids");
    }
    assert_eq!(indexes(&first, &id), (0..9).collect::<Vec<_>>());
    // No connection of their own: they polled on B's shared one.
    assert!(metric(&b, "sluice_store_seconds_count{op=\"follow\"}").await > 0.0);
    assert_eq!(
        metric(&b, "sluice_store_seconds_count{op=\"connect\"}").await,
        0.0
    );
}

#[tokio::test]
async fn a_stream_dropped_on_a_resumes_on_b_with_no_gap_or_duplicate() {
    a_stream_dropped_on_a_resumes_on_b_with_no_gap_or_duplicate_on(Kind::Plain).await;
}

/// The scenario on a Redis of `kind` (`managed_redis.rs` runs it over TLS).
pub(crate) async fn a_stream_dropped_on_a_resumes_on_b_with_no_gap_or_duplicate_on(kind: Kind) {
    let Some((_redis, a, b)) = pair_on(kind, "[streams]\nreconnect_grace_ms = 5000\n").await else {
        return;
    };
    let mut response = client()
        .post(a.url("/v1/stream"))
        .json(&json!({"prompt": "hi", "mock": {"tokens": 30, "token_delay_ms": 40}}))
        .send()
        .await
        .unwrap();
    let id = response.headers()["x-sluice-generation"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut first = Vec::new();
    while !String::from_utf8_lossy(&first).contains(&format!("id: {id}:4\n")) {
        first.extend_from_slice(&response.chunk().await.unwrap().expect("more frames"));
    }
    drop(response);
    // Up to frame 4, whole frames only.
    let text = String::from_utf8_lossy(&first).into_owned();
    let upto = text.find(&format!("id: {id}:4\n")).unwrap();
    let end = upto + text[upto..].find("\n\n").unwrap() + 2;
    let before = Received::of(
        200,
        Default::default(),
        text.as_bytes()[..end].to_vec(),
        false,
    );
    assert_eq!(indexes(&before, &id), vec![0, 1, 2, 3, 4]);
    let rest = receive(
        client()
            .get(b.url("/v1/stream"))
            .header("last-event-id", format!("{id}:4"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(rest.status, 200, "{}", rest.text);
    assert_eq!(rest.terminal().event, "done");
    assert_eq!(indexes(&rest, &id), (5..=30).collect::<Vec<_>>());
    let whole = format!("{}{}", before.token_text(), rest.token_text());
    let status = status(&b, &id).await;
    assert_eq!(status["text"], whole);
    // Reconnecting after the end, through either replica: 204, as without Redis.
    for on in [&a, &b] {
        let again = client()
            .get(on.url("/v1/stream"))
            .header("last-event-id", format!("{id}:30"))
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 204);
    }
}

#[tokio::test]
async fn delete_on_b_cancels_the_upstream_on_a_within_two_seconds() {
    delete_on_b_cancels_the_upstream_on_a_within_two_seconds_on(Kind::Plain).await;
}

/// The scenario on a Redis of `kind` (`managed_redis.rs` runs it over TLS).
pub(crate) async fn delete_on_b_cancels_the_upstream_on_a_within_two_seconds_on(kind: Kind) {
    let Some((_redis, a, b)) = pair_on(kind, "").await else {
        return;
    };
    let cancelled = "sluice_upstream_cancellations_total{model=\"mock\"}";
    let before = metric(&a, cancelled).await;
    let id = post_generation(&a, json!({"tokens": 1000, "token_delay_ms": 50})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let start = Instant::now();
    let deleted: Value = client()
        .delete(b.url(&format!("/v1/generations/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(deleted["status"], "cancelled", "{deleted}");
    assert_eq!(deleted["finish_reason"], "cancelled");
    assert!(
        until(Duration::from_secs(2), async || metric(&a, cancelled).await
            > before)
        .await,
        "A's upstream was not cancelled within 2 s"
    );
    assert!(start.elapsed() < Duration::from_secs(2));
    let on_a = events(&a, &id).await;
    assert_eq!(on_a.terminal_json()["finish_reason"], "cancelled");
}

#[tokio::test]
async fn a_burst_of_three_is_shared_across_the_replicas() {
    a_burst_of_three_is_shared_across_the_replicas_on(Kind::Plain).await;
}

/// The scenario on a Redis of `kind` (`managed_redis.rs` runs it over TLS).
pub(crate) async fn a_burst_of_three_is_shared_across_the_replicas_on(kind: Kind) {
    let Some((_redis, a, b)) =
        pair_on(kind, "[limits]\nrequests_per_second = 1\nburst = 3\n").await
    else {
        return;
    };
    let chat = |on: &Sluice| {
        client()
            .post(on.url("/v1/chat/completions"))
            .json(
                &json!({"model": "mock", "messages": [{"role": "user", "content": "hi"}],
                          "mock": {"tokens": 1, "ttft_ms": 0}}),
            )
            .send()
    };
    // Each replica's first answer waits for the tokenizer: made first, by
    // another client (127.0.0.2, with a bucket of its own).
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    for on in [&a, &b] {
        let warm = other
            .post(on.url("/v1/chat/completions"))
            .json(
                &json!({"model": "mock", "messages": [{"role": "user", "content": "hi"}],
                          "mock": {"tokens": 1, "ttft_ms": 0}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(warm.status(), 200);
    }
    // Six at once, three through each replica: the checks come before any
    // answer (whose first may wait for the tokenizer), so the refill of one
    // a second cannot blur the count.
    let answers =
        futures_util::future::join_all([&a, &b, &a, &b, &a, &b].into_iter().map(chat)).await;
    let mut admitted = 0;
    for answer in answers {
        let answer = answer.unwrap();
        match answer.status().as_u16() {
            200 => admitted += 1,
            429 => {
                assert!(answer.headers().contains_key("retry-after"));
                let body: Value = answer.json().await.unwrap();
                assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
            }
            other => panic!("status {other}"),
        }
    }
    let fallbacks = metric(&a, "sluice_store_fallbacks_total{limit=\"rate\"}").await
        + metric(&b, "sluice_store_fallbacks_total{limit=\"rate\"}").await;
    assert_eq!(
        admitted,
        3,
        "a burst of 3 across both replicas ({fallbacks} checks fell back): {:#?}",
        a.log_lines()
    );
}

#[tokio::test]
async fn a_global_cap_of_two_streams_is_shared_and_a_killed_replica_frees_its_slots() {
    a_global_cap_of_two_streams_is_shared_and_a_killed_replica_frees_its_slots_on(Kind::Plain)
        .await;
}

/// The scenario on a Redis of `kind` (`managed_redis.rs` runs it over TLS).
pub(crate) async fn a_global_cap_of_two_streams_is_shared_and_a_killed_replica_frees_its_slots_on(
    kind: Kind,
) {
    let Some((_redis, mut a, b)) = pair_on(
        kind,
        "[limits]\nmax_concurrent_streams = 2\nrequests_per_second = 0\n",
    )
    .await
    else {
        return;
    };
    let open = |on: &Sluice| {
        client()
            .post(on.url("/v1/stream"))
            .json(&json!({"prompt": "hi", "mock": {"tokens": 1000, "token_delay_ms": 50}}))
            .send()
    };
    let mut on_a = open(&a).await.unwrap();
    on_a.chunk().await.unwrap();
    let mut on_b = open(&b).await.unwrap();
    on_b.chunk().await.unwrap();
    for on in [&a, &b] {
        let third = open(on).await.unwrap();
        assert_eq!(third.status(), 503);
        let body: Value = third.json().await.unwrap();
        assert_eq!(body["error"]["type"], "overloaded");
    }
    // A slot given back on B is free on A.
    drop(on_b);
    assert!(
        until(Duration::from_secs(3), async || open(&a)
            .await
            .unwrap()
            .status()
            == 200)
        .await
    );
    // A dies holding its slots: they come free once its lease expires.
    a.child.kill().unwrap();
    let _ = a.child.wait();
    drop(on_a);
    let start = Instant::now();
    let mut held = Vec::new();
    assert!(
        until(Duration::from_secs(10), async || {
            let response = open(&b).await.unwrap();
            let ok = response.status() == 200;
            if ok {
                held.push(response);
            }
            held.len() == 2
        })
        .await,
        "B could not open two streams after A died"
    );
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn the_owner_killed_gives_generation_lost_on_b_within_ten_seconds() {
    the_owner_killed_gives_generation_lost_on_b_within_ten_seconds_on(Kind::Plain).await;
}

pub(crate) async fn the_owner_killed_gives_generation_lost_on_b_within_ten_seconds_on(kind: Kind) {
    let Some((_redis, mut a, b)) = pair_on(kind, "").await else {
        return;
    };
    let id = post_generation(&a, json!({"tokens": 1000, "token_delay_ms": 50})).await;
    let mut watching = client()
        .get(b.url(&format!("/v1/generations/{id}/events")))
        .send()
        .await
        .unwrap();
    watching.chunk().await.unwrap().expect("a first frame");
    a.child.kill().unwrap();
    let _ = a.child.wait();
    let killed = Instant::now();
    let rest = tokio::time::timeout(Duration::from_secs(12), receive(watching))
        .await
        .expect("the watcher does not hang");
    assert!(
        killed.elapsed() < Duration::from_secs(10),
        "{:?}",
        killed.elapsed()
    );
    assert_eq!(rest.terminal().event, "error");
    assert_eq!(rest.terminal_json()["error"]["type"], "generation_lost");
    // A new watcher, and the status, say the same.
    let status = status(&b, &id).await;
    assert_eq!(status["status"], "error");
    assert_eq!(status["error"]["type"], "generation_lost");
}

#[tokio::test]
async fn redis_stopped_and_started_again() {
    let Some((mut redis, a, b)) = pair("").await else {
        return;
    };
    let running = client()
        .post(a.url("/v1/stream"))
        .json(&json!({"prompt": "hi", "mock": {"tokens": 40, "token_delay_ms": 50}}))
        .send()
        .await
        .unwrap();
    assert_eq!(running.status(), 200);
    let running = tokio::spawn(receive(running));
    tokio::time::sleep(Duration::from_millis(300)).await;
    redis.stop();
    for on in [&a, &b] {
        assert!(
            until(Duration::from_secs(5), async || ready(on).await == 503).await,
            "/readyz stays 200 with Redis down"
        );
    }
    let refused = client()
        .post(b.url("/v1/generations"))
        .json(&json!({"prompt": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["type"], "store_unavailable", "{body}");
    // A door that needs no generation goes on, under each replica's own limits.
    let chat = client()
        .post(b.url("/v1/chat/completions"))
        .json(
            &json!({"model": "mock", "messages": [{"role": "user", "content": "hi"}],
                      "mock": {"tokens": 2}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 200);
    // The stream that was running is unharmed.
    let running = running.await.unwrap();
    assert!(!running.cut, "cut after: {:?}", running.text);
    assert_eq!(running.terminal().event, "done");
    assert_eq!(running.tokens().len(), 40);

    redis.resume();
    for on in [&a, &b] {
        assert!(
            until(Duration::from_secs(10), async || ready(on).await == 200).await,
            "/readyz does not recover"
        );
    }
    let id = post_generation(&a, json!({"tokens": 3})).await;
    let on_b = events(&b, &id).await;
    assert_eq!(on_b.status, 200, "{}: {:#?}", on_b.text, b.log_lines());
    assert_eq!(on_b.terminal().event, "done", "{}", on_b.text);
    assert_eq!(on_b.tokens().len(), 3);
}

#[tokio::test]
async fn another_key_finds_nothing_on_another_replica() {
    let Some((_redis, a, b)) = pair("[auth]\napi_keys = [\"key-one\", \"key-two\"]\n").await else {
        return;
    };
    let response = client()
        .post(a.url("/v1/generations"))
        .bearer_auth("key-one")
        .json(&json!({"prompt": "hi", "mock": {"tokens": 3}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let get = |key: &'static str| {
        client()
            .get(b.url(&format!("/v1/generations/{id}")))
            .bearer_auth(key)
            .send()
    };
    assert_eq!(get("key-one").await.unwrap().status(), 200);
    assert_eq!(get("key-two").await.unwrap().status(), 404);
}

/// `retain_max_bytes` holds in Redis too: an ended generation dropped here
/// for retention is gone for every replica, even when its writer was still
/// flushing its last frames as it was dropped.
#[tokio::test]
async fn a_generation_dropped_for_retention_is_gone_from_redis_too() {
    let Some((_redis, a, b)) = pair("[streams]\nretain_max_bytes = 1\n").await else {
        return;
    };
    let id = post_generation(&a, json!({"tokens": 20, "ttft_ms": 0, "token_delay_ms": 5})).await;
    let gone = until(Duration::from_secs(10), async || {
        let on_a = status_code(&a, &id).await;
        let on_b = status_code(&b, &id).await;
        on_a == 404 && on_b == 404
    })
    .await;
    assert!(gone, "generation {id} is still kept somewhere");
}

async fn status_code(on: &Sluice, id: &str) -> u16 {
    client()
        .get(on.url(&format!("/v1/generations/{id}")))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}
