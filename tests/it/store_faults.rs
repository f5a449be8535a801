//! The shared store under faults (review T3, findings 2, 7, 8, 9, 10 and
//! 16): two sluice processes on a real `redis-server` that stalls (SIGSTOP),
//! restarts empty or is asked to hold more than it should. Each test is
//! named by its finding.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::binary::Sluice;
use crate::common::redis::*;
use crate::common::*;

fn chat(on: &Sluice) -> reqwest::RequestBuilder {
    client().post(on.url("/v1/chat/completions")).json(&json!({
        "model": "mock", "stream": true,
        "messages": [{"role": "user", "content": "hi"}],
        "mock": {"tokens": 2, "ttft_ms": 0}
    }))
}

/// A stream that stays open until dropped.
async fn hold(on: &Sluice) -> reqwest::Response {
    client()
        .post(on.url("/v1/stream"))
        .json(&json!({"prompt": "hi", "mock": {"tokens": 1000, "token_delay_ms": 50}}))
        .send()
        .await
        .unwrap()
}

/// Redis's hash of open streams, per replica.
async fn stream_counts(redis: &Redis) -> HashMap<String, i64> {
    let mut conn = redis.connect().await;
    ::redis::cmd("HGETALL")
        .arg("sluice:{replicas}:streams")
        .query_async(&mut conn)
        .await
        .unwrap()
}

async fn exists(redis: &Redis, key: &str) -> bool {
    let mut conn = redis.connect().await;
    ::redis::cmd("EXISTS")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn t3_2_a_redis_stall_leaks_no_stream_slot_on_any_replica() {
    let Some((redis, a, b)) =
        pair("[limits]\nmax_concurrent_streams = 4\nrequests_per_second = 0\n").await
    else {
        return;
    };
    // A chat on each first, so Redis has the scripts (a stalled `EVALSHA`
    // of a script it lacks would run nothing).
    for on in [&a, &b] {
        assert_eq!(receive(chat(on).send().await.unwrap()).await.status, 200);
    }
    // Short chats while Redis is frozen: their OPEN scripts wait in its
    // socket past sluice's deadline, and run when it wakes. The stall is
    // shorter than a lease (4 s), so the leaked counts' replicas look alive.
    let stall = redis.stall(Duration::from_millis(2500));
    let chats = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut statuses = Vec::new();
        for on in [&a, &b, &a, &b] {
            let response = chat(on).send().await.unwrap();
            statuses.push(response.status().as_u16());
            receive(response).await;
        }
        statuses
    };
    let ((), statuses) = tokio::join!(stall, chats);
    assert_eq!(
        statuses, [200; 4],
        "limits fall back while Redis is stalled"
    );
    // Within seconds every slot is usable again, on both replicas.
    let mut held = Vec::new();
    let usable = until(Duration::from_secs(10), async || {
        held.clear();
        for on in [&a, &b, &a, &b] {
            let response = hold(on).await;
            if response.status() != 200 {
                return false;
            }
            held.push(response);
        }
        true
    })
    .await;
    assert!(
        usable,
        "a slot stayed leaked: {:?}",
        stream_counts(&redis).await
    );
    // And Redis counts exactly the streams open.
    let counts = stream_counts(&redis).await;
    assert_eq!(counts.values().sum::<i64>(), 4, "{counts:?}");
    drop(held);
    assert!(
        until(Duration::from_secs(5), async || stream_counts(&redis)
            .await
            .values()
            .sum::<i64>()
            == 0)
        .await,
        "{:?}",
        stream_counts(&redis).await
    );
}

