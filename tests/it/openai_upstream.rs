//! Provider `openai` against a fake OpenAI server on 127.0.0.1: the relay of
//! content deltas, usage, upstream errors, timeouts, secrets and cancellation.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::common::fake_openai::{self, FakeOpenAi, TOKENS, UPSTREAM_KEY};
use crate::common::*;
use serde_json::json;

async fn setup(extra: &str) -> (FakeOpenAi, Server) {
    let fake = fake_openai::start().await;
    let toml = fake_openai::config_toml(&fake.base_url, extra);
    let server = spawn(config_with_env(&toml, &[("FAKE_KEY", UPSTREAM_KEY)])).await;
    (fake, server)
}

async fn ask(server: &Server, model: &str) -> Received {
    post_json(server, json!({"model": model, "prompt": "Say hello"})).await
}

fn assert_no_secret(got: &Received) {
    assert!(
        !got.text.contains(UPSTREAM_KEY),
        "the upstream key leaked: {}",
        got.text
    );
    assert!(
        !got.text.contains("SECRET"),
        "part of the key leaked: {}",
        got.text
    );
}

#[tokio::test]
async fn content_deltas_become_token_frames_and_upstream_usage_is_kept() {
    let (fake, server) = setup("").await;
    let got = ask(&server, "up-ok").await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(
        got.tokens(),
        TOKENS,
        "one frame per content delta, role-only delta skipped"
    );
    let done = got.terminal_json();
    assert_eq!(done["finish_reason"], "stop");
    assert_eq!(done["model"], "up-ok");
    // The usage chunk arrives after the finish_reason chunk and is not lost.
    assert_eq!(done["usage"]["prompt_tokens"], 11);
    assert_eq!(done["usage"]["completion_tokens"], TOKENS.len());

    let sent = fake.seen.last_body.lock().unwrap().clone().unwrap();
    assert_eq!(sent["model"], "ok", "upstream_model is sent");
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["stream_options"]["include_usage"], true);
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": "Say hello"}])
    );
    let auth = fake.seen.last_auth.lock().unwrap().clone().unwrap();
    assert_eq!(auth, format!("Bearer {UPSTREAM_KEY}"));
}

#[tokio::test]
async fn request_parameters_are_passed_upstream() {
    let (fake, server) = setup("").await;
    let got = post_json(
        &server,
        json!({"model": "up-ok", "system": "Be terse.", "prompt": "hi", "max_tokens": 42,
               "temperature": 0.5, "top_p": 0.9, "seed": 3, "stop": ["\n\n"],
               "mock": {"text": "ignored by real providers"}}),
    )
    .await;
    assert_eq!(got.tokens(), TOKENS);
    let sent = fake.seen.last_body.lock().unwrap().clone().unwrap();
    assert_eq!(sent["max_tokens"], 42);
    assert_eq!(sent["temperature"], 0.5);
    assert_eq!(sent["top_p"], 0.9);
    assert_eq!(sent["seed"], 3);
    assert_eq!(sent["stop"], json!(["\n\n"]));
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be terse."})
    );
    assert!(sent.get("mock").is_none());
}

#[tokio::test]
async fn usage_is_counted_locally_when_the_upstream_sends_none() {
    let (_fake, server) = setup("").await;
    let got = ask(&server, "up-no-usage").await;
    let usage = &got.terminal_json()["usage"];
    let expected = sluice::tokenizer::count(&TOKENS.concat());
    assert_eq!(usage["completion_tokens"], expected);
    assert_eq!(
        usage["prompt_tokens"],
        sluice::tokenizer::count("Say hello") + 6
    );
}

#[tokio::test]
async fn crlf_events_split_across_reads_and_a_last_event_without_blank_line_decode() {
    let (_fake, server) = setup("").await;
    let got = ask(&server, "up-crlf").await;
    assert_eq!(got.tokens(), TOKENS);
    assert_eq!(got.terminal().event, "done");
    let got = ask(&server, "up-no-blank-end").await;
    assert_eq!(got.tokens(), TOKENS);
    assert_eq!(got.terminal().event, "done");
}

