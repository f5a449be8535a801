//! Providers `anthropic` and `ollama` against fakes that speak their
//! documented wire formats, through both front doors; and retries and
//! fallbacks before the first token, never after.

use std::time::{Duration, Instant};

use crate::common::{fake_anthropic, fake_ollama, fake_openai, *};
use serde_json::{json, Value};

struct Upstreams {
    anthropic: fake_anthropic::Fake,
    ollama: fake_ollama::Fake,
    server: Server,
}

/// One sluice model per (provider, behaviour), plus `extra` config.
async fn setup(models: &[(&str, &str, &str, &str)], extra: &str) -> Upstreams {
    let anthropic = fake_anthropic::start().await;
    let ollama = fake_ollama::start().await;
    let mut toml = format!("{extra}\n[[models]]\nname = \"mock\"\nprovider = \"mock\"\nttft_ms = 0\ntoken_delay_ms = 0\n");
    for (name, provider, upstream_model, more) in models {
        let (base, key) = match *provider {
            "anthropic" => (&anthropic.base_url, "api_key_env = \"ANTHROPIC_KEY\"\n"),
            _ => (&ollama.base_url, ""),
        };
        toml.push_str(&format!(
            "[[models]]\nname = \"{name}\"\nprovider = \"{provider}\"\nbase_url = \"{base}\"\nupstream_model = \"{upstream_model}\"\n{key}{more}\n"
        ));
    }
    let server = spawn(config_with_env(
        &toml,
        &[("ANTHROPIC_KEY", fake_anthropic::KEY)],
    ))
    .await;
    Upstreams {
        anthropic,
        ollama,
        server,
    }
}

fn no_retry(
    name: &'static str,
    provider: &'static str,
    upstream: &'static str,
) -> (&'static str, &'static str, &'static str, &'static str) {
    (name, provider, upstream, "retries = 0")
}

fn chat(model: &str) -> Value {
    json!({"model": model, "stream": true, "stream_options": {"include_usage": true},
           "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]})
}

fn chunk_content(got: &Received) -> (String, Vec<Value>) {
    let chunks: Vec<Value> = got
        .events
        .iter()
        .filter(|e| e.data != "[DONE]")
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect();
    let text = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    (text, chunks)
}

fn assert_no_secret(got: &Received) {
    assert!(!got.text.contains("SECRET"), "a key leaked: {}", got.text);
}

#[tokio::test]
async fn anthropic_streams_through_the_native_door_with_its_usage() {
    let up = setup(&[no_retry("claude", "anthropic", "ok")], "").await;
    let got = post_json(
        &up.server,
        json!({"model": "claude", "prompt": "Hi", "system": "Be brief."}),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.tokens(), fake_anthropic::TEXT);
    let done = got.terminal_json();
    assert_eq!(done["finish_reason"], "stop");
    assert_eq!(
        done["usage"],
        json!({"prompt_tokens": 25, "completion_tokens": 15, "total_tokens": 40})
    );
    assert_eq!(done["model"], "claude");
    let sent = up.anthropic.seen.last_body.lock().unwrap().clone().unwrap();
    assert_eq!(
        sent["system"], "Be brief.",
        "the system prompt goes top-level"
    );
    assert_eq!(sent["messages"], json!([{"role": "user", "content": "Hi"}]));
    assert_eq!(
        sent["max_tokens"], 4096,
        "a default, since Anthropic requires one"
    );
    assert_eq!(sent["stream"], true);
    let headers = up
        .anthropic
        .seen
        .last_headers
        .lock()
        .unwrap()
        .clone()
        .unwrap();
    assert_eq!(headers["x-api-key"], fake_anthropic::KEY);
    assert_eq!(headers["anthropic-version"], "2023-06-01");
}

#[tokio::test]
async fn anthropic_streams_through_the_openai_door_with_stop_reasons_mapped() {
    let up = setup(
        &[
            no_retry("claude", "anthropic", "ok"),
            no_retry("claude-short", "anthropic", "max-tokens"),
            no_retry("claude-tool", "anthropic", "tool"),
        ],
        "",
    )
    .await;
    let got = post_to(&up.server, "/v1/chat/completions", chat("claude")).await;
    let (text, chunks) = chunk_content(&got);
    assert_eq!(text, fake_anthropic::TEXT.concat());
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "stop"
    );
    assert_eq!(chunks.last().unwrap()["usage"]["prompt_tokens"], 25);

    let got = post_to(&up.server, "/v1/chat/completions", chat("claude-short")).await;
    let (_, chunks) = chunk_content(&got);
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "length",
        "max_tokens -> length"
    );

    let got = post_to(&up.server, "/v1/chat/completions", chat("claude-tool")).await;
    let (_, chunks) = chunk_content(&got);
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "tool_calls",
        "tool_use -> tool_calls"
    );
    let calls: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["delta"]["tool_calls"])
        .filter(|c| !c.is_null())
        .collect();
    assert_eq!(
        *calls[0],
        json!([{"index": 0, "id": "toolu_01", "type": "function", "function": {"name": "get_weather", "arguments": ""}}])
    );
    let arguments: String = calls[1..]
        .iter()
        .map(|c| c[0]["function"]["arguments"].as_str().unwrap())
        .collect();
    assert_eq!(arguments, "{\"city\": \"Oslo\"}");
    // The native door cannot carry tool calls: it skips them and still finishes.
    let got = post_json(
        &up.server,
        json!({"model": "claude-tool", "prompt": "weather?"}),
    )
    .await;
    assert_eq!(got.terminal_json()["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn an_anthropic_error_event_mid_stream_is_an_error_frame_and_not_retried() {
    let up = setup(&[("claude", "anthropic", "overloaded", "retries = 3")], "").await;
    let got = post_json(&up.server, json!({"model": "claude", "prompt": "Hi"})).await;
    assert_eq!(got.tokens(), fake_anthropic::TEXT[..2]);
    assert_eq!(got.terminal().event, "error");
    let error = got.terminal_json();
    assert_eq!(error["error"]["type"], "upstream_error");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("overloaded_error"),
        "{error}"
    );
    assert_no_secret(&got);
    assert_eq!(
        up.anthropic.seen.requests_for("overloaded"),
        1,
        "nothing is retried after the first token"
    );
}

