//! The defects review's findings (`../shared/reviews/defects-2026-12.md`),
//! one regression test each, numbered as there: what a bad upstream or a bad
//! client must never do to sluice.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::any;
use serde_json::json;
use tokio::net::TcpListener;

use crate::common::*;

/// A local server answering every request with `respond`, counting them.
async fn serve_counting(
    respond: impl Fn() -> axum::response::Response + Clone + Send + Sync + 'static,
) -> (String, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let app = axum::Router::new().fallback(any(move || {
        let respond = respond.clone();
        seen.fetch_add(1, Ordering::SeqCst);
        async move { respond() }
    }));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), count)
}

/// Finding 4: a redirecting upstream is an error; the key and the prompt
/// never go to the redirect's target.
#[tokio::test]
async fn finding_4_upstream_redirects_are_not_followed() {
    let (thief, stolen) = serve_counting(|| StatusCode::OK.into_response()).await;
    let target = format!("{thief}/steal");
    let (redirector, _) = serve_counting(move || {
        (
            StatusCode::TEMPORARY_REDIRECT,
            [("location", target.clone())],
        )
            .into_response()
    })
    .await;
    let toml = format!(
        "[[models]]\nname = \"claude\"\nprovider = \"anthropic\"\nbase_url = \"{redirector}\"\napi_key_env = \"KEY\"\nretries = 0\n\
         [[models]]\nname = \"gpt\"\nprovider = \"openai\"\nbase_url = \"{redirector}/v1\"\napi_key_env = \"KEY\"\nretries = 0\n"
    );
    let server = spawn(config_with_env(&toml, &[("KEY", "sk-ant-SECRET-key")])).await;
    for model in ["claude", "gpt"] {
        let got = post_json(
            &server,
            json!({"model": model, "prompt": "my secret prompt"}),
        )
        .await;
        assert_eq!(got.status, 502, "{model}: {}", got.text);
        assert!(
            error_of(&got)["message"].as_str().unwrap().contains("307"),
            "{}",
            got.text
        );
        assert!(
            !got.text.contains("steal"),
            "the Location is not the client's: {}",
            got.text
        );
    }
    assert_eq!(
        stolen.load(Ordering::SeqCst),
        0,
        "the redirect's target was called"
    );
}

/// Finding 11: a transport error does not tell the client where the
/// upstream is.
#[tokio::test]
async fn finding_11_transport_errors_do_not_name_the_upstream() {
    let toml = "[[models]]\nname = \"gone\"\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:1/internal/v1\"\nretries = 0\n";
    let server = spawn(config(toml)).await;
    let got = post_json(&server, json!({"model": "gone", "prompt": "hi"})).await;
    assert_eq!(got.status, 502, "{}", got.text);
    let message = error_of(&got)["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("could not reach the upstream"),
        "{message}"
    );
    assert!(
        !message.contains("127.0.0.1") && !message.contains("internal"),
        "{message}"
    );
}

/// Finding 8: a whole answer ends as `done` when its usage chunk lacks a
/// count, or when the stream pauses after the finish reason.
#[tokio::test]
async fn finding_8_a_complete_answer_is_done_whatever_follows_its_finish() {
    let upstream = crate::common::fake_openai::start().await;
    let toml =
        crate::common::fake_openai::config_toml(&upstream.base_url, "[timeouts]\nidle_ms = 2000");
    let server = spawn(config_with_env(&toml, &[("FAKE_KEY", "k")])).await;
    let tokens = crate::common::fake_openai::TOKENS;
    for model in ["up-partial-usage", "up-pause-after-finish"] {
        let got = post_json(&server, json!({"model": model, "prompt": "hi"})).await;
        assert_eq!(got.token_text(), tokens.concat(), "{model}");
        assert_eq!(got.terminal().event, "done", "{model}: {}", got.text);
        let usage = &got.terminal_json()["usage"];
        assert!(usage["completion_tokens"].as_u64().unwrap() > 0, "{model}");
        if model == "up-partial-usage" {
            // The count it gave is kept; the one it left out is counted here.
            assert_eq!(usage["prompt_tokens"], 11);
        }
    }
}

