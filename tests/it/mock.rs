//! The mock model (section 4 of the contract): every knob, per request and as
//! route config, its determinism, its text and its token accounting.

use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::{json, Value};

async fn stream(server: &Server, mock: Value) -> Received {
    post_json(
        server,
        json!({"prompt": "Explain streaming proxies", "mock": mock}),
    )
    .await
}

#[tokio::test]
async fn same_prompt_seed_and_knobs_give_the_same_tokens() {
    let server = spawn(fast_mock_config()).await;
    let a = post_json(&server, json!({"prompt": "hello there", "seed": 7})).await;
    let b = post_json(&server, json!({"prompt": "hello there", "seed": 7})).await;
    let c = post_json(&server, json!({"prompt": "hello there", "seed": 8})).await;
    let d = post_json(&server, json!({"prompt": "something else", "seed": 7})).await;
    assert_eq!(a.tokens(), b.tokens());
    assert_ne!(a.tokens(), c.tokens(), "the seed varies the text");
    assert_ne!(a.tokens(), d.tokens(), "the prompt varies the text");
}

#[tokio::test]
async fn the_answer_reads_like_a_chat_reply_with_markdown_and_multibyte_text() {
    let server = spawn(fast_mock_config()).await;
    let mut saw_multibyte = false;
    for seed in 0..6 {
        let got = post_json(
            &server,
            json!({"prompt": "How do I stream tokens?", "seed": seed}),
        )
        .await;
        let text = got.token_text();
        assert!(text.contains("```"), "a code block: {text}");
        assert!(
            text.contains("\n- ") || text.contains("\n1. "),
            "a list: {text}"
        );
        assert!(text.contains("**"), "bold text: {text}");
        assert!(text.contains(". "), "sentences: {text}");
        saw_multibyte |= text.chars().any(|c| c.len_utf8() > 1);
    }
    assert!(saw_multibyte, "multi-byte characters now and then");
}

#[tokio::test]
async fn tokens_are_cut_by_a_real_bpe_tokenizer_and_usage_counts_them() {
    let server = spawn(fast_mock_config()).await;
    let text = "Hello, world! Streaming tokens: naïve café 🚀.";
    let got = stream(&server, json!({"text": text})).await;
    let expected: Vec<String> = sluice::tokenizer::pieces(text)
        .into_iter()
        .map(|p| p.text)
        .collect();
    assert_eq!(got.tokens(), expected);
    assert_eq!(got.tokens()[..4], ["Hello", ",", " world", "!"]);
    let usage = &got.terminal_json()["usage"];
    assert_eq!(usage["completion_tokens"], sluice::tokenizer::count(text));
    let prompt = sluice::tokenizer::count("Explain streaming proxies");
    assert_eq!(
        usage["prompt_tokens"],
        prompt + 3 + 3,
        "OpenAI's chat accounting"
    );
}

#[tokio::test]
async fn text_knob_streams_exactly_that_text() {
    let server = spawn(fast_mock_config()).await;
    let text = "Line one.\n\n```js\nlet x = \"q\";\n```\n日本語 ✅";
    assert_eq!(
        stream(&server, json!({"text": text})).await.token_text(),
        text
    );
}

#[tokio::test]
async fn echo_mode_streams_the_final_user_message() {
    let server = spawn(fast_mock_config()).await;
    let got = stream(&server, json!({"mode": "echo"})).await;
    assert_eq!(got.token_text(), "Explain streaming proxies");
}

#[tokio::test]
async fn tokens_knob_sets_the_answer_length_and_max_tokens_caps_it() {
    let server = spawn(fast_mock_config()).await;
    for wanted in [1u64, 7, 600] {
        let got = stream(&server, json!({"tokens": wanted})).await;
        let done = got.terminal_json();
        assert_eq!(
            done["usage"]["completion_tokens"], wanted,
            "tokens = {wanted}"
        );
        assert_eq!(done["finish_reason"], "stop");
    }
    let got = post_json(
        &server,
        json!({"prompt": "x", "max_tokens": 5, "mock": {"tokens": 50}}),
    )
    .await;
    assert_eq!(got.terminal_json()["usage"]["completion_tokens"], 5);
    assert_eq!(got.terminal_json()["finish_reason"], "length");
}