#[tokio::test]
async fn ollama_streams_ndjson_through_both_doors() {
    let up = setup(
        &[
            no_retry("llama", "ollama", "ok"),
            no_retry("llama-short", "ollama", "length"),
        ],
        "",
    )
    .await;
    let got = post_json(&up.server, json!({"model": "llama", "prompt": "Why is the sky blue?", "max_tokens": 50, "temperature": 0.2})).await;
    assert_eq!(got.tokens(), fake_ollama::TEXT);
    let done = got.terminal_json();
    assert_eq!(
        done["usage"],
        json!({"prompt_tokens": 26, "completion_tokens": 5, "total_tokens": 31})
    );
    assert_eq!(done["finish_reason"], "stop");
    let sent = up.ollama.seen.last_body.lock().unwrap().clone().unwrap();
    assert_eq!(sent["options"]["num_predict"], 50);
    assert_eq!(sent["options"]["temperature"], 0.2);
    assert_eq!(sent["stream"], true);
    assert_eq!(
        sent["messages"],
        json!([{"role": "user", "content": "Why is the sky blue?"}])
    );

    let got = post_to(&up.server, "/v1/chat/completions", chat("llama-short")).await;
    let (text, chunks) = chunk_content(&got);
    assert_eq!(text, fake_ollama::TEXT.concat());
    assert_eq!(
        chunks[chunks.len() - 2]["choices"][0]["finish_reason"],
        "length"
    );
    assert_eq!(chunks.last().unwrap()["usage"]["completion_tokens"], 5);
}

#[tokio::test]
async fn ollama_errors_become_502s_and_error_frames() {
    let up = setup(
        &[
            no_retry("llama-err", "ollama", "error-line"),
            no_retry("llama-missing", "ollama", "not-found"),
        ],
        "",
    )
    .await;
    let got = post_json(&up.server, json!({"model": "llama-err", "prompt": "Hi"})).await;
    assert_eq!(got.tokens().len(), 2);
    assert_eq!(got.terminal().event, "error");
    assert!(got.terminal_json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("error was encountered"));
    let got = post_json(
        &up.server,
        json!({"model": "llama-missing", "prompt": "Hi"}),
    )
    .await;
    assert_eq!(got.status, 502);
    assert!(
        got.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not found, try pulling it"),
        "{}",
        got.text
    );
}

#[tokio::test]
async fn a_retry_that_succeeds_is_invisible_to_the_client() {
    let up = setup(
        &[
            ("claude", "anthropic", "once-529", "retries = 1"),
            ("llama", "ollama", "once-503", "retries = 1"),
        ],
        "",
    )
    .await;
    for (model, fake_model) in [("claude", "once-529"), ("llama", "once-503")] {
        let got = post_json(&up.server, json!({"model": model, "prompt": "Hi"})).await;
        assert_eq!(got.status, 200, "{model}: {}", got.text);
        assert_eq!(got.terminal().event, "done");
        assert_eq!(got.terminal_json()["model"], model);
        let requests = if model == "claude" {
            up.anthropic.seen.requests_for(fake_model)
        } else {
            up.ollama.seen.requests_for(fake_model)
        };
        assert_eq!(requests, 2, "{model}: one failure, one retry");
    }
}

