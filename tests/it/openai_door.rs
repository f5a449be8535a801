//! The OpenAI-compatible front door, rule by rule: the chunk shape strict
//! clients depend on, non-streaming answers, legacy completions, models,
//! errors in OpenAI's shape, knobs in the model name, and translation of an
//! OpenAI-compatible upstream (tool calls and pass-through fields included).

use std::time::Duration;

use crate::common::fake_openai::{self, FakeOpenAi, TOKENS, TOOL_ARGUMENTS, UPSTREAM_KEY};
use crate::common::*;
use serde_json::{json, Value};

/// The `data:` payloads of a stream, `[DONE]` included, as JSON where they are.
fn payloads(got: &Received) -> Vec<String> {
    got.events.iter().map(|e| e.data.clone()).collect()
}

fn chunks(got: &Received) -> Vec<Value> {
    payloads(got)
        .iter()
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap_or_else(|e| panic!("not JSON ({e}): {d}")))
        .collect()
}

fn chat(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me a joke"}],
        "stream": stream,
    })
}

/// Every rule a strict client relies on, checked on one stream.
fn assert_chat_stream_shape(got: &Received, include_usage: bool) -> Vec<Value> {
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(
        got.headers["content-type"], "text/event-stream",
        "{:?}",
        got.headers
    );
    assert!(!got.cut, "the stream ended cleanly");
    assert!(
        got.events.iter().all(|e| e.event == "message"),
        "no named events"
    );
    let data = payloads(got);
    assert_eq!(
        data.last().map(String::as_str),
        Some("[DONE]"),
        "ends with [DONE]"
    );
    assert_eq!(data.iter().filter(|d| *d == "[DONE]").count(), 1);
    let chunks = chunks(got);
    let (first, id, created, model) = (
        &chunks[0],
        &chunks[0]["id"],
        &chunks[0]["created"],
        &chunks[0]["model"],
    );
    assert!(id.as_str().unwrap().starts_with("chatcmpl-"));
    assert!(created.as_u64().unwrap() > 1_600_000_000);
    for chunk in &chunks {
        assert_eq!(chunk["object"], "chat.completion.chunk");
        assert_eq!(&chunk["id"], id, "one id per stream");
        assert_eq!(&chunk["created"], created, "one created per stream");
        assert_eq!(&chunk["model"], model, "one model per stream");
    }
    assert_eq!(
        first["choices"][0]["delta"]["role"], "assistant",
        "role-only first delta"
    );
    assert_eq!(first["choices"][0]["delta"]["content"], "");
    let (body, usage_chunk) = if include_usage {
        let (last, body) = chunks.split_last().unwrap();
        assert_eq!(last["choices"], json!([]), "usage chunk has no choices");
        let usage = &last["usage"];
        assert_eq!(
            usage["total_tokens"].as_u64().unwrap(),
            usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
        );
        for chunk in body {
            assert!(
                chunk["usage"].is_null() && chunk.get("usage").is_some(),
                "usage: null before the usage chunk"
            );
        }
        (body.to_vec(), Some(last.clone()))
    } else {
        for chunk in &chunks {
            assert!(
                chunk.get("usage").is_none(),
                "no usage without include_usage: {chunk}"
            );
        }
        (chunks.clone(), None)
    };
    let (last, middle) = body.split_last().unwrap();
    assert!(
        last["choices"][0]["finish_reason"].is_string(),
        "the last choice chunk finishes"
    );
    assert_eq!(last["choices"][0]["delta"], json!({}));
    for chunk in middle {
        let choice = &chunk["choices"][0];
        assert!(
            choice.get("finish_reason").is_some() && choice["finish_reason"].is_null(),
            "finish_reason null until the last: {chunk}"
        );
        assert_eq!(choice["index"], 0);
    }
    if let Some(usage) = usage_chunk {
        let content_deltas = middle[1..]
            .iter()
            .filter(|c| c["choices"][0]["delta"]["content"].is_string())
            .count();
        assert_eq!(
            usage["usage"]["completion_tokens"].as_u64().unwrap() as usize,
            content_deltas,
            "one content delta per token"
        );
    }
    chunks
}

