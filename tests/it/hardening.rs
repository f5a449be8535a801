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