#[tokio::test]
async fn a_429_retry_after_is_honoured() {
    let up = setup(&[("claude", "anthropic", "once-429", "retries = 2")], "").await;
    let asked = Instant::now();
    let got = post_json(&up.server, json!({"model": "claude", "prompt": "Hi"})).await;
    assert_eq!(got.terminal().event, "done", "{}", got.text);
    assert!(
        asked.elapsed() >= Duration::from_millis(950),
        "waited the upstream's Retry-After: 1 ({:?})",
        asked.elapsed()
    );
    assert_eq!(up.anthropic.seen.requests_for("once-429"), 2);
}

#[tokio::test]
async fn retries_run_out_into_a_502_with_the_upstreams_message() {
    let up = setup(&[("claude", "anthropic", "status-500", "retries = 2")], "").await;
    let got = post_json(&up.server, json!({"model": "claude", "prompt": "Hi"})).await;
    assert_eq!(got.status, 502);
    assert!(
        got.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("api_error"),
        "{}",
        got.text
    );
    assert_no_secret(&got);
    assert_eq!(
        up.anthropic.seen.requests_for("status-500"),
        3,
        "the first try and two retries"
    );
}

#[tokio::test]
async fn a_fallback_chain_ends_on_the_mock_and_says_who_served() {
    let up = setup(
        &[
            (
                "claude",
                "anthropic",
                "status-500",
                "retries = 1\nfallbacks = [\"llama\", \"mock\"]",
            ),
            ("llama", "ollama", "status-500", "retries = 0"),
        ],
        "",
    )
    .await;
    let got = post_json(
        &up.server,
        json!({"model": "claude", "prompt": "Hi", "mock": {"tokens": 3}}),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.headers["x-sluice-model"], "mock");
    assert_eq!(
        got.terminal_json()["model"],
        "mock",
        "done names the model that served"
    );
    assert_eq!(got.tokens().len(), 3);
    assert_eq!(up.anthropic.seen.requests_for("status-500"), 2);
    assert_eq!(up.ollama.seen.requests_for("status-500"), 1);
    // The OpenAI door reports the serving model in every chunk.
    let mut body = chat("claude");
    body["mock"] = json!({"tokens": 2});
    let got = post_to(&up.server, "/v1/chat/completions", body).await;
    let (_, chunks) = chunk_content(&got);
    assert!(chunks.iter().all(|c| c["model"] == "mock"), "{}", got.text);
    assert_eq!(got.headers["x-sluice-model"], "mock");
}

#[tokio::test]
async fn every_provider_falls_back_to_the_mock_and_every_fault_ends_cleanly() {
    let fake_openai = fake_openai::start().await;
    let up = setup(
        &[
            ("claude", "anthropic", "status-429", "retries = 0\nfallbacks = [\"mock\"]"),
            ("llama", "ollama", "status-500", "retries = 0\nfallbacks = [\"mock\"]"),
            ("claude-mid", "anthropic", "overloaded", "fallbacks = [\"mock\"]"),
        ],
        &format!(
            "[[models]]\nname = \"gpt\"\nprovider = \"openai\"\nbase_url = \"{}\"\nupstream_model = \"status-500\"\nretries = 0\nfallbacks = [\"mock\"]\n",
            fake_openai.base_url
        ),
    )
    .await;
    for model in ["claude", "llama", "gpt"] {
        let got = post_json(
            &up.server,
            json!({"model": model, "prompt": "Hi", "mock": {"tokens": 2}}),
        )
        .await;
        assert_eq!(
            got.terminal_json()["model"],
            "mock",
            "{model}: {}",
            got.text
        );
        let got = post_to(&up.server, "/v1/chat/completions", json!({"model": model, "messages": [{"role": "user", "content": "Hi"}], "mock": {"tokens": 2}})).await;
        assert_eq!(got.json()["model"], "mock", "{model}: {}", got.text);
    }
    // Past the first token there is no fallback: an error frame, from the model that started.
    let got = post_json(&up.server, json!({"model": "claude-mid", "prompt": "Hi"})).await;
    assert_eq!(got.headers["x-sluice-model"], "claude-mid");
    assert_eq!(got.terminal().event, "error");
}

#[tokio::test]
async fn a_client_leaving_an_anthropic_stream_closes_the_upstream_connection() {
    let up = setup(&[no_retry("claude", "anthropic", "drip")], "").await;
    let mut response = client()
        .post(up.server.url("/v1/stream"))
        .json(&json!({"model": "claude", "prompt": "Hi"}))
        .send()
        .await
        .unwrap();
    let first = response.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("token"));
    drop(response);
    let seen = up.anthropic.seen.clone();
    assert!(
        eventually(Duration::from_secs(2), || seen
            .cancelled
            .load(std::sync::atomic::Ordering::SeqCst)
            == 1)
        .await,
        "the fake Anthropic saw the hang-up"
    );
}
