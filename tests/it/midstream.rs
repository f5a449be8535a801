//! Section 17, a failure in the middle of a stream, against the flaky fake
//! upstream (`common::fake_flaky`) in all three wire formats: a cut, a
//! stall, an error event and unparsable events continued into one answer on
//! every door, with the seam shown and the usage summed; a fallback that
//! refuses the continuation skipped; every attempt failing ending with the
//! original error; hedging; and failures before the first token handled by
//! their class.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::doors::every_door;
use crate::common::fake_flaky::{self, FakeFlaky, ANSWER, K, PROMPT_TOKENS};
use crate::common::*;

/// A route `name` on the fake, speaking `wire`, asking it for `upstream`.
fn route(fake: &FakeFlaky, name: &str, wire: &str, upstream: &str, extra: &str) -> String {
    let base_url = match wire {
        "openai" => format!("{}/v1", fake.addr),
        _ => fake.addr.clone(),
    };
    format!(
        "[[models]]\nname = \"{name}\"\nprovider = \"{wire}\"\nbase_url = \"{base_url}\"\n\
         upstream_model = \"{upstream}\"\nretries = 0\n{extra}\n"
    )
}

const TIMEOUTS: &str = "[timeouts]\nidle_ms = 500\nfirst_token_ms = 700\n";

async fn server_with(routes: &[String]) -> Server {
    let toml = format!("{TIMEOUTS}{}", routes.concat());
    spawn(config(&toml)).await
}

/// A native stream of `model`.
async fn native(server: &Server, model: &str) -> Received {
    post_json(
        server,
        json!({"prompt": "Tell me about foxes", "model": model}),
    )
    .await
}

fn seams(got: &Received) -> Vec<Value> {
    got.events
        .iter()
        .filter(|e| e.event == "continued")
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect()
}

fn terminals(got: &Received) -> usize {
    got.events
        .iter()
        .filter(|e| e.event == "done" || e.event == "error")
        .count()
}

#[tokio::test]
async fn a_cut_a_stall_an_error_event_and_bad_events_are_continued_in_each_wire_format() {
    for wire in ["openai", "anthropic", "ollama"] {
        for (fault, reason) in [
            ("cut", "stream"),
            ("stall", "idle_timeout"),
            ("error-event", "stream"),
            ("malformed", "malformed"),
        ] {
            let fake = fake_flaky::start().await;
            let server = server_with(&[route(
                &fake,
                "flaky",
                wire,
                fault,
                "midstream = \"continue\"",
            )])
            .await;
            let got = native(&server, "flaky").await;
            let case = format!("{wire} {fault}: {}", got.text);
            assert_eq!(got.status, 200, "{case}");
            assert_eq!(got.token_text(), ANSWER, "every token once: {case}");
            assert_eq!(terminals(&got), 1, "{case}");
            assert_eq!(got.terminal().event, "done", "{case}");
            let seams = seams(&got);
            assert_eq!(seams.len(), 1, "{case}");
            assert_eq!(
                seams[0],
                json!({"after_tokens": K, "model": "flaky", "reason": reason}),
                "{case}"
            );
            // The seam has an id like every frame.
            assert!(got.text.contains("event: continued"), "{case}");
            let seam = got.events.iter().find(|e| e.event == "continued").unwrap();
            assert!(seam.id.is_some(), "{case}");
            // The second request carried the answer so far as its last,
            // assistant message.
            let bodies = fake.seen.bodies.lock().unwrap().clone();
            assert_eq!(bodies.len(), 2, "{case}");
            let last = bodies[1]["messages"]
                .as_array()
                .unwrap()
                .last()
                .unwrap()
                .clone();
            assert_eq!(last["role"], "assistant", "{case}");
            assert_eq!(last["content"], "The quick brown", "{case}");
            // Usage: the cut call's (counted by sluice) plus the second's.
            let usage = &got.terminal_json()["usage"];
            assert!(
                usage["prompt_tokens"].as_u64().unwrap() > PROMPT_TOKENS,
                "{case}"
            );
            assert!(usage["completion_tokens"].as_u64().unwrap() >= 9, "{case}");
        }
    }
}