#[tokio::test]
async fn upstream_error_status_before_the_first_token_is_a_502_without_secrets() {
    let (_fake, server) = setup("").await;
    let got = ask(&server, "up-status-500").await;
    assert_eq!(got.status, 502);
    let error = &got.json()["error"];
    assert_eq!(error["type"], "upstream_error");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("500") && message.contains("server had an error"),
        "{message}"
    );
    assert_no_secret(&got);

    let got = ask(&server, "up-status-429").await;
    assert_eq!(got.status, 502);
    assert!(got.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Rate limit"));
    assert_eq!(
        got.headers["retry-after"], "7",
        "the upstream's Retry-After is passed on"
    );
    assert_no_secret(&got);
}

#[tokio::test]
async fn an_unreachable_upstream_is_a_502() {
    // A port held by a socket that does not listen: connections are refused,
    // and no other server can take the port meanwhile (a port that was merely
    // free a moment ago was once handed to the sluice under test itself).
    let holder = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let any_port: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    holder.bind(&any_port.into()).unwrap();
    let port = holder.local_addr().unwrap().as_socket().unwrap().port();
    let toml = format!(
        "[[models]]\nname = \"gone\"\nprovider = \"openai\"\nbase_url = \"http://user:pw-SECRET@127.0.0.1:{port}/v1\"\n"
    );
    let server = spawn(config(&toml)).await;
    let got = ask(&server, "gone").await;
    assert_eq!(got.status, 502, "{}", got.text);
    assert_eq!(got.json()["error"]["type"], "upstream_error");
    assert_no_secret(&got);
}

#[tokio::test]
async fn an_upstream_that_dies_mid_stream_gives_an_error_frame_without_secrets() {
    let (_fake, server) = setup("").await;
    let got = ask(&server, "up-die").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.tokens(), TOKENS[..2]);
    assert_eq!(got.terminal().event, "error");
    assert_eq!(got.terminal_json()["error"]["type"], "upstream_error");
    assert!(!got.cut, "sluice ends its own response cleanly");
    assert_no_secret(&got);
}

#[tokio::test]
async fn an_error_event_mid_stream_becomes_an_error_frame_without_secrets() {
    let (_fake, server) = setup("").await;
    let got = ask(&server, "up-error-event").await;
    assert_eq!(got.tokens(), TOKENS[..2]);
    assert_eq!(got.terminal().event, "error");
    let message = got.terminal_json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("overloaded"), "{message}");
    assert_no_secret(&got);
}

#[tokio::test]
async fn an_upstream_that_closes_without_finishing_is_an_error() {
    let (_fake, server) = setup("").await;
    let got = ask(&server, "up-no-finish").await;
    assert_eq!(got.tokens(), TOKENS);
    assert_eq!(got.terminal().event, "error");
}

#[tokio::test]
async fn no_first_token_within_first_token_ms_is_a_504_and_cancels_upstream() {
    let (fake, server) = setup("[timeouts]\nfirst_token_ms = 300\n").await;
    let got = ask(&server, "up-hang").await;
    assert_eq!(got.status, 504);
    assert_eq!(got.json()["error"]["type"], "upstream_timeout");
    assert!(
        fake.seen.saw_cancels(1, Duration::from_secs(2)).await,
        "the hung upstream request is closed"
    );
}

#[tokio::test]
async fn first_token_timeout_after_a_heartbeat_is_an_error_frame() {
    let (_fake, server) = setup("heartbeat_secs = 1\n[timeouts]\nfirst_token_ms = 1500\n").await;
    let got = ask(&server, "up-hang").await;
    assert_eq!(got.status, 200, "the response began with a heartbeat");
    assert!(
        got.text.starts_with("retry: 1000\n: keep-alive\n\n"),
        "{}",
        got.text
    );
    assert_eq!(got.terminal().event, "error");
    assert_eq!(got.terminal_json()["error"]["type"], "upstream_timeout");
}

#[tokio::test]
async fn silence_between_tokens_past_idle_ms_ends_with_an_idle_timeout_frame() {
    let (fake, server) = setup("[timeouts]\nidle_ms = 150\n").await;
    let got = ask(&server, "up-slow").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.terminal().event, "error");
    assert_eq!(got.terminal_json()["error"]["type"], "idle_timeout");
    assert!(fake.seen.saw_cancels(1, Duration::from_secs(2)).await);
}