#[tokio::test]
async fn t3_10_a_hung_redis_costs_a_request_a_short_bounded_wait() {
    let Some((redis, a, _b)) = pair("[limits]\nrequests_per_second = 100\n").await else {
        return;
    };
    let stall = redis.stall(Duration::from_secs(4));
    let requests = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut took = Vec::new();
        for _ in 0..4 {
            let start = Instant::now();
            let response = chat(&a).send().await.unwrap();
            assert_eq!(response.status(), 200);
            receive(response).await;
            took.push(start.elapsed());
        }
        let start = Instant::now();
        let refused = client()
            .post(a.url("/v1/generations"))
            .json(&json!({"prompt": "hi"}))
            .send()
            .await
            .unwrap();
        let refused_in = start.elapsed();
        let body: Value = refused.json().await.unwrap();
        (took, refused_in, body, ready(&a).await)
    };
    let ((), (took, refused_in, body, readyz)) = tokio::join!(stall, requests);
    // The first request waits out the limits' deadline (250 ms); the ones
    // after it find the breaker tripped and wait for nothing. The bounds
    // leave room for a loaded machine: before the breaker each took 1-2 s.
    assert!(took[0] < Duration::from_millis(1500), "{took:?}");
    for later in &took[1..] {
        assert!(*later < Duration::from_millis(700), "{took:?}");
    }
    assert_eq!(body["error"]["type"], "store_unavailable", "{body}");
    assert!(refused_in < Duration::from_millis(700), "{refused_in:?}");
    assert_eq!(readyz, 503, "/readyz says Redis is not answering");
    assert!(until(Duration::from_secs(5), async || ready(&a).await == 200).await);
}

