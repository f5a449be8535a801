//! Section 16, `Idempotency-Key`: a repeated POST re-attaches to the
//! generation the first one started, on every door, with the fake OpenAI
//! upstream counting the requests it gets: one upstream request, the same
//! answer, `Idempotent-Replayed: true`, the live rest of an answer still
//! running, a 409 for another body, keys that are each client's own, and a
//! repeat through another replica with `[store]`.

use std::sync::atomic::Ordering;

use serde_json::{json, Value};

use crate::common::doors::{chat_stream_text, every_door};
use crate::common::fake_openai::{self, FakeOpenAi, UPSTREAM_KEY};
use crate::common::redis::{replicas, Redis};
use crate::common::*;

async fn setup(extra: &str) -> (FakeOpenAi, Server) {
    let upstream = fake_openai::start().await;
    let toml = fake_openai::config_toml(&upstream.base_url, extra);
    let server = spawn(config_with_env(&toml, &[("FAKE_KEY", UPSTREAM_KEY)])).await;
    (upstream, server)
}

fn requests(upstream: &FakeOpenAi) -> usize {
    upstream.seen.requests.load(Ordering::SeqCst)
}

async fn keyed(url: String, key: &str, body: &Value) -> Received {
    receive(
        client()
            .post(url)
            .header("idempotency-key", key)
            .json(body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

#[tokio::test]
async fn a_repeat_on_every_door_is_one_upstream_request_and_the_same_answer() {
    let (upstream, server) = setup("").await;
    let whole: String = fake_openai::TOKENS.concat();
    for (i, (path, body, text_of)) in every_door("up-ok").into_iter().enumerate() {
        let key = format!("key-{i}");
        let before = requests(&upstream);
        let first = keyed(server.url(path), &key, &body).await;
        let again = keyed(server.url(path), &key, &body).await;
        assert_eq!(first.status, 200, "{path}: {}", first.text);
        assert_eq!(again.status, 200, "{path}: {}", again.text);
        assert_eq!(
            requests(&upstream) - before,
            1,
            "{path} {body}: one upstream request"
        );
        assert_eq!(text_of(&first), whole, "{path} {body}");
        assert_eq!(text_of(&again), whole, "{path} {body}");
        assert!(first.headers.get("idempotent-replayed").is_none(), "{path}");
        assert_eq!(again.headers["idempotent-replayed"], "true", "{path}");
        // Another body with the key: a 409 in the door's shape.
        let mut other = body.clone();
        other["temperature"] = json!(0.5);
        let conflict = keyed(server.url(path), &key, &other).await;
        assert_eq!(conflict.status, 409, "{path}: {}", conflict.text);
        assert!(
            conflict.text.contains("idempotency_conflict"),
            "{path}: {}",
            conflict.text
        );
    }
    // The generations API answers with the same generation.
    let body = json!({"prompt": "hi", "model": "up-ok"});
    let first = keyed(server.url("/v1/generations"), "gen-key", &body).await;
    let again = keyed(server.url("/v1/generations"), "gen-key", &body).await;
    assert_eq!((first.status, again.status), (201, 201));
    assert_eq!(first.json()["id"], again.json()["id"]);
    assert_eq!(again.headers["idempotent-replayed"], "true");
}

#[tokio::test]
async fn a_repeat_while_the_answer_runs_gets_it_from_its_start_then_live() {
    let (upstream, server) = setup("").await;
    let body = json!({"model": "up-slow", "messages": [{"role": "user", "content": "hi"}], "stream": true});
    let url = server.url("/v1/chat/completions");
    let mut first = client()
        .post(&url)
        .header("idempotency-key", "running")
        .json(&body)
        .send()
        .await
        .unwrap();
    // The first one leaves after its first chunk, as a dropped connection
    // would: the answer runs on for its retry.
    first.chunk().await.unwrap();
    drop(first);
    let again = keyed(url, "running", &body).await;
    assert_eq!(again.headers["idempotent-replayed"], "true");
    let text = chat_stream_text(&again);
    assert_eq!(text, fake_openai::TOKENS.concat());
    assert_eq!(again.events.last().unwrap().data, "[DONE]");
    assert_eq!(requests(&upstream), 1);
}

#[tokio::test]
async fn keys_are_each_clients_own_and_must_be_visible_ascii() {
    let (upstream, server) = setup("[auth]\napi_keys = [\"sk-one\", \"sk-two\"]\n").await;
    let body = json!({"prompt": "hi", "model": "up-ok"});
    for key in ["sk-one", "sk-two"] {
        let got = receive(
            client()
                .post(server.url("/v1/stream"))
                .bearer_auth(key)
                .header("idempotency-key", "shared-name")
                .json(&body)
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(got.status, 200);
        assert!(got.headers.get("idempotent-replayed").is_none());
    }
    assert_eq!(requests(&upstream), 2, "one generation per client");
    let bad = receive(
        client()
            .post(server.url("/v1/chat/completions"))
            .bearer_auth("sk-one")
            .header("idempotency-key", "has space")
            .json(&json!({"model": "up-ok", "messages": [{"role": "user", "content": "hi"}]}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"]["param"], "idempotency-key");
}

#[tokio::test]
async fn a_repeat_through_the_other_replica_re_attaches() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let upstream = fake_openai::start().await;
    // The replicas are processes of their own: the upstream needs no key.
    let models = format!(
        "[[models]]\nname = \"up-slow\"\nprovider = \"openai\"\nbase_url = \"{}\"\n\
         upstream_model = \"slow\"\nretries = 0\n",
        upstream.base_url
    );
    let (a, b) = replicas(&redis, &models).await;
    let body = json!({"model": "up-slow", "messages": [{"role": "user", "content": "hi"}], "stream": true});
    // A's answer has begun (its key is claimed) before B gets the repeat.
    let started = client()
        .post(a.url("/v1/chat/completions"))
        .header("idempotency-key", "across")
        .json(&body)
        .send()
        .await
        .unwrap();
    let (on_a, on_b) = tokio::join!(
        receive(started),
        keyed(b.url("/v1/chat/completions"), "across", &body)
    );
    assert_eq!(
        (on_a.status, on_b.status),
        (200, 200),
        "{}\n{}",
        on_a.text,
        on_b.text
    );
    assert_eq!(
        requests(&upstream),
        1,
        "one upstream request for both: {:?}",
        on_b.headers
    );
    assert_eq!(on_b.headers["idempotent-replayed"], "true");
    let texts: Vec<String> = [&on_a, &on_b]
        .iter()
        .map(|got| chat_stream_text(got))
        .collect();
    assert_eq!(texts[0], fake_openai::TOKENS.concat());
    assert_eq!(texts[1], texts[0]);
}

/// A native repeat is the first generation's frames: the same `GEN:N` ids
/// (a client can resume it with `Last-Event-ID`) and the same generation
/// header.
#[tokio::test]
async fn a_native_repeat_has_the_first_generations_frame_ids() {
    let (_upstream, server) = setup("").await;
    let body = json!({"prompt": "hi", "model": "up-ok"});
    let first = keyed(server.url("/v1/stream"), "native-ids", &body).await;
    let again = keyed(server.url("/v1/stream"), "native-ids", &body).await;
    let ids = |got: &Received| -> Vec<String> {
        got.events
            .iter()
            .map(|e| e.id.clone().unwrap_or_default())
            .collect()
    };
    assert_eq!(ids(&first), ids(&again));
    let generation = first.headers["x-sluice-generation"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        ids(&first)[0].starts_with(&format!("{generation}:")),
        "{:?}",
        ids(&first)
    );
    assert_eq!(again.headers["x-sluice-generation"], generation.as_str());
    // And a resume of the repeat, by its ids, works.
    let after_first = client()
        .get(server.url("/v1/stream"))
        .header("last-event-id", format!("{generation}:0"))
        .send()
        .await
        .unwrap();
    assert_eq!(after_first.status(), 200);
}

/// A key whose generation no replica keeps any more (dropped at once here
/// by `retain_max_bytes`) starts a new one instead of failing for ever.
#[tokio::test]
async fn a_key_whose_generation_was_dropped_starts_a_new_one() {
    let Some(redis) = Redis::start() else {
        return;
    };
    let upstream = fake_openai::start().await;
    let models = format!(
        "[streams]\nretain_max_bytes = 1\n[[models]]\nname = \"up-ok\"\nprovider = \"openai\"\nbase_url = \"{}\"\n\
         upstream_model = \"ok\"\nretries = 0\n",
        upstream.base_url
    );
    let (a, b) = replicas(&redis, &models).await;
    let body =
        json!({"model": "up-ok", "messages": [{"role": "user", "content": "hi"}], "stream": true});
    let first = keyed(a.url("/v1/chat/completions"), "evicted", &body).await;
    assert_eq!(first.status, 200);
    // A's ended generation is over the byte budget: A drops it at once,
    // and its keys in Redis go (its writer deletes them after its last
    // flush). Should any be left, as a slow delete would leave them, the
    // test deletes them; the key's name stays, naming a generation gone.
    let generation = first.headers["x-sluice-generation"]
        .to_str()
        .unwrap()
        .to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let mut conn = redis.connect().await;
    let keys: Vec<String> = ::redis::cmd("KEYS")
        .arg(format!("sluice:gen:{generation}*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    if !keys.is_empty() {
        let _: () = ::redis::cmd("DEL")
            .arg(&keys)
            .query_async(&mut conn)
            .await
            .unwrap();
    }
    let names: Vec<String> = ::redis::cmd("KEYS")
        .arg("sluice:idem:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(names.len(), 1, "the key still names it");
    let again = keyed(b.url("/v1/chat/completions"), "evicted", &body).await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert!(again.headers.get("idempotent-replayed").is_none());
    assert_eq!(requests(&upstream), 2);
}
