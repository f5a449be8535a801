//! Reasoning and tool calls (contract section 11): upstream reasoning in each
//! provider's shape relayed apart from the answer on every door, a reasoning
//! phase that counts as life for the deadlines, whole deltas relayed by the
//! OpenAI door, and the mock's reasoning and tool calls.

use std::sync::atomic::Ordering;

use crate::common::fake_openai::{self, REASONING, TOKENS};
use crate::common::{fake_anthropic, fake_ollama, *};
use crate::responses_door::named_events;
use serde_json::{json, Value};

struct Upstreams {
    server: Server,
    openai: fake_openai::FakeOpenAi,
}

/// One sluice model per section-11 behaviour of the fakes. The reasoning
/// model keeps the default retry, so a re-sent request would show.
async fn setup() -> Upstreams {
    let openai = fake_openai::start().await;
    let anthropic = fake_anthropic::start().await;
    let ollama = fake_ollama::start().await;
    let mut toml = format!("[timeouts]\nfirst_token_ms = 1500\n{FAST_MOCK}");
    for model in [
        "reasoning",
        "reasoning-alt",
        "mixed",
        "refusal",
        "function-call",
        "logprobs",
    ] {
        let retries = if model == "reasoning" {
            ""
        } else {
            "retries = 0\n"
        };
        toml.push_str(&format!(
            "[[models]]\nname = \"{model}\"\nprovider = \"openai\"\nbase_url = \"{}\"\n{retries}",
            openai.base_url
        ));
    }
    toml.push_str(&format!(
        "[[models]]\nname = \"claude-thinking\"\nprovider = \"anthropic\"\nbase_url = \"{}\"\nupstream_model = \"thinking\"\napi_key_env = \"ANTHROPIC_KEY\"\nretries = 0\n",
        anthropic.base_url
    ));
    toml.push_str(&format!(
        "[[models]]\nname = \"ollama-thinking\"\nprovider = \"ollama\"\nbase_url = \"{}\"\nupstream_model = \"thinking\"\nretries = 0\n",
        ollama.base_url
    ));
    let server = spawn(config_with_env(
        &toml,
        &[("ANTHROPIC_KEY", fake_anthropic::KEY)],
    ))
    .await;
    Upstreams { server, openai }
}

fn chat(model: &str, stream: bool) -> Value {
    json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

/// The OpenAI door's chunks, without `[DONE]`.
fn chunks(got: &Received) -> Vec<Value> {
    got.events
        .iter()
        .filter(|e| e.data != "[DONE]")
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect()
}

fn delta_text(chunks: &[Value], key: &str) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"][key].as_str())
        .collect()
}

/// The native door's reasoning frames' text, and every frame's id in order.
fn native_reasoning(got: &Received) -> String {
    got.events
        .iter()
        .filter(|e| e.event == "reasoning")
        .map(token_of)
        .collect()
}

#[tokio::test]
async fn a_reasoning_phase_longer_than_first_token_ms_is_one_upstream_request() {
    // Finding 1: 2.6 s of reasoning_content with first_token_ms = 1500 was
    // a 504 after two billed requests.
    let up = setup().await;
    let got = post_json(&up.server, json!({"model": "reasoning", "prompt": "hi"})).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.terminal().event, "done", "{}", got.text);
    assert_eq!(up.openai.seen.requests.load(Ordering::SeqCst), 1);
    let thought: String = REASONING.iter().cycle().take(13).copied().collect();
    assert_eq!(native_reasoning(&got), thought);
    assert_eq!(got.token_text(), TOKENS.concat(), "the answer stays apart");
    // Reasoning frames come first and carry ids like tokens.
    let first_token = got
        .events
        .iter()
        .position(|e| e.event == "message")
        .unwrap();
    assert!(got.events[..first_token]
        .iter()
        .all(|e| e.event == "reasoning"));
    let ids: Vec<&str> = got.events.iter().filter_map(|e| e.id.as_deref()).collect();
    assert_eq!(ids.len(), 13 + TOKENS.len() + 1, "{ids:?}");
    assert_eq!(got.terminal_json()["usage"]["reasoning_tokens"], 13);
}