#[tokio::test]
async fn t3_7_redis_restarting_empty_loses_no_live_generation() {
    let Some((mut redis, a, b)) = pair("").await else {
        return;
    };
    let id = post_generation(&a, json!({"tokens": 50, "token_delay_ms": 100})).await;
    let watcher = {
        let url = b.url(&format!("/v1/generations/{id}/events"));
        tokio::spawn(async move { receive(client().get(url).send().await.unwrap()).await })
    };
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.stop();
    redis.resume();
    let on_b = watcher.await.unwrap();
    assert_eq!(on_b.terminal().event, "done", "{}", on_b.text);
    // Every frame once, in order, and the whole answer's usage.
    let seen = indexes(&on_b, &id);
    let last = *seen.last().unwrap();
    assert_eq!(seen, (0..=last).collect::<Vec<_>>());
    let done: Value = serde_json::from_str(&on_b.terminal().data).unwrap();
    assert_eq!(done["usage"]["completion_tokens"], 50, "{done}");
    // Through B afterwards: its status, and a resume.
    let status = status(&b, &id).await;
    assert_eq!(status["status"], "done", "{status}");
    let resumed = receive(
        client()
            .get(b.url("/v1/stream"))
            .header("last-event-id", format!("{id}:5"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(resumed.status, 200, "{}", resumed.text);
    assert_eq!(indexes(&resumed, &id), (6..=last).collect::<Vec<_>>());
}

#[tokio::test]
async fn t3_8_a_generation_dropped_for_retain_max_bytes_is_gone_everywhere() {
    // Each answer below costs about 20 KiB of log: two fit, not three.
    let Some((redis, a, b)) = pair("[streams]\nretain_max_bytes = 50000\n").await else {
        return;
    };
    let mut ids = Vec::new();
    for _ in 0..3 {
        let id = post_generation(&a, json!({"tokens": 300})).await;
        assert_eq!(events(&a, &id).await.terminal().event, "done");
        ids.push(id);
    }
    let first = &ids[0];
    assert!(
        until(Duration::from_secs(3), async || !exists(
            &redis,
            &format!("sluice:gen:{{{first}}}")
        )
        .await)
        .await,
        "the dropped generation's record stays in Redis"
    );
    assert!(!exists(&redis, &format!("sluice:gen:{{{first}}}:log")).await);
    for on in [&a, &b] {
        let gone = client()
            .get(on.url(&format!("/v1/generations/{first}")))
            .send()
            .await
            .unwrap();
        assert_eq!(gone.status(), 404);
    }
    assert_eq!(status(&b, &ids[2]).await["status"], "done");
}

/// What Redis has sent its clients so far.
async fn redis_sent(redis: &Redis) -> u64 {
    let mut conn = redis.connect().await;
    let info: String = ::redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("total_net_output_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

#[tokio::test]
async fn t3_9_status_polls_through_a_non_owner_read_the_log_once() {
    let Some((redis, a, b)) = pair("").await else {
        return;
    };
    // A running generation: each poll reads only the frames it lacks.
    let id = post_generation(&a, json!({"tokens": 3000, "token_delay_ms": 1})).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let before = redis_sent(&redis).await;
    let first = status(&b, &id).await;
    let one = redis_sent(&redis).await - before;
    let mut text = first["text"].as_str().unwrap().to_owned();
    let before = redis_sent(&redis).await;
    for _ in 0..9 {
        let again = status(&b, &id).await;
        let now = again["text"].as_str().unwrap();
        assert!(now.starts_with(&text), "a poll lost text");
        text = now.to_owned();
    }
    let nine = redis_sent(&redis).await - before;
    // Polls 2 to 10 read the frames made meanwhile (1 ms apart), not the
    // whole log nine times.
    assert!(nine < 3 * one, "first poll {one} B, nine more {nine} B");
    // An ended one is read once, then served from the copy.
    let done = post_generation(&a, json!({"tokens": 2000, "token_delay_ms": 0})).await;
    assert_eq!(events(&a, &done).await.terminal().event, "done");
    // Once its owner has written the end to Redis.
    let record = format!("sluice:gen:{{{done}}}");
    assert!(
        until(Duration::from_secs(5), async || {
            let mut conn = redis.connect().await;
            let status: Option<String> = ::redis::cmd("HGET")
                .arg(&record)
                .arg("status")
                .query_async(&mut conn)
                .await
                .unwrap();
            status.as_deref() == Some("done")
        })
        .await
    );
    let before = redis_sent(&redis).await;
    assert_eq!(status(&b, &done).await["status"], "done");
    let one = redis_sent(&redis).await - before;
    let before = redis_sent(&redis).await;
    for _ in 0..9 {
        assert_eq!(status(&b, &done).await["status"], "done");
    }
    let nine = redis_sent(&redis).await - before;
    assert!(nine < one / 4, "first poll {one} B, nine more {nine} B");
}

#[tokio::test]
async fn t3_16_redis_keeps_no_more_of_a_log_than_the_owner_does() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let upstream = crate::common::fake_openai::start().await;
    // 16 KiB deltas: a log of 256 KiB holds about 16 of them.
    let config = format!(
        "[store]\nredis_url = \"{}\"\n[streams]\nmax_log_bytes = 262144\n\
         [[models]]\nname = \"firehose\"\nprovider = \"openai\"\nbase_url = \"{}\"\n\
         upstream_model = \"firehose\"\nretries = 0\n",
        redis.url(),
        upstream.base_url
    );
    let a = Sluice::start(&config, &[]);
    assert!(until(Duration::from_secs(10), async || ready(&a).await == 200).await);
    let mut conn = redis.connect().await;
    let created: Value = client()
        .post(a.url("/v1/generations"))
        .json(&json!({"model": "firehose", "prompt": "hi"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let deleted = client()
        .delete(a.url(&format!("/v1/generations/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 200);
    // Once its end is in Redis, what the log there holds.
    let record = format!("sluice:gen:{{{id}}}");
    assert!(
        until(Duration::from_secs(10), async || {
            let status: Option<String> = ::redis::cmd("HGET")
                .arg(&record)
                .arg("status")
                .query_async(&mut conn)
                .await
                .unwrap();
            status.as_deref() == Some("cancelled")
        })
        .await
    );
    let log = format!("{record}:log");
    let memory: i64 = ::redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(&log)
        .query_async(&mut conn)
        .await
        .unwrap();
    let entries: i64 = ::redis::cmd("XLEN")
        .arg(&log)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(entries > 0);
    // Trimming is approximate (whole stream nodes): twice the bound at most.
    assert!(
        memory < 2 * 262_144,
        "the log in Redis holds {memory} B in {entries} entries"
    );
}

#[tokio::test]
async fn t3_16_a_create_that_timed_out_leaves_no_running_record_for_long() {
    let Some((redis, a, _b)) = pair("").await else {
        return;
    };
    // The create's pipeline waits in Redis's socket past its 1 s deadline,
    // and runs when Redis wakes. (3 s, so that the request lands inside the
    // stall even when a loaded machine is slow to send it.)
    let stall = redis.stall(Duration::from_millis(3000));
    let create = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        client()
            .post(a.url("/v1/generations"))
            .json(&json!({"prompt": "hi"}))
            .send()
            .await
            .unwrap()
            .status()
    };
    let ((), status) = tokio::join!(stall, create);
    assert_eq!(status, 503);
    let records = async || {
        let mut conn = redis.connect().await;
        let keys: Vec<String> = ::redis::cmd("KEYS")
            .arg("sluice:gen:*")
            .query_async(&mut conn)
            .await
            .unwrap();
        keys
    };
    let ghost = records().await;
    assert!(
        until(Duration::from_secs(8), async || records().await.is_empty()).await,
        "a record of a generation never made stays: {ghost:?}"
    );
}