#[tokio::test]
async fn ttft_and_token_delay_pace_the_stream() {
    let server = spawn(fast_mock_config()).await;
    let start = Instant::now();
    let response = client()
        .post(server.url("/v1/stream"))
        .json(&json!({"prompt": "x", "mock": {"text": "a b c d e", "ttft_ms": 600, "token_delay_ms": 120}}))
        .send()
        .await
        .unwrap();
    let chunks = timed_chunks(start, response).await;
    let tokens: Vec<Duration> = chunks
        .iter()
        .filter(|(_, t)| t.contains("\"token\""))
        .map(|(at, _)| *at)
        .collect();
    assert_eq!(tokens.len(), 5);
    assert!(tokens[0] >= Duration::from_millis(550), "ttft: {tokens:?}");
    for gap in tokens.windows(2).map(|w| w[1] - w[0]) {
        assert!(gap >= Duration::from_millis(90), "gap {gap:?}");
    }
}

/// How the gaps spread is the mock's unit test, in paused time
/// (`providers::mock::tests`); over HTTP the knob is taken and every token comes.
#[tokio::test]
async fn the_jitter_knob_is_taken_over_http() {
    let server = spawn(fast_mock_config()).await;
    let got = stream(
        &server,
        json!({"tokens": 12, "token_delay_ms": 40, "jitter_ms": 40}),
    )
    .await;
    assert_eq!(got.status, 200);
    assert_eq!(got.tokens().len(), 12);
    assert_eq!(got.terminal().event, "done");
}

#[tokio::test]
async fn fail_after_ends_with_an_error_frame() {
    let server = spawn(fast_mock_config()).await;
    let got = stream(&server, json!({"fail_after": 3})).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.tokens().len(), 3);
    assert_eq!(got.terminal().event, "error");
    assert_eq!(got.terminal_json()["error"]["type"], "upstream_error");
    assert!(!got.text.contains("event: done"));
    assert!(!got.cut, "an error frame ends the response cleanly");
}

#[tokio::test]
async fn fail_after_zero_fails_before_streaming_with_a_502() {
    let server = spawn(fast_mock_config()).await;
    let got = stream(&server, json!({"fail_after": 0})).await;
    assert_eq!(got.status, 502);
    assert_eq!(got.json()["error"]["type"], "upstream_error");
}

#[tokio::test]
async fn error_status_fails_before_streaming_with_that_status() {
    let server = spawn(fast_mock_config()).await;
    for (status, kind) in [
        (429, "rate_limited"),
        (500, "internal_error"),
        (503, "overloaded"),
        (400, "invalid_request"),
    ] {
        let got = stream(&server, json!({"error_status": status})).await;
        assert_eq!(got.status, status);
        assert_eq!(got.json()["error"]["type"], kind);
        assert_eq!(
            got.headers.get("retry-after").is_some(),
            status == 429,
            "{status}"
        );
    }
    let got = stream(&server, json!({"error_status": 429})).await;
    assert_eq!(got.headers["retry-after"], "1");
}

#[tokio::test]
async fn drop_after_cuts_the_connection_with_no_terminal_frame() {
    let server = spawn(fast_mock_config()).await;
    let got = stream(&server, json!({"drop_after": 4})).await;
    assert_eq!(got.status, 200);
    assert!(got.cut, "the transfer is incomplete");
    assert_eq!(
        got.tokens().len(),
        4,
        "the tokens before the cut arrive: {}",
        got.text
    );
    assert!(!got.text.contains("event:"), "no terminal frame");
}

#[tokio::test]
async fn knobs_in_the_route_config_are_defaults_that_requests_override() {
    let config = config(
        r#"
        [[models]]
        name = "mock"
        provider = "mock"
        ttft_ms = 0
        token_delay_ms = 0
        text = "configured text"

        [[models]]
        name = "flaky"
        provider = "mock"
        ttft_ms = 0
        token_delay_ms = 0
        error_status = 503
        "#,
    );
    let server = spawn(config).await;
    assert_eq!(
        post_json(&server, json!({"prompt": "x"}))
            .await
            .token_text(),
        "configured text"
    );
    let got = post_json(&server, json!({"prompt": "x", "mock": {"text": "mine"}})).await;
    assert_eq!(got.token_text(), "mine");
    assert_eq!(
        post_json(&server, json!({"prompt": "x", "model": "flaky"}))
            .await
            .status,
        503
    );
}

#[tokio::test]
async fn the_default_mock_paces_like_a_real_model() {
    // No config at all: the built-in mock, realistic timing.
    let server = spawn(sluice::config::Config::default()).await;
    let started = Instant::now();
    let got = post_json(&server, json!({"prompt": "hi", "mock": {"tokens": 5}})).await;
    assert_eq!(got.tokens().len(), 5);
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "a first-token delay"
    );
}