/// Finding 16: a duration past its bound is a config error naming its key
/// (the binary exits 2 on it, as on every config error), and a request's
/// mock delays are bounded too, so no clock arithmetic can overflow.
#[tokio::test]
async fn finding_16_durations_are_bounded_at_load_and_in_requests() {
    let cases = [
        ("heartbeat_secs = 9223372036854775807\n", "heartbeat_secs"),
        ("heartbeat_secs = 0\n", "heartbeat_secs"),
        (
            "[timeouts]\nidle_ms = 18446744073709551615\n",
            "timeouts.idle_ms",
        ),
        (
            "[timeouts]\nfirst_token_ms = 0\n",
            "timeouts.first_token_ms",
        ),
        (
            "[streams]\nretain_secs = 99999999999\n",
            "streams.retain_secs",
        ),
        (
            "[[models]]\nname = \"m\"\nprovider = \"mock\"\njitter_ms = 9223372036854775807\n",
            "models[0].jitter_ms",
        ),
    ];
    for (toml, key) in cases {
        let err = sluice::config::Config::parse(toml, |_| None).expect_err(toml);
        assert_eq!(err.key, key, "{toml}");
    }
    let server = spawn(fast_mock_config()).await;
    let got = post_json(
        &server,
        json!({"prompt": "hi", "mock": {"jitter_ms": 9223372036854775807u64}}),
    )
    .await;
    assert_eq!(got.status, 400);
    assert_eq!(error_of(&got)["param"], "mock.jitter_ms");
}