#[tokio::test]
async fn a_generation_past_total_ms_ends_with_a_total_timeout_frame() {
    let (_fake, server) = setup("[timeouts]\ntotal_ms = 400\n").await;
    let got = ask(&server, "up-drip").await;
    assert!(got.tokens().len() >= 2, "tokens flowed until the deadline");
    assert_eq!(got.terminal_json()["error"]["type"], "total_timeout");
}

#[tokio::test]
async fn timeouts_apply_to_the_mock_too() {
    let server = spawn(config("[timeouts]\nfirst_token_ms = 200\nidle_ms = 200\n")).await;
    let got = post_json(&server, json!({"prompt": "x", "mock": {"ttft_ms": 2000}})).await;
    assert_eq!(got.status, 504);
    assert_eq!(got.json()["error"]["type"], "upstream_timeout");
    let got = post_json(
        &server,
        json!({"prompt": "x", "mock": {"ttft_ms": 0, "token_delay_ms": 1000}}),
    )
    .await;
    assert_eq!(got.terminal_json()["error"]["type"], "idle_timeout");
}

#[tokio::test]
async fn a_burst_of_tokens_reaches_the_client_before_the_upstream_goes_quiet() {
    // Writes in a burst are coalesced; none may wait for the next write, which
    // here comes only with the idle timeout's frame.
    let (_fake, server) = setup("[timeouts]\nidle_ms = 3000\n").await;
    let start = Instant::now();
    let response = client()
        .post(server.url("/v1/stream"))
        .json(&json!({"model": "up-burst", "prompt": "x"}))
        .send()
        .await
        .unwrap();
    let chunks = timed_chunks(start, response).await;
    let mut decoder = sluice::sse::Decoder::new();
    let mut tokens = Vec::new();
    let mut last_token_at = Duration::ZERO;
    let mut error_at = None;
    for (at, text) in &chunks {
        decoder.push(text.as_bytes());
        while let Some(event) = decoder.next_event() {
            if event.event == "message" {
                tokens.push(token_of(&event));
                last_token_at = *at;
            } else {
                let error: serde_json::Value = serde_json::from_str(&event.data).unwrap();
                assert_eq!(error["error"]["type"], "idle_timeout");
                assert!(*at >= Duration::from_millis(2900), "{at:?}");
                error_at = Some(*at);
            }
        }
    }
    assert_eq!(tokens, TOKENS);
    let error_at = error_at.expect("the idle timeout ends the stream");
    // The burst comes at once; the idle frame 3 s after its last token.
    assert!(
        error_at - last_token_at >= Duration::from_millis(2500),
        "the burst's last token waited for the idle timeout: {last_token_at:?}, error at {error_at:?}"
    );
}

#[tokio::test]
async fn a_client_leaving_mid_stream_closes_the_upstream_connection() {
    let (fake, server) = setup("").await;
    let mut response = client()
        .post(server.url("/v1/stream"))
        .json(&json!({"model": "up-drip", "prompt": "x"}))
        .send()
        .await
        .unwrap();
    read_tokens(&mut response, 3).await;
    drop(response);
    assert!(
        fake.seen.saw_cancels(1, Duration::from_secs(2)).await,
        "the upstream saw the hang-up within two seconds"
    );
}

#[tokio::test]
async fn a_client_leaving_before_the_first_token_closes_the_upstream_connection() {
    let (fake, server) = setup("").await;
    let request = client()
        .post(server.url("/v1/stream"))
        .json(&json!({"model": "up-hang", "prompt": "x"}))
        .send();
    // Give up while sluice is waiting for the upstream's first token.
    let upstream_has_it = eventually(Duration::from_secs(20), || {
        fake.seen.requests.load(Ordering::SeqCst) == 1
    });
    tokio::select! {
        response = request => panic!("no response was due yet: {response:?}"),
        seen = upstream_has_it => assert!(seen, "the request reached the upstream"),
    }
    assert!(
        fake.seen.saw_cancels(1, Duration::from_secs(2)).await,
        "the upstream saw the hang-up within two seconds"
    );
}

#[tokio::test]
async fn a_finished_stream_is_not_counted_as_cancelled() {
    let (fake, server) = setup("").await;
    ask(&server, "up-ok").await;
    assert!(
        eventually(Duration::from_secs(1), || fake
            .seen
            .finished
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    assert_eq!(fake.seen.cancelled.load(Ordering::SeqCst), 0);
}