#[tokio::test]
async fn both_reasoning_names_reach_the_openai_door_as_reasoning_content() {
    let up = setup().await;
    for (model, expected) in [
        (
            "reasoning",
            REASONING
                .iter()
                .cycle()
                .take(13)
                .copied()
                .collect::<String>(),
        ),
        ("reasoning-alt", REASONING.concat()),
    ] {
        let got = post_to(&up.server, "/v1/chat/completions", chat(model, true)).await;
        let chunks = chunks(&got);
        assert_eq!(
            delta_text(&chunks, "reasoning_content"),
            expected,
            "{model}"
        );
        assert_eq!(delta_text(&chunks, "content"), TOKENS.concat(), "{model}");
        // Reasoning first, then the answer; never both in one delta.
        let last_reasoning = chunks
            .iter()
            .rposition(|c| c["choices"][0]["delta"]["reasoning_content"].is_string());
        let first_content = chunks.iter().position(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .is_some_and(|t| !t.is_empty())
        });
        assert!(last_reasoning < first_content, "{model}");
        let whole = post_to(&up.server, "/v1/chat/completions", chat(model, false))
            .await
            .json();
        let message = &whole["choices"][0]["message"];
        assert_eq!(message["reasoning_content"], json!(expected), "{model}");
        assert_eq!(message["content"], json!(TOKENS.concat()));
        assert_eq!(
            whole["usage"]["completion_tokens_details"]["reasoning_tokens"],
            13
        );
    }
}