/// Finding 13: a client's `X-Request-Id` is kept only when short and plain.
#[tokio::test]
async fn finding_13_only_a_short_plain_request_id_is_kept() {
    let server = spawn(fast_mock_config()).await;
    let id_for = |id: String| {
        let url = server.url("/healthz");
        async move {
            let response = client()
                .get(url)
                .header("x-request-id", id)
                .send()
                .await
                .unwrap();
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    assert_eq!(id_for("trace-1.A_b".into()).await, "trace-1.A_b");
    for unfit in [
        "x".repeat(60_000),
        "a b".into(),
        "id=1 client=evil".into(),
        "ünï".into(),
    ] {
        let echoed = id_for(unfit.clone()).await;
        assert_ne!(echoed, unfit);
        assert_eq!(echoed.len(), 36, "a fresh UUID: {echoed}");
    }
}

/// Finding 14: `HEAD /v1/stream` starts no generation.
#[tokio::test]
async fn finding_14_head_starts_no_generation() {
    let upstream = crate::common::fake_openai::start().await;
    let toml = crate::common::fake_openai::config_toml(&upstream.base_url, "");
    let server = spawn(config_with_env(&toml, &[("FAKE_KEY", "k")])).await;
    let response = client()
        .head(server.url("/v1/stream?prompt=hi&model=up-slow"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "GET, POST");
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(upstream.seen.requests.load(Ordering::SeqCst), 0);
}

/// Finding 15: a query string is held to `max_body_bytes` like a body.
#[tokio::test]
async fn finding_15_a_query_is_bounded_like_a_body() {
    let server = spawn(config(&format!(
        "[limits]\nmax_body_bytes = 1000\n{FAST_MOCK}"
    )))
    .await;
    let long = "x".repeat(2_000);
    let got = send(client().get(server.url(&format!("/v1/stream?prompt={long}")))).await;
    assert_eq!(got.status, 413, "{}", got.text);
    assert_eq!(error_of(&got)["type"], "payload_too_large");
    let got = send(client().get(server.url("/v1/stream?prompt=hi&mock_tokens=2"))).await;
    assert_eq!(got.status, 200);
}

/// Finding 17: JSON answers carry their `Content-Length`.
#[tokio::test]
async fn finding_17_json_answers_have_a_content_length() {
    let server = spawn(fast_mock_config()).await;
    let answers = [
        client().get(server.url("/v1/models")),
        client().get(server.url("/nope")),
        client()
            .post(server.url("/v1/chat/completions"))
            .json(&quick_chat()),
        client()
            .post(server.url("/v1/stream"))
            .json(&json!({"prompt": "hi", "model": "nope"})),
    ];
    for request in answers {
        let response = request.send().await.unwrap();
        let length: usize = response.headers()["content-length"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(response.headers().get("transfer-encoding").is_none());
        assert_eq!(response.bytes().await.unwrap().len(), length);
    }
}

/// Finding 6: an upstream line that never ends is an error once it passes
/// the bound, not a buffer that grows until a deadline.
#[tokio::test]
async fn finding_6_an_endless_upstream_line_is_an_error() {
    let upstream = crate::common::fake_openai::start().await;
    let toml = crate::common::fake_openai::config_toml(&upstream.base_url, "");
    let server = spawn(config_with_env(&toml, &[("FAKE_KEY", "k")])).await;
    let got = post_json(&server, json!({"model": "up-huge-line", "prompt": "hi"})).await;
    assert_eq!(got.status, 502, "{}", got.text);
    assert!(
        error_of(&got)["message"]
            .as_str()
            .unwrap()
            .contains("longer than"),
        "{}",
        got.text
    );
}

/// Finding 12: a request still waiting for its first event when the
/// shutdown grace ends gets a real 503, not an empty reply.
#[tokio::test]
async fn finding_12_the_shutdown_grace_ends_a_waiting_request_with_a_503() {
    let server = spawn(config(
        "shutdown_grace_secs = 1\nshutdown_delay_secs = 0\n[[models]]\nname = \"mock\"\nprovider = \"mock\"\nttft_ms = 20000\n",
    ))
    .await;
    let url = server.url("/v1/stream");
    let waiting = tokio::spawn(async move {
        receive(
            client()
                .post(url)
                .json(&json!({"prompt": "hi"}))
                .send()
                .await
                .unwrap(),
        )
        .await
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    drop(server); // SIGTERM, in-process
    let got = waiting.await.unwrap();
    assert_eq!(got.status, 503, "{}", got.text);
    assert_eq!(error_of(&got)["type"], "shutting_down");
}

/// Reads from `tcp` until it closes; true if it closed within `within`.
async fn closes_within(tcp: &mut tokio::net::TcpStream, within: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut sink = Vec::new();
    matches!(
        tokio::time::timeout(within, tcp.read_to_end(&mut sink)).await,
        Ok(Ok(_))
    )
}

fn addr_of(server: &Server) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

/// Finding 3: a connection that sends nothing, half a request head, or
/// nothing more after its answer is closed after `limits.header_timeout_ms`.
#[tokio::test]
async fn finding_3_slow_and_idle_connections_are_closed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = spawn(config(&format!(
        "[limits]\nheader_timeout_ms = 500\n{FAST_MOCK}"
    )))
    .await;
    let addr = addr_of(&server);
    let wait = std::time::Duration::from_secs(5);

    let mut silent = tokio::net::TcpStream::connect(&addr).await.unwrap();
    assert!(
        closes_within(&mut silent, wait).await,
        "a silent connection stays open"
    );

    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    assert!(
        closes_within(&mut slow, wait).await,
        "half a head stays open"
    );

    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 12];
    idle.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    assert!(
        closes_within(&mut idle, wait).await,
        "an idle keep-alive connection stays open"
    );
}

/// Finding 3: past `limits.max_connections` a new connection is closed at
/// once; once one closes, connections are taken again.
#[tokio::test]
async fn finding_3_connections_are_capped() {
    let server = spawn(config(&format!(
        "[limits]\nmax_connections = 2\n{FAST_MOCK}"
    )))
    .await;
    let addr = addr_of(&server);
    let first = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let _second = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // Give the accept loop the two first.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut third = tokio::net::TcpStream::connect(&addr).await.unwrap();
    assert!(closes_within(&mut third, std::time::Duration::from_secs(2)).await);
    drop(first);
    assert!(eventually(std::time::Duration::from_secs(5), || true).await,);
    let mut ok = false;
    for _ in 0..50 {
        if client().get(server.url("/healthz")).send().await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ok, "a connection is taken once one has closed");
}

/// Finding 3: a client that stops reading is cut off after
/// `limits.send_timeout_ms`, and its upstream request with it.
#[tokio::test]
async fn finding_3_a_client_that_stops_reading_is_cut_off() {
    use tokio::io::AsyncWriteExt;
    let upstream = crate::common::fake_openai::start().await;
    let toml = crate::common::fake_openai::config_toml(
        &upstream.base_url,
        "[limits]\nsend_timeout_ms = 500",
    );
    let server = spawn(config_with_env(&toml, &[("FAKE_KEY", "k")])).await;
    let mut tcp = tokio::net::TcpStream::connect(addr_of(&server))
        .await
        .unwrap();
    let body = r#"{"model":"up-firehose","prompt":"hi"}"#;
    let request = format!(
        "POST /v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    // The client never reads; the upstream is let go all the same.
    assert!(
        upstream
            .seen
            .saw_cancels(1, std::time::Duration::from_secs(15))
            .await
    );
    drop(tcp);
}

/// Finding 10: failed authentications are limited per address: past the
/// budget the address's bad keys get 429s, for a while. T3-11: a key that
/// checks out is never refused, so a guesser behind the same address (a
/// NAT, a proxy) cannot lock the valid keys out.
#[tokio::test]
async fn finding_10_failed_authentications_are_throttled() {
    let server = spawn(config(&format!(
        "[auth]\napi_keys = [\"sk-right\"]\n{FAST_MOCK}"
    )))
    .await;
    let with = |key: &str| {
        client()
            .post(server.url("/v1/stream"))
            .bearer_auth(key)
            .json(&quick())
    };
    assert_eq!(send(with("sk-right")).await.status, 200);
    let mut statuses = Vec::new();
    for n in 0..15 {
        statuses.push(send(with(&format!("guess-{n}"))).await.status);
    }
    assert_eq!(
        statuses.iter().filter(|s| **s == 401).count(),
        10,
        "{statuses:?}"
    );
    assert!(statuses[10..].iter().all(|s| *s == 429), "{statuses:?}");
    let refused = send(with("guess-again")).await;
    assert_eq!(refused.status, 429, "a guesser's bad keys are refused");
    assert!(refused.headers.contains_key("retry-after"));
    assert_eq!(
        send(with("sk-right")).await.status,
        200,
        "t3_11: the valid key from the same address still passes"
    );
}

/// Finding 7: a tool-call index from the upstream cannot size sluice's
/// memory: one past the bound is ignored, on every door.
#[tokio::test]
async fn finding_7_a_wild_tool_call_index_is_ignored() {
    let upstream = crate::common::fake_openai::start().await;
    let toml = format!(
        "[[models]]\nname = \"wild\"\nprovider = \"openai\"\nbase_url = \"{}\"\nupstream_model = \"wild-index\"\nretries = 0\n",
        upstream.base_url
    );
    let server = spawn(config(&toml)).await;
    let hi = json!([{"role": "user", "content": "hi"}]);
    let whole = post_to(
        &server,
        "/v1/chat/completions",
        json!({"model": "wild", "messages": hi}),
    )
    .await;
    assert_eq!(whole.status, 200, "{}", whole.text);
    let calls = whole.json()["choices"][0]["message"]["tool_calls"].clone();
    assert_eq!(calls.as_array().unwrap().len(), 1, "{calls}");
    assert_eq!(calls[0]["id"], "call_0");
    // The Messages door writes call ids with Anthropic's prefix.
    for (path, body, kept) in [
        (
            "/v1/responses",
            json!({"model": "wild", "input": "hi", "stream": true}),
            "call_0",
        ),
        (
            "/v1/messages",
            json!({"model": "wild", "max_tokens": 9, "messages": hi, "stream": true}),
            "toolu_0",
        ),
    ] {
        let got = post_to(&server, path, body).await;
        assert_eq!(got.status, 200, "{path}: {}", got.text);
        assert!(!got.text.contains("_wild"), "{path}: {}", got.text);
        assert!(got.text.contains(kept), "{path}: {}", got.text);
    }
}

/// Finding 5: by default only loopback pages may call sluice, and a page
/// elsewhere is refused before anything runs (a `text/plain` POST needs no
/// preflight); a foreign `Host` (DNS rebinding) is refused too. `"*"` and
/// `allowed_hosts` open them up when configured.
#[tokio::test]
async fn finding_5_foreign_pages_and_hosts_are_refused_by_default() {
    let upstream = crate::common::fake_openai::start().await;
    let toml = crate::common::fake_openai::config_toml(&upstream.base_url, "");
    let server = spawn(config_with_env(&toml, &[("FAKE_KEY", "k")])).await;
    let body = r#"{"model":"up-ok","messages":[{"role":"user","content":"hi"}]}"#;
    let simple = |origin: &str, host: Option<&str>| {
        let mut request = client()
            .post(server.url("/v1/chat/completions"))
            .header("origin", origin)
            .header("content-type", "text/plain")
            .body(body);
        if let Some(host) = host {
            request = request.header("host", host);
        }
        request
    };
    let got = send(simple("https://evil.example", None)).await;
    assert_eq!(got.status, 403, "{}", got.text);
    assert_eq!(error_of(&got)["type"], "forbidden");
    let got = send(simple(
        "http://localhost:5173",
        Some("rebind.attacker.example"),
    ))
    .await;
    assert_eq!(got.status, 403, "{}", got.text);
    assert_eq!(
        upstream.seen.requests.load(Ordering::SeqCst),
        0,
        "nothing ran"
    );
    assert_eq!(
        send(simple("http://127.0.0.1:3000", None)).await.status,
        200
    );

    let open = format!("[cors]\nallow_origins = [\"*\"]\nallowed_hosts = [\"sluice.internal\", \"127.0.0.1\"]\n{FAST_MOCK}");
    let server = spawn(config(&open)).await;
    let got = send(
        client()
            .post(server.url("/v1/stream"))
            .header("origin", "https://any.example")
            .header("host", "sluice.internal:7800")
            .json(&quick()),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text);
    // Listening on a non-loopback address, any Host is answered.
    let mut anywhere = fast_mock_config();
    anywhere.listen = "0.0.0.0:7800".parse().unwrap();
    let server = spawn(anywhere).await;
    let got = send(
        client()
            .get(server.url("/healthz"))
            .header("host", "sluice-1.svc"),
    )
    .await;
    assert_eq!(got.status, 200);
}

/// Finding 19: an operator can limit which client fields reach an
/// OpenAI-compatible upstream (`service_tier`, `store` act on its account).
#[tokio::test]
async fn finding_19_passthrough_can_be_limited_per_model() {
    let upstream = crate::common::fake_openai::start().await;
    let toml = format!(
        "[[models]]\nname = \"gpt\"\nprovider = \"openai\"\nbase_url = \"{}\"\nupstream_model = \"ok\"\nretries = 0\npassthrough = [\"tools\", \"user\"]\n",
        upstream.base_url
    );
    let server = spawn(config(&toml)).await;
    let body = json!({"model": "gpt", "messages": [{"role": "user", "content": "hi"}],
                      "user": "u1", "service_tier": "priority", "store": true,
                      "tools": [{"type": "function", "function": {"name": "f"}}]});
    assert_eq!(
        post_to(&server, "/v1/chat/completions", body).await.status,
        200
    );
    let sent = upstream.seen.last_body.lock().unwrap().clone().unwrap();
    assert_eq!(sent["user"], "u1");
    assert!(sent["tools"].is_array());
    assert!(
        sent.get("service_tier").is_none() && sent.get("store").is_none(),
        "{sent}"
    );
    let err = sluice::config::Config::parse(
        "[[models]]\nname = \"m\"\nprovider = \"mock\"\npassthrough = []\n",
        |_| None,
    )
    .unwrap_err();
    assert_eq!(err.key, "models[0].passthrough");
}
