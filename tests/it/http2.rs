//! HTTP/2 (contract section 8): cleartext with prior knowledge beside
//! HTTP/1.1 on the same port, many streams on one connection, a reset stream
//! as a client that left, and TLS with ALPN offering both protocols.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::browser::relay;
use crate::common::fake_openai::{self, UPSTREAM_KEY};
use crate::common::*;
use serde_json::json;

fn h2c() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

#[tokio::test]
async fn cleartext_http2_streams_token_by_token_beside_http1_on_one_port() {
    let server = spawn(fast_mock_config()).await;
    let start = Instant::now();
    let response = h2c()
        .post(server.url("/v1/stream"))
        .json(&json!({"prompt": "hi", "mock": {"tokens": 5, "token_delay_ms": 150}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert!(response.headers().contains_key("x-sluice-generation"));
    let chunks = timed_chunks(start, response).await;
    let tokens: Vec<&(Duration, String)> = chunks
        .iter()
        .filter(|(_, c)| c.contains("\"token\""))
        .collect();
    assert_eq!(tokens.len(), 5, "one token per DATA frame: {chunks:?}");
    for pair in tokens.windows(2) {
        assert!(
            pair[1].0 - pair[0].0 >= Duration::from_millis(100),
            "flushed one by one: {chunks:?}"
        );
    }
    // HTTP/2 ends the stream with an empty DATA frame: the last with bytes.
    let last = chunks.iter().rev().find(|(_, c)| !c.is_empty()).unwrap();
    assert!(last.1.contains("event: done"), "{chunks:?}");
    // The same port, HTTP/1.1.
    let got = post_json(&server, json!({"prompt": "hi", "mock": {"tokens": 2}})).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.tokens().len(), 2);
}

#[tokio::test]
async fn curl_with_http2_prior_knowledge_gets_the_stream() {
    let server = spawn(fast_mock_config()).await;
    let output = tokio::process::Command::new("curl")
        .args([
            "-sN",
            "--http2-prior-knowledge",
            "-w",
            "\nversion %{http_version}\n",
            "-d",
        ])
        .arg(r#"{"prompt":"hi","mock":{"tokens":3}}"#)
        .arg(server.url("/v1/stream"))
        .output()
        .await
        .expect("curl runs");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    assert_eq!(text.matches("data: {\"token\"").count(), 3, "{text}");
    assert!(text.contains("event: done"), "{text}");
    assert!(text.trim_end().ends_with("version 2"), "{text}");
}

#[tokio::test]
async fn two_dozen_streams_run_at_once_on_one_connection() {
    let server = spawn(fast_mock_config()).await;
    let relay = relay(
        server.base.trim_start_matches("http://").parse().unwrap(),
        usize::MAX,
    )
    .await;
    let client = h2c();
    let url = format!("http://{}/v1/stream", relay.addr);
    let started = Instant::now();
    let streams = (0..24).map(|i| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let response = client
                .post(&url)
                .json(&json!({"prompt": format!("stream {i}"), "mock": {"tokens": 10, "token_delay_ms": 60}}))
                .send()
                .await
                .unwrap();
            assert_eq!(response.version(), reqwest::Version::HTTP_2);
            let chunks = timed_chunks(started, response).await;
            let first = chunks.iter().find(|(_, c)| c.contains("\"token\"")).unwrap().0;
            let last = chunks.iter().rev().find(|(_, c)| !c.is_empty()).unwrap();
            assert!(last.1.contains("event: done"), "{chunks:?}");
            (first, last.0)
        }
    });
    let times = futures_util::future::join_all(streams).await;
    let latest_first = times.iter().map(|t| t.0).max().unwrap();
    let earliest_end = times.iter().map(|t| t.1).min().unwrap();
    assert!(
        latest_first < earliest_end,
        "every stream had begun before any ended: {times:?}"
    );
    assert_eq!(
        relay.connections.load(Ordering::SeqCst),
        1,
        "all on one connection"
    );
}

#[tokio::test]
async fn a_reset_stream_cancels_its_upstream_and_the_connection_stays_usable() {
    let fake = fake_openai::start().await;
    let toml = fake_openai::config_toml(&fake.base_url, "");
    let server = spawn(config_with_env(&toml, &[("FAKE_KEY", UPSTREAM_KEY)])).await;
    let relay = relay(
        server.base.trim_start_matches("http://").parse().unwrap(),
        usize::MAX,
    )
    .await;
    let client = h2c();
    let url = format!("http://{}/v1/stream", relay.addr);
    let mut response = client
        .post(&url)
        .json(&json!({"model": "up-drip", "prompt": "hi"}))
        .send()
        .await
        .unwrap();
    read_tokens(&mut response, 3).await;
    // Dropping the response resets the stream (RST_STREAM), not the connection.
    drop(response);
    assert!(
        fake.seen.saw_cancels(1, Duration::from_secs(2)).await,
        "the upstream saw the reset within 2 s"
    );
    let again = receive(
        client
            .post(&url)
            .json(&json!({"model": "up-ok", "prompt": "hi"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(again.status, 200);
    assert_eq!(again.terminal().event, "done");
    assert_eq!(
        relay.connections.load(Ordering::SeqCst),
        1,
        "the connection stayed up"
    );
}

/// A certificate for 127.0.0.1 and localhost, made for the test, in `dir`.
pub fn certificate(dir: &std::path::Path) -> (String, reqwest::Certificate) {
    std::fs::create_dir_all(dir).unwrap();
    let pair =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, pair.cert.pem()).unwrap();
    std::fs::write(&key, pair.signing_key.serialize_pem()).unwrap();
    let toml = format!(
        "[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        cert.display(),
        key.display()
    );
    (
        toml,
        reqwest::Certificate::from_pem(pair.cert.pem().as_bytes()).unwrap(),
    )
}

#[tokio::test]
async fn tls_offers_http2_and_http1_by_alpn() {
    let dir = std::env::temp_dir().join(format!("sluice-tls-test-{}", std::process::id()));
    let (tls, root) = certificate(&dir);
    let server = spawn(config(&format!("{tls}{FAST_MOCK}"))).await;
    let url = server.url("/v1/stream").replace("http://", "https://");
    for (client, version) in [
        (
            reqwest::Client::builder()
                .add_root_certificate(root.clone())
                .build()
                .unwrap(),
            reqwest::Version::HTTP_2,
        ),
        (
            reqwest::Client::builder()
                .add_root_certificate(root.clone())
                .http1_only()
                .build()
                .unwrap(),
            reqwest::Version::HTTP_11,
        ),
    ] {
        let response = client
            .post(&url)
            .json(&json!({"prompt": "hi", "mock": {"tokens": 4}}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.version(), version);
        let got = receive(response).await;
        assert_eq!(got.tokens().len(), 4);
        assert_eq!(got.terminal().event, "done");
    }
    // Cleartext on a TLS port is refused, not served.
    assert!(client().get(server.url("/healthz")).send().await.is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_browser_over_tls_holds_twelve_streams_to_one_origin_at_once() {
    let Some(script) = crate::browser::script("many-streams.mjs") else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("sluice-tls-browser-{}", std::process::id()));
    let (tls, _) = certificate(&dir);
    let server = spawn(config(&format!("{tls}{FAST_MOCK}"))).await;
    let base = server.base.replace("http://", "https://");
    let seen = crate::browser::run(&script, &[("SLUICE_BASE", base)]).await;
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("browser over TLS: {seen}");
    assert_eq!(seen["protocol"], "h2", "the browser chose HTTP/2 by ALPN");
    assert!(seen["timedOut"].is_null(), "every stream finished: {seen}");
    let streams = seen["streams"].as_array().unwrap();
    assert_eq!(streams.len(), 12);
    assert!(streams.iter().all(|s| s["tokens"] == 15), "{seen}");
    let latest_first = streams
        .iter()
        .map(|s| s["first"].as_f64().unwrap())
        .fold(0.0, f64::max);
    let earliest_done = streams
        .iter()
        .map(|s| s["done"].as_f64().unwrap())
        .fold(f64::MAX, f64::min);
    assert!(
        latest_first < earliest_done,
        "all twelve were streaming at once (latest first token {latest_first} ms, earliest end {earliest_done} ms)"
    );
}