#[tokio::test]
async fn anthropic_thinking_and_ollama_thinking_are_reasoning_on_every_door() {
    let up = setup().await;
    // Finding 22: Ollama's message.thinking was dropped.
    let got = post_json(
        &up.server,
        json!({"model": "ollama-thinking", "prompt": "hi"}),
    )
    .await;
    assert_eq!(native_reasoning(&got), fake_ollama::THINKING.concat());
    assert_eq!(got.token_text(), fake_ollama::TEXT.concat());

    let got = post_to(
        &up.server,
        "/v1/chat/completions",
        chat("claude-thinking", true),
    )
    .await;
    assert_eq!(
        delta_text(&chunks(&got), "reasoning_content"),
        fake_anthropic::THINKING.concat()
    );

    let got = post_to(
        &up.server,
        "/v1/messages",
        json!({"model": "claude-thinking", "max_tokens": 100, "stream": true, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    let events = named_events(&got);
    let block = &events[1].1;
    assert_eq!(block["content_block"]["type"], "thinking");
    let thinking: String = events
        .iter()
        .filter_map(|(_, e)| e["delta"]["thinking"].as_str())
        .collect();
    assert_eq!(thinking, fake_anthropic::THINKING.concat());
    let signature = events
        .iter()
        .find(|(_, e)| e["delta"]["type"] == "signature_delta")
        .unwrap();
    assert_eq!(signature.1["delta"]["signature"], fake_anthropic::SIGNATURE);
    assert_eq!(signature.1["index"], 0);

    let got = post_to(
        &up.server,
        "/v1/responses",
        json!({"model": "ollama-thinking", "stream": true, "input": "hi"}),
    )
    .await;
    let events = named_events(&got);
    let reasoning: String = events
        .iter()
        .filter(|(k, _)| k == "response.reasoning_text.delta")
        .map(|(_, e)| e["delta"].as_str().unwrap())
        .collect();
    assert_eq!(reasoning, fake_ollama::THINKING.concat());
    let output = &events.last().unwrap().1["response"]["output"];
    assert_eq!(output[0]["type"], "reasoning");
    assert_eq!(
        output[1]["content"][0]["text"],
        json!(fake_ollama::TEXT.concat())
    );
}

#[tokio::test]
async fn a_tool_call_in_the_same_delta_as_content_survives() {
    // Finding 2: the content won and the tool call was lost.
    let up = setup().await;
    let got = post_to(&up.server, "/v1/chat/completions", chat("mixed", true)).await;
    let chunks = chunks(&got);
    let both = chunks
        .iter()
        .find(|c| c["choices"][0]["delta"]["tool_calls"].is_array())
        .expect("a chunk with the tool call");
    assert_eq!(both["choices"][0]["delta"]["content"], "Let me check.");
    assert_eq!(
        both["choices"][0]["delta"]["tool_calls"][0]["id"],
        "call_mixed"
    );
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );

    let whole = post_to(&up.server, "/v1/chat/completions", chat("mixed", false))
        .await
        .json();
    let message = &whole["choices"][0]["message"];
    assert_eq!(message["content"], "Let me check.");
    assert_eq!(message["tool_calls"][0]["function"]["name"], "get_weather");
    assert_eq!(
        message["tool_calls"][0]["function"]["arguments"],
        "{\"city\": \"Oslo\"}"
    );

    // The Messages door makes it a text block, then a tool_use block.
    let got = post_to(
        &up.server,
        "/v1/messages",
        json!({"model": "mixed", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .json();
    assert_eq!(
        got["content"][0],
        json!({"type": "text", "text": "Let me check."})
    );
    assert_eq!(got["content"][1]["input"], json!({"city": "Oslo"}));
    assert_eq!(got["stop_reason"], "tool_use");
}

#[tokio::test]
async fn refusals_legacy_function_calls_and_logprobs_are_relayed_not_invented() {
    let up = setup().await;
    let got = post_to(&up.server, "/v1/chat/completions", chat("refusal", true)).await;
    assert_eq!(
        delta_text(&chunks(&got), "refusal"),
        "I can't help with that."
    );
    let whole = post_to(&up.server, "/v1/chat/completions", chat("refusal", false))
        .await
        .json();
    assert_eq!(
        whole["choices"][0]["message"]["refusal"],
        "I can't help with that."
    );

    let got = post_to(
        &up.server,
        "/v1/chat/completions",
        chat("function-call", true),
    )
    .await;
    let calls: Vec<Value> = chunks(&got)
        .iter()
        .filter_map(|c| c["choices"][0]["delta"].get("function_call").cloned())
        .collect();
    assert_eq!(calls.len(), 2);
    let whole = post_to(
        &up.server,
        "/v1/chat/completions",
        chat("function-call", false),
    )
    .await
    .json();
    assert_eq!(
        whole["choices"][0]["message"]["function_call"],
        json!({"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"})
    );
    assert_eq!(whole["choices"][0]["finish_reason"], "function_call");

    let got = post_to(&up.server, "/v1/chat/completions", chat("logprobs", true)).await;
    let with_logprobs: Vec<Value> = chunks(&got)
        .iter()
        .filter(|c| !c["choices"][0]["logprobs"].is_null())
        .map(|c| c["choices"][0]["logprobs"]["content"][0]["token"].clone())
        .collect();
    assert_eq!(with_logprobs, [json!("Hi"), json!("!")]);
    let whole = post_to(&up.server, "/v1/chat/completions", chat("logprobs", false))
        .await
        .json();
    assert_eq!(
        whole["choices"][0]["logprobs"]["content"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // A plain upstream's deltas gain no fields it did not send.
    let got = post_to(
        &up.server,
        "/v1/chat/completions",
        chat("reasoning-alt", true),
    )
    .await;
    for chunk in chunks(&got) {
        let delta = chunk["choices"][0]["delta"].as_object().unwrap().clone();
        let keys: Vec<&str> = delta.keys().map(String::as_str).collect();
        assert!(
            keys.iter()
                .all(|k| ["role", "content", "reasoning_content"].contains(k)),
            "{chunk}"
        );
    }
}

fn weather_schema() -> Value {
    json!({"type": "object",
           "properties": {"city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]},
                          "days": {"type": "integer", "minimum": 1, "maximum": 5}},
           "required": ["city", "unit"], "additionalProperties": false})
}

fn assert_valid(arguments: &Value) {
    let validator = jsonschema::validator_for(&weather_schema()).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(arguments)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{arguments}: {errors:?}");
}

#[tokio::test]
async fn the_mock_calls_a_forced_tool_in_each_doors_format() {
    let server = spawn(fast_mock_config()).await;
    let hi = json!([{"role": "user", "content": "Weather in Oslo?"}]);
    // OpenAI Chat Completions: tool_choice "required".
    let body = json!({"model": "mock", "stream": true, "messages": hi, "tool_choice": "required",
                      "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": weather_schema()}}]});
    let got = post_to(&server, "/v1/chat/completions", body.clone()).await;
    let chunks = chunks(&got);
    let first = chunks
        .iter()
        .find(|c| c["choices"][0]["delta"]["tool_calls"].is_array())
        .unwrap();
    assert_eq!(
        first["choices"][0]["delta"]["tool_calls"][0]["function"]["name"],
        "get_weather"
    );
    let arguments: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"].as_str())
        .collect();
    let arguments: Value = serde_json::from_str(&arguments).unwrap();
    assert_valid(&arguments);
    assert_eq!(
        chunks.last().unwrap()["choices"][0]["finish_reason"],
        "tool_calls"
    );
    let mut whole = body.clone();
    whole["stream"] = json!(false);
    let whole = post_to(&server, "/v1/chat/completions", whole).await.json();
    let call = &whole["choices"][0]["message"]["tool_calls"][0];
    // Deterministic: the same request, the same arguments.
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        arguments
    );
    assert_eq!(whole["choices"][0]["message"]["content"], Value::Null);

    // Responses: a function_call item.
    let got = post_to(
        &server,
        "/v1/responses",
        json!({"model": "mock", "stream": true, "input": "Weather in Oslo?",
               "tool_choice": {"type": "function", "name": "get_weather"},
               "tools": [{"type": "function", "name": "get_weather", "parameters": weather_schema()}]}),
    )
    .await;
    let events = named_events(&got);
    let (kind, last) = events.last().unwrap();
    assert_eq!(kind, "response.completed");
    let item = &last["response"]["output"][0];
    assert_eq!(item["type"], "function_call");
    assert_eq!(item["name"], "get_weather");
    assert_valid(&serde_json::from_str(item["arguments"].as_str().unwrap()).unwrap());
    assert!(events
        .iter()
        .any(|(k, _)| k == "response.function_call_arguments.delta"));

    // Messages: a tool_use block with input_json_delta pieces.
    let got = post_to(
        &server,
        "/v1/messages",
        json!({"model": "mock", "max_tokens": 200, "stream": true, "messages": hi,
               "tool_choice": {"type": "any"},
               "tools": [{"name": "get_weather", "input_schema": weather_schema()}]}),
    )
    .await;
    let events = named_events(&got);
    assert_eq!(events[1].1["content_block"]["type"], "tool_use");
    assert_eq!(events[1].1["content_block"]["input"], json!({}));
    let input: String = events
        .iter()
        .filter_map(|(_, e)| e["delta"]["partial_json"].as_str())
        .collect();
    assert_valid(&serde_json::from_str(&input).unwrap());
    let delta = events.iter().find(|(k, _)| k == "message_delta").unwrap();
    assert_eq!(delta.1["delta"]["stop_reason"], "tool_use");
}

#[tokio::test]
async fn the_mock_reasons_on_every_door_when_asked() {
    let server = spawn(fast_mock_config()).await;
    let model = "mock:reasoning_tokens=6,tokens=3";
    let got = post_json(&server, json!({"model": model, "prompt": "hi"})).await;
    assert_eq!(
        got.events.iter().filter(|e| e.event == "reasoning").count(),
        6,
        "{}",
        got.text
    );
    assert_eq!(got.tokens().len(), 3);
    let usage = &got.terminal_json()["usage"];
    assert_eq!(
        (
            usage["completion_tokens"].clone(),
            usage["reasoning_tokens"].clone()
        ),
        (json!(9), json!(6))
    );

    let got = post_to(&server, "/v1/chat/completions", chat(model, true)).await;
    assert!(!delta_text(&chunks(&got), "reasoning_content").is_empty());

    let got = post_to(
        &server,
        "/v1/responses",
        json!({"model": model, "input": "hi"}),
    )
    .await
    .json();
    assert_eq!(got["output"][0]["type"], "reasoning");
    assert_eq!(got["output"][1]["type"], "message");
    assert_eq!(got["usage"]["output_tokens_details"]["reasoning_tokens"], 6);

    let got = post_to(
        &server,
        "/v1/messages",
        json!({"model": model, "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await
    .json();
    assert_eq!(got["content"][0]["type"], "thinking");
    assert_eq!(got["content"][1]["type"], "text");
}

#[tokio::test]
async fn a_tool_the_request_does_not_offer_is_a_400_naming_the_field() {
    let server = spawn(fast_mock_config()).await;
    let got = post_to(
        &server,
        "/v1/chat/completions",
        json!({"model": "mock", "messages": [{"role": "user", "content": "hi"}], "mock": {"tool_call": "nope"}}),
    )
    .await;
    assert_eq!(got.status, 400);
    assert_eq!(error_of(&got)["param"], "mock.tool_call");
    let got = post_to(
        &server,
        "/v1/chat/completions",
        json!({"model": "mock", "messages": [{"role": "user", "content": "hi"}],
               "tools": [{"type": "function", "function": {"name": "a"}}],
               "tool_choice": {"type": "function", "function": {"name": "b"}}}),
    )
    .await;
    assert_eq!(got.status, 400);
    assert_eq!(error_of(&got)["param"], "tool_choice");
}

#[tokio::test]
async fn a_resumed_generation_replays_its_reasoning() {
    let server = spawn(fast_mock_config()).await;
    let created = post_to(
        &server,
        "/v1/generations",
        json!({"prompt": "hi", "mock": {"reasoning_tokens": 4, "tokens": 2}}),
    )
    .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let id = created.json()["id"].as_str().unwrap().to_owned();
    let got = send(client().get(server.url(&format!("/v1/generations/{id}/events")))).await;
    assert_eq!(
        got.events.iter().filter(|e| e.event == "reasoning").count(),
        4,
        "{}",
        got.text
    );
    assert_eq!(got.tokens().len(), 2);
}

#[tokio::test]
async fn tools_reach_each_upstream_in_its_own_shape() {
    let up = crate::responses_door::every_provider().await;
    let schema = weather_schema();
    // The Messages door in front of an OpenAI-compatible upstream.
    post_to(
        &up.server,
        "/v1/messages",
        json!({"model": "gpt", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}],
               "tools": [{"name": "get_weather", "description": "Weather", "input_schema": schema}],
               "tool_choice": {"type": "tool", "name": "get_weather"}}),
    )
    .await;
    let sent = up.openai.seen.last_body.lock().unwrap().clone().unwrap();
    assert_eq!(
        sent["tools"],
        json!([{"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": schema}}])
    );
    assert_eq!(
        sent["tool_choice"],
        json!({"type": "function", "function": {"name": "get_weather"}})
    );

    // The Responses door, and the OpenAI door, in front of Anthropic.
    post_to(
        &up.server,
        "/v1/responses",
        json!({"model": "claude", "input": "hi", "tool_choice": "required",
               "tools": [{"type": "function", "name": "get_weather", "parameters": schema}]}),
    )
    .await;
    let sent = up.anthropic.seen.last_body.lock().unwrap().clone().unwrap();
    assert_eq!(
        sent["tools"],
        json!([{"name": "get_weather", "input_schema": schema}])
    );
    assert_eq!(sent["tool_choice"], json!({"type": "any"}));
    post_to(
        &up.server,
        "/v1/chat/completions",
        json!({"model": "claude", "messages": [{"role": "user", "content": "hi"}],
               "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": schema}}]}),
    )
    .await;
    let sent = up.anthropic.seen.last_body.lock().unwrap().clone().unwrap();
    assert_eq!(sent["tools"][0]["name"], "get_weather");
    assert!(
        sent.get("tool_choice").is_none(),
        "auto is Anthropic's default"
    );
}