fn content(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

#[tokio::test]
async fn a_mock_chat_stream_keeps_every_shape_rule_with_usage() {
    let server = spawn(fast_mock_config()).await;
    let mut body = chat("mock", true);
    body["stream_options"] = json!({"include_usage": true});
    body["mock"] = json!({"tokens": 12});
    let got = post_to(&server, "/v1/chat/completions", body).await;
    let chunks = assert_chat_stream_shape(&got, true);
    let usage = &chunks.last().unwrap()["usage"];
    assert_eq!(usage["completion_tokens"], 12);
    // role chunk + 12 content chunks + finish chunk + usage chunk
    assert_eq!(chunks.len(), 15);
    assert_eq!(chunks[0]["model"], "mock");
    assert!(
        !got.text.contains(": keep-alive"),
        "a fast stream carries no comment"
    );
}

#[tokio::test]
async fn a_mock_chat_stream_without_include_usage_has_no_usage_anywhere() {
    let server = spawn(fast_mock_config()).await;
    let mut body = chat("mock", true);
    body["mock"] = json!({"tokens": 5});
    let got = post_to(&server, "/v1/chat/completions", body).await;
    let chunks = assert_chat_stream_shape(&got, false);
    assert_eq!(chunks.len(), 7);
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "stop"
    );
}

#[tokio::test]
async fn max_tokens_ends_the_stream_with_length() {
    let server = spawn(fast_mock_config()).await;
    for field in ["max_tokens", "max_completion_tokens"] {
        let mut body = chat("mock", true);
        body[field] = json!(4);
        body["stream_options"] = json!({"include_usage": true});
        let got = post_to(&server, "/v1/chat/completions", body).await;
        let chunks = assert_chat_stream_shape(&got, true);
        let finish = &chunks[chunks.len() - 2]["choices"][0]["finish_reason"];
        assert_eq!(finish, "length", "{field}");
        assert!(
            chunks.last().unwrap()["usage"]["completion_tokens"]
                .as_u64()
                .unwrap()
                <= 4
        );
    }
}