#[tokio::test]
async fn every_door_gives_one_answer_with_its_seam() {
    for (path, body, text_of) in every_door("flaky") {
        let fake = fake_flaky::start().await;
        let server = server_with(&[route(
            &fake,
            "flaky",
            "openai",
            "cut",
            "midstream = \"continue\"",
        )])
        .await;
        let got = post_to(&server, path, body.clone()).await;
        let case = format!("{path} {body}: {}", got.text);
        assert_eq!(got.status, 200, "{case}");
        assert_eq!(text_of(&got), ANSWER, "{case}");
        assert_eq!(fake.seen.requests("cut"), 2, "{case}");
        let streaming = got.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream");
        if !streaming {
            continue;
        }
        let named = |name: &str| got.events.iter().filter(|e| e.event == name).count();
        let chunks: Vec<Value> = got
            .events
            .iter()
            .filter_map(|e| serde_json::from_str(&e.data).ok())
            .collect();
        match path {
            "/v1/stream" => assert_eq!(seams(&got).len(), 1, "{case}"),
            _ => assert!(
                got.text.contains(": continued after 3 tokens (stream)\n\n"),
                "{case}"
            ),
        }
        match path {
            "/v1/messages" => {
                assert_eq!(named("message_start"), 1, "{case}");
                assert_eq!(named("message_stop"), 1, "{case}");
                // One text block: every delta at index 0.
                assert!(chunks
                    .iter()
                    .filter(|c| c["type"] == "content_block_delta")
                    .all(|c| c["index"] == 0));
                assert_eq!(named("content_block_start"), 1, "{case}");
            }
            "/v1/responses" => {
                assert_eq!(named("response.created"), 1, "{case}");
                assert_eq!(named("response.completed"), 1, "{case}");
                let numbers: Vec<u64> = chunks
                    .iter()
                    .map(|c| c["sequence_number"].as_u64().unwrap())
                    .collect();
                assert!(
                    numbers.windows(2).all(|w| w[1] == w[0] + 1),
                    "sequence numbers continuous: {numbers:?}"
                );
            }
            "/v1/chat/completions" | "/v1/completions" => {
                let done = got.events.iter().filter(|e| e.data == "[DONE]").count();
                assert_eq!(done, 1, "{case}");
            }
            "/v1/ui/chat" => {
                let finishes = chunks.iter().filter(|c| c["type"] == "finish").count();
                assert_eq!(finishes, 1, "{case}");
            }
            "/v1/agui" => {
                let ends = chunks
                    .iter()
                    .filter(|c| c["type"] == "RUN_FINISHED" || c["type"] == "RUN_ERROR")
                    .count();
                assert_eq!(ends, 1, "{case}");
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn openai_usage_is_summed_over_the_calls() {
    let fake = fake_flaky::start().await;
    let server = server_with(&[route(
        &fake,
        "summed",
        "openai",
        "cut",
        "midstream = \"continue\"",
    )])
    .await;
    let got = post_to(
        &server,
        "/v1/chat/completions",
        json!({"model": "summed", "stream": true, "stream_options": {"include_usage": true},
            "messages": [{"role": "user", "content": "Tell me about foxes"}]}),
    )
    .await;
    let usage = got
        .events
        .iter()
        .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
        .find(|c| c["usage"].is_object())
        .expect("a usage chunk")["usage"]
        .clone();
    // The second call reported 100 and 7; the cut one is counted here.
    assert!(
        usage["prompt_tokens"].as_u64().unwrap() > PROMPT_TOKENS,
        "{usage}"
    );
    assert!(usage["completion_tokens"].as_u64().unwrap() > 7, "{usage}");
    let metrics = metrics_of(&server).await;
    assert!(
        metrics.contains("sluice_continuations_total{model=\"summed\",reason=\"stream\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_fallback_that_refuses_the_continuation_is_skipped() {
    let fake = fake_flaky::start().await;
    let server = server_with(&[
        route(
            &fake,
            "flaky",
            "openai",
            "reject",
            "midstream = \"continue\"\nmidstream_attempts = 3\nfallbacks = [\"picky\", \"backup\"]",
        ),
        route(&fake, "picky", "anthropic", "reject", ""),
        route(&fake, "backup", "ollama", "ok", ""),
    ])
    .await;
    let got = native(&server, "flaky").await;
    assert_eq!(got.token_text(), ANSWER, "{}", got.text);
    assert_eq!(terminals(&got), 1);
    assert_eq!(seams(&got)[0]["model"], "backup", "{}", got.text);
    // The first call, then the same model's and the picky fallback's 400s.
    assert_eq!(fake.seen.requests("reject"), 3);
    assert_eq!(fake.seen.requests("ok"), 1);
}

#[tokio::test]
async fn when_every_continuation_fails_the_original_error_ends_the_answer() {
    let fake = fake_flaky::start().await;
    let server = server_with(&[route(
        &fake,
        "flaky",
        "openai",
        "reject",
        "midstream = \"continue\"",
    )])
    .await;
    let got = native(&server, "flaky").await;
    assert_eq!(got.token_text(), "The quick brown", "{}", got.text);
    assert_eq!(terminals(&got), 1);
    let error = got.terminal_json();
    assert_eq!(got.terminal().event, "error");
    assert_eq!(error["error"]["type"], "upstream_error", "{error}");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("mid-stream"),
        "the cut, not the 400: {message}"
    );
    assert!(seams(&got).is_empty());
}

#[tokio::test]
async fn without_continue_a_cut_ends_with_an_error_frame_as_before() {
    let fake = fake_flaky::start().await;
    let server = server_with(&[route(&fake, "flaky", "openai", "cut", "")]).await;
    let got = native(&server, "flaky").await;
    assert_eq!(got.token_text(), "The quick brown");
    assert_eq!(got.terminal().event, "error");
    assert_eq!(fake.seen.requests("cut"), 1);
}

#[tokio::test]
async fn one_unparsable_event_is_skipped_and_counted() {
    let fake = fake_flaky::start().await;
    let server = server_with(&[route(&fake, "skipping", "openai", "malformed-one", "")]).await;
    let got = native(&server, "skipping").await;
    assert_eq!(got.token_text(), ANSWER, "{}", got.text);
    assert_eq!(got.terminal().event, "done");
    let metrics = metrics_of(&server).await;
    assert!(
        metrics.contains("sluice_upstream_errors_total{model=\"skipping\",kind=\"malformed\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_slow_first_token_is_hedged_on_the_first_fallback() {
    let fake = fake_flaky::start().await;
    let server = server_with(&[
        route(
            &fake,
            "hedged",
            "openai",
            "slow-first",
            "hedge_after_ms = 200\nfallbacks = [\"quick\"]",
        ),
        route(&fake, "quick", "anthropic", "ok", ""),
    ])
    .await;
    let got = native(&server, "hedged").await;
    assert_eq!(got.token_text(), ANSWER);
    assert_eq!(got.terminal_json()["model"], "quick", "{}", got.text);
    assert_eq!(fake.seen.requests("slow-first"), 1);
    // The primary was cancelled.
    assert!(
        eventually(Duration::from_secs(5), || fake
            .seen
            .cancelled
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    let metrics = metrics_of(&server).await;
    assert!(
        metrics.contains("sluice_hedges_total{model=\"hedged\",won=\"hedge\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_silent_upstream_goes_to_the_fallback_at_once_not_retried() {
    let fake = fake_flaky::start().await;
    let server = server_with(&[
        route(
            &fake,
            "flaky",
            "openai",
            "silent",
            "fallbacks = [\"backup\"]\nretries = 3",
        )
        .replace("retries = 0\n", ""),
        route(&fake, "backup", "openai", "ok", ""),
    ])
    .await;
    let got = native(&server, "flaky").await;
    assert_eq!(got.token_text(), ANSWER, "{}", got.text);
    assert_eq!(got.terminal_json()["model"], "backup");
    assert_eq!(fake.seen.requests("silent"), 1, "not retried");
}

#[tokio::test]
async fn a_content_refusal_reaches_the_client_and_a_context_length_falls_back() {
    let fake = fake_flaky::start().await;
    let server = server_with(&[
        route(
            &fake,
            "refusing",
            "openai",
            "content-filter",
            "fallbacks = [\"backup\"]",
        ),
        route(
            &fake,
            "short",
            "openai",
            "context-length",
            "fallbacks = [\"backup\"]",
        ),
        route(&fake, "backup", "openai", "ok", ""),
    ])
    .await;
    let refused = native(&server, "refusing").await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert_eq!(
        error_of(&refused)["type"],
        "content_policy_violation",
        "{}",
        refused.text
    );
    assert!(refused.text.contains("content management policy"));
    let chat = post_to(
        &server,
        "/v1/chat/completions",
        json!({"model": "refusing", "stream": true, "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    assert_eq!(chat.status, 400, "{}", chat.text);
    assert_eq!(fake.seen.requests("ok"), 0, "the fallback was not asked");

    let short = native(&server, "short").await;
    assert_eq!(short.status, 200);
    assert_eq!(short.token_text(), ANSWER);
    assert_eq!(short.terminal_json()["model"], "backup");
}

#[tokio::test]
async fn the_mock_continues_its_own_answer_after_a_stall_or_a_failure() {
    let server = spawn(config(
        "[timeouts]\nidle_ms = 300\n[[models]]\nname = \"mock\"\nprovider = \"mock\"\n\
         ttft_ms = 0\ntoken_delay_ms = 0\nmidstream = \"continue\"\n",
    ))
    .await;
    let prompt = "Tell me about rivers";
    let whole = post_json(&server, json!({"prompt": prompt, "mock": {"tokens": 12}})).await;
    assert_eq!(whole.tokens().len(), 12);
    for knobs in [
        json!({"tokens": 12, "fault": "stall", "fault_after": 4, "fault_ms": 5000}),
        json!({"tokens": 12, "fail_after": 4}),
    ] {
        let got = post_json(&server, json!({"prompt": prompt, "mock": knobs})).await;
        assert_eq!(
            got.token_text(),
            whole.token_text(),
            "{knobs}: {}",
            got.text
        );
        assert_eq!(got.terminal().event, "done", "{knobs}");
        let seams = seams(&got);
        assert_eq!(seams.len(), 1, "{knobs}");
        assert_eq!(seams[0]["after_tokens"], 4, "{knobs}");
    }
}

async fn metrics_of(server: &Server) -> String {
    let response = client().get(server.url("/metrics")).send().await.unwrap();
    response.text().await.unwrap()
}