#[tokio::test]
async fn non_streaming_gives_one_completion_with_the_same_content_as_the_stream() {
    let server = spawn(fast_mock_config()).await;
    let mut streamed = chat("mock", true);
    streamed["seed"] = json!(42);
    let got = post_to(&server, "/v1/chat/completions", streamed.clone()).await;
    let stream_text = content(&chunks(&got));

    let mut whole = streamed;
    whole["stream"] = json!(false);
    let got = post_to(&server, "/v1/chat/completions", whole).await;
    assert_eq!(got.status, 200);
    assert!(got.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let completion = got.json();
    assert_eq!(completion["object"], "chat.completion");
    assert!(completion["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(completion["model"], "mock");
    let choice = &completion["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], stream_text.as_str());
    assert_eq!(choice["finish_reason"], "stop");
    let usage = &completion["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 0);
    assert!(usage["completion_tokens"].as_u64().unwrap() > 10);
    // `stream` absent means not streaming
    let mut absent = chat("mock", false);
    absent.as_object_mut().unwrap().remove("stream");
    absent["seed"] = json!(42);
    let got = post_to(&server, "/v1/chat/completions", absent).await;
    assert_eq!(
        got.json()["choices"][0]["message"]["content"],
        stream_text.as_str()
    );
}

#[tokio::test]
async fn legacy_completions_stream_and_answer_whole() {
    let server = spawn(fast_mock_config()).await;
    let body = json!({"model": "mock", "prompt": "Once upon a time", "stream": true, "stream_options": {"include_usage": true}, "mock": {"tokens": 6}});
    let got = post_to(&server, "/v1/completions", body).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(payloads(&got).last().unwrap(), "[DONE]");
    let chunks = chunks(&got);
    let id = &chunks[0]["id"];
    assert!(id.as_str().unwrap().starts_with("cmpl-"));
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "text_completion" && &c["id"] == id));
    let (usage, texts) = chunks.split_last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 6);
    let (finish, tokens) = texts.split_last().unwrap();
    assert_eq!(finish["choices"][0]["finish_reason"], "stop");
    assert_eq!(tokens.len(), 6, "one chunk per token");
    assert!(tokens
        .iter()
        .all(|c| c["choices"][0]["finish_reason"].is_null()));
    let streamed: String = tokens
        .iter()
        .map(|c| c["choices"][0]["text"].as_str().unwrap())
        .collect();

    let body = json!({"model": "mock", "prompt": ["Once upon a time"], "mock": {"tokens": 6}});
    let whole = post_to(&server, "/v1/completions", body).await.json();
    assert_eq!(whole["object"], "text_completion");
    assert_eq!(whole["choices"][0]["text"], streamed.as_str());
    assert_eq!(whole["usage"]["completion_tokens"], 6);
}

#[tokio::test]
async fn models_lists_every_configured_model() {
    let server = spawn(config(
        "[[models]]\nname = \"fast\"\nprovider = \"mock\"\n[[models]]\nname = \"gpt-4o-mini\"\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:9/v1\"\n",
    ))
    .await;
    let list: Value = client()
        .get(server.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["object"], "list");
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["fast", "gpt-4o-mini", "mock"]);
    assert!(list["data"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["object"] == "model" && m["owned_by"].is_string()));
    let one = client()
        .get(server.url("/v1/models/fast"))
        .send()
        .await
        .unwrap();
    assert_eq!(one.status(), 200);
    assert_eq!(one.json::<Value>().await.unwrap()["id"], "fast");
    let missing = receive(
        client()
            .get(server.url("/v1/models/nope"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.json()["error"]["code"], "model_not_found");
}

/// OpenAI's error shape: all four keys, `param` naming the field.
fn assert_openai_error(got: &Received, status: u16, kind: &str, param: Option<&str>) {
    assert_eq!(got.status, status, "{}", got.text);
    let error = &got.json()["error"];
    for key in ["message", "type", "param", "code"] {
        assert!(error.get(key).is_some(), "error has `{key}`: {error}");
    }
    assert_eq!(error["type"], kind, "{error}");
    assert!(!error["message"].as_str().unwrap().is_empty());
    match param {
        Some(param) => assert_eq!(error["param"], param, "{error}"),
        None => assert!(error["param"].is_null(), "{error}"),
    }
}

#[tokio::test]
async fn bad_requests_are_openai_shaped_errors_naming_the_field() {
    let server = spawn(fast_mock_config()).await;
    let cases = [
        (json!({"model": "mock"}), "messages"),
        (json!({"model": "mock", "messages": []}), "messages"),
        (json!({"model": "mock", "messages": "hi"}), "messages"),
        (
            json!({"model": "mock", "messages": [{"role": "robot", "content": "hi"}]}),
            "messages[0].role",
        ),
        (
            json!({"model": "mock", "messages": [{"role": "user", "content": 7}]}),
            "messages[0].content",
        ),
        (
            json!({"model": "mock", "messages": [{"role": "user", "content": "hi"}], "max_tokens": -1}),
            "max_tokens",
        ),
        (
            json!({"model": "mock", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}),
            "max_tokens",
        ),
        (
            json!({"model": "mock", "messages": [{"role": "user", "content": "hi"}], "temperature": 3}),
            "temperature",
        ),
        (
            json!({"model": "mock", "messages": [{"role": "user", "content": "hi"}], "stream": "yes"}),
            "stream",
        ),
        (
            json!({"model": "mock", "messages": [{"role": "user", "content": "hi"}], "n": 2}),
            "n",
        ),
        (
            json!({"model": "mock", "messages": [{"role": "user", "content": "hi"}], "mock": {"ttft": 5}}),
            "mock.ttft",
        ),
        (
            json!({"model": "mock:warp=9", "messages": [{"role": "user", "content": "hi"}]}),
            "model",
        ),
    ];
    for (body, param) in cases {
        let got = post_to(&server, "/v1/chat/completions", body.clone()).await;
        assert_openai_error(&got, 400, "invalid_request", Some(param));
    }
    let got = post_to(&server, "/v1/completions", json!({"model": "mock"})).await;
    assert_openai_error(&got, 400, "invalid_request", Some("prompt"));
    let raw = client()
        .post(server.url("/v1/chat/completions"))
        .body("{\"model\": ")
        .send()
        .await
        .unwrap();
    assert_openai_error(&receive(raw).await, 400, "invalid_request", Some("body"));
}

#[tokio::test]
async fn an_unknown_model_is_a_404_with_model_not_found() {
    let server = spawn(fast_mock_config()).await;
    let got = post_to(&server, "/v1/chat/completions", chat("gpt-9", true)).await;
    assert_openai_error(&got, 404, "not_found", Some("model"));
    assert_eq!(got.json()["error"]["code"], "model_not_found");
}

#[tokio::test]
async fn a_failure_before_the_first_token_keeps_its_status_and_retry_after() {
    let server = spawn(fast_mock_config()).await;
    let mut body = chat("mock", true);
    body["mock"] = json!({"error_status": 429});
    let got = post_to(&server, "/v1/chat/completions", body).await;
    assert_openai_error(&got, 429, "rate_limited", None);
    assert_eq!(got.json()["error"]["code"], "rate_limit_exceeded");
    assert_eq!(got.headers["retry-after"], "1");
    let mut body = chat("mock", false);
    body["mock"] = json!({"error_status": 503});
    let got = post_to(&server, "/v1/chat/completions", body).await;
    assert_openai_error(&got, 503, "overloaded", None);
}

#[tokio::test]
async fn an_error_mid_stream_is_an_error_data_frame_and_never_a_stop() {
    let server = spawn(fast_mock_config()).await;
    let mut body = chat("mock", true);
    body["mock"] = json!({"fail_after": 3});
    body["stream_options"] = json!({"include_usage": true});
    let got = post_to(&server, "/v1/chat/completions", body).await;
    assert_eq!(got.status, 200);
    assert!(!got.cut);
    let data = payloads(&got);
    assert!(
        !data.contains(&"[DONE]".to_owned()),
        "no [DONE] after a failure"
    );
    let last: Value = serde_json::from_str(data.last().unwrap()).unwrap();
    assert_eq!(last["error"]["type"], "upstream_error", "{last}");
    for key in ["message", "param", "code"] {
        assert!(last["error"].get(key).is_some());
    }
    let chunks = chunks(&got);
    assert!(
        chunks
            .iter()
            .all(|c| c.get("choices").is_none() || c["choices"][0]["finish_reason"].is_null()),
        "no finish_reason on any chunk of a failed stream"
    );
    assert!(!content(&chunks).is_empty());
    // Non-streaming: the failure is the response.
    let mut body = chat("mock", false);
    body["mock"] = json!({"fail_after": 3});
    let got = post_to(&server, "/v1/chat/completions", body).await;
    assert_openai_error(&got, 502, "upstream_error", None);
}

#[tokio::test]
async fn a_dropped_connection_is_cut_without_done() {
    let server = spawn(fast_mock_config()).await;
    let mut body = chat("mock", true);
    body["mock"] = json!({"drop_after": 2});
    let got = post_to(&server, "/v1/chat/completions", body).await;
    assert!(got.cut, "the response was cut");
    assert!(!got.text.contains("[DONE]"));
    assert!(!content(&chunks(&got)).is_empty());
}

#[tokio::test]
async fn knobs_ride_in_the_model_name_and_the_body_wins() {
    let server = spawn(config("")).await; // the default mock: 300 ms to the first token
    let body = json!({"model": "mock:ttft_ms=0,token_delay_ms=0,tokens=4,seed=7", "messages": [{"role": "user", "content": "hi"}]});
    let first = post_to(&server, "/v1/chat/completions", body.clone())
        .await
        .json();
    assert_eq!(first["usage"]["completion_tokens"], 4);
    assert_eq!(first["model"], "mock");
    let again = post_to(&server, "/v1/chat/completions", body.clone())
        .await
        .json();
    assert_eq!(
        first["choices"][0]["message"]["content"], again["choices"][0]["message"]["content"],
        "deterministic"
    );
    let mut other_seed = body.clone();
    other_seed["model"] = json!("mock:ttft_ms=0,token_delay_ms=0,tokens=40,seed=8");
    let mut same_seed = body;
    same_seed["model"] = json!("mock:ttft_ms=0,token_delay_ms=0,tokens=40,seed=7");
    let a = post_to(&server, "/v1/chat/completions", other_seed)
        .await
        .json();
    let b = post_to(&server, "/v1/chat/completions", same_seed.clone())
        .await
        .json();
    assert_ne!(
        a["choices"][0]["message"]["content"], b["choices"][0]["message"]["content"],
        "the seed varies the text"
    );
    same_seed["mock"] = json!({"tokens": 2});
    let c = post_to(&server, "/v1/chat/completions", same_seed)
        .await
        .json();
    assert_eq!(
        c["usage"]["completion_tokens"], 2,
        "a knob in the body beats the model name"
    );
    let echo = json!({"model": "mock:mode=echo,ttft_ms=0,token_delay_ms=0", "messages": [{"role": "user", "content": [{"type": "text", "text": "echo this back"}]}]});
    let echoed = post_to(&server, "/v1/chat/completions", echo).await.json();
    assert_eq!(echoed["choices"][0]["message"]["content"], "echo this back");
}

#[tokio::test]
async fn heartbeats_come_only_after_a_silence() {
    let server = spawn(config("heartbeat_secs = 1\n")).await;
    let mut body = chat("mock", true);
    body["mock"] = json!({"ttft_ms": 1600, "tokens": 2, "token_delay_ms": 0});
    let got = post_to(&server, "/v1/chat/completions", body).await;
    assert_eq!(got.status, 200);
    assert!(got.text.starts_with(": keep-alive\n\n"), "{}", got.text);
    assert_eq!(got.text.matches(": keep-alive").count(), 1);
    assert_chat_stream_shape(&got, false);
}

async fn upstream() -> (FakeOpenAi, Server) {
    let fake = fake_openai::start().await;
    let toml = fake_openai::config_toml(&fake.base_url, "");
    let server = spawn(config_with_env(&toml, &[("FAKE_KEY", UPSTREAM_KEY)])).await;
    (fake, server)
}

#[tokio::test]
async fn an_openai_upstream_is_relayed_in_the_same_shape() {
    let (_fake, server) = upstream().await;
    let mut body = chat("up-ok", true);
    body["stream_options"] = json!({"include_usage": true});
    let got = post_to(&server, "/v1/chat/completions", body).await;
    let chunks = assert_chat_stream_shape(&got, true);
    assert_eq!(content(&chunks), TOKENS.concat());
    assert_eq!(
        chunks[0]["model"], "up-ok",
        "the model the client asked for"
    );
    assert_eq!(
        chunks.last().unwrap()["usage"]["prompt_tokens"],
        11,
        "the upstream's usage"
    );
    assert!(!got.text.contains(UPSTREAM_KEY));
}

#[tokio::test]
async fn uninterpreted_fields_pass_through_to_the_upstream_unchanged() {
    let (fake, server) = upstream().await;
    let tools = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}]);
    let messages = json!([
        {"role": "developer", "content": "Use tools."},
        {"role": "user", "content": [{"type": "text", "text": "Weather?"}, {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]);
    let body = json!({
        "model": "up-ok", "messages": messages, "stream": true,
        "tools": tools, "tool_choice": "auto", "response_format": {"type": "text"},
        "logprobs": false, "user": "user-1234", "n": 1, "max_completion_tokens": 50,
        "parallel_tool_calls": false, "temperature": 0.5,
    });
    let got = post_to(&server, "/v1/chat/completions", body).await;
    assert_eq!(got.status, 200, "{}", got.text);
    let sent = fake.seen.last_body.lock().unwrap().clone().unwrap();
    for key in [
        "tools",
        "tool_choice",
        "response_format",
        "logprobs",
        "user",
        "n",
        "max_completion_tokens",
        "parallel_tool_calls",
    ] {
        assert_eq!(
            sent.get(key),
            body_value(key, &tools).as_ref(),
            "`{key}` passes through: {sent}"
        );
    }
    assert_eq!(
        sent["messages"], messages,
        "messages go upstream exactly as sent"
    );
    assert!(
        sent.get("max_tokens").is_none(),
        "not both max_tokens and max_completion_tokens"
    );
    assert_eq!(sent["temperature"], 0.5);
    assert_eq!(sent["model"], "ok", "the upstream's own model name");
    assert_eq!(sent["stream"], true);
    assert!(sent.get("mock").is_none());
}

fn body_value(key: &str, tools: &Value) -> Option<Value> {
    Some(match key {
        "tools" => tools.clone(),
        "tool_choice" => json!("auto"),
        "response_format" => json!({"type": "text"}),
        "logprobs" => json!(false),
        "user" => json!("user-1234"),
        "n" => json!(1),
        "max_completion_tokens" => json!(50),
        "parallel_tool_calls" => json!(false),
        _ => return None,
    })
}

#[tokio::test]
async fn tool_call_deltas_stream_back_unchanged_and_assemble_when_not_streaming() {
    let (_fake, server) = upstream().await;
    let got = post_to(&server, "/v1/chat/completions", chat("up-tools", true)).await;
    let chunks = assert_chat_stream_shape(&got, false);
    let calls: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["delta"]["tool_calls"])
        .filter(|c| !c.is_null())
        .collect();
    assert_eq!(calls.len(), 1 + TOOL_ARGUMENTS.len());
    assert_eq!(
        *calls[0],
        json!([{"index": 0, "id": "call_abc123", "type": "function", "function": {"name": "get_weather", "arguments": ""}}])
    );
    for (delta, piece) in calls[1..].iter().zip(TOOL_ARGUMENTS) {
        assert_eq!(
            **delta,
            json!([{"index": 0, "function": {"arguments": piece}}])
        );
    }
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );

    let whole = post_to(&server, "/v1/chat/completions", chat("up-tools", false))
        .await
        .json();
    let message = &whole["choices"][0]["message"];
    assert!(message["content"].is_null());
    assert_eq!(
        message["tool_calls"],
        json!([{"id": "call_abc123", "type": "function", "function": {"name": "get_weather", "arguments": TOOL_ARGUMENTS.concat()}}])
    );
    assert_eq!(whole["choices"][0]["finish_reason"], "tool_calls");
}

#[tokio::test]
async fn upstream_errors_keep_openai_shape_and_never_leak_the_key() {
    let (_fake, server) = upstream().await;
    let got = post_to(&server, "/v1/chat/completions", chat("up-status-429", true)).await;
    assert_openai_error(&got, 502, "upstream_error", None);
    assert_eq!(got.headers["retry-after"], "7");
    assert!(!got.text.contains("SECRET"), "{}", got.text);
    let got = post_to(
        &server,
        "/v1/chat/completions",
        chat("up-error-event", true),
    )
    .await;
    assert_eq!(got.status, 200);
    let last: Value = serde_json::from_str(&payloads(&got).last().unwrap().clone()).unwrap();
    assert_eq!(last["error"]["type"], "upstream_error");
    assert!(!got.text.contains("SECRET"), "{}", got.text);
}

#[tokio::test]
async fn a_client_leaving_the_openai_door_cancels_the_upstream() {
    let (fake, server) = upstream().await;
    let response = client()
        .post(server.url("/v1/chat/completions"))
        .json(&chat("up-drip", true))
        .send()
        .await
        .unwrap();
    let mut response = response;
    let first = response.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("chat.completion.chunk"));
    drop(response);
    let seen = fake.seen.clone();
    assert!(
        eventually(Duration::from_secs(2), || seen
            .cancelled
            .load(std::sync::atomic::Ordering::SeqCst)
            == 1)
        .await,
        "the upstream saw the hang-up"
    );
}
