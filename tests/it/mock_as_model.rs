//! Section 13: the mock behaves like a model. Any model name: the embedded
//! default answers every name under the name asked for, a `:` starts knobs
//! only before `knob=value` pairs, and a config's `[[models]] name` may be a
//! glob.

use serde_json::{json, Value};

use crate::common::binary::Sluice;
use crate::common::*;

async fn chat(on: &Sluice, model: &str) -> reqwest::Response {
    client()
        .post(on.url("/v1/chat/completions"))
        .json(&json!({
            "model": model, "stream": true,
            "messages": [{"role": "user", "content": "hi"}],
            "mock": {"tokens": 3, "ttft_ms": 0, "token_delay_ms": 0}
        }))
        .send()
        .await
        .unwrap()
}

/// The `model` of every chunk of a Chat Completions stream.
async fn chunk_models(response: reqwest::Response) -> Vec<String> {
    let got = receive(response).await;
    got.events
        .iter()
        .filter(|e| e.data != "[DONE]")
        .map(|e| {
            let chunk: Value = serde_json::from_str(&e.data).unwrap();
            chunk["model"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn with_no_config_the_mock_answers_any_model_name_under_that_name() {
    let sluice = Sluice::embedded();
    for name in ["gpt-4o", "qwen2.5:7b", "o3-mini"] {
        let response = chat(&sluice, name).await;
        assert_eq!(response.status(), 200, "{name}");
        let models = chunk_models(response).await;
        assert!(!models.is_empty());
        assert!(models.iter().all(|m| m == name), "{name}: {models:?}");
    }
    // The Messages door, with a name an Anthropic app hard-codes.
    let message: Value = client()
        .post(sluice.url("/v1/messages"))
        .json(&json!({
            "model": "claude-sonnet-4-5", "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}]
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(message["model"], "claude-sonnet-4-5", "{message}");
    assert_eq!(message["type"], "message");
    // Knobs in the name still work, on the mock and on any name.
    for name in ["mock:tokens=2", "gpt-4o:tokens=2"] {
        let got = receive(
            client()
                .post(sluice.url("/v1/stream"))
                .json(&json!({"model": name, "prompt": "hi"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(got.status, 200, "{name}: {}", got.text);
        assert_eq!(got.tokens().len(), 2, "{name}: {}", got.text);
    }
    // The list still names the mock alone; a made-up name is no metric label.
    let models: Value = client()
        .get(sluice.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["mock"]);
    let metrics = client()
        .get(sluice.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains("model=\"o3-mini\""), "{metrics}");
    assert!(metrics.contains("model=\"*\""));
}

#[tokio::test]
async fn config_names_may_be_globs_tried_after_the_exact_names_in_file_order() {
    let sluice = Sluice::start(
        "[[models]]\nname = \"claude-*\"\nprovider = \"mock\"\ntext = \"from claude star\"\n\
         [[models]]\nname = \"claude-3-haiku\"\nprovider = \"mock\"\ntext = \"exact haiku\"\n\
         [[models]]\nname = \"*\"\nprovider = \"mock\"\ntext = \"from star\"\n",
        &[],
    );
    let answer = async |model: &str| {
        let got = receive(
            client()
                .post(sluice.url("/v1/stream"))
                .json(&json!({"model": model, "prompt": "hi"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(got.status, 200, "{model}: {}", got.text);
        let done: Value = serde_json::from_str(&got.terminal().data).unwrap();
        (got.token_text(), done["model"].as_str().unwrap().to_owned())
    };
    assert_eq!(
        answer("claude-opus-4").await,
        ("from claude star".into(), "claude-opus-4".into())
    );
    assert_eq!(
        answer("claude-3-haiku").await,
        ("exact haiku".into(), "claude-3-haiku".into())
    );
    assert_eq!(
        answer("gpt-4o").await,
        ("from star".into(), "gpt-4o".into())
    );
}

#[tokio::test]
async fn without_a_pattern_an_unknown_name_is_still_a_404() {
    let server = spawn(config_with_env(
        "[[models]]\nname = \"claude-*\"\nprovider = \"mock\"\n",
        &[],
    ))
    .await;
    let response = client()
        .post(server.url("/v1/chat/completions"))
        .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_found", "{body}");
    assert_eq!(body["error"]["param"], "model");
}

#[test]
fn a_bad_glob_is_a_config_error_naming_the_model() {
    let err = sluice::config::Config::parse(
        "[[models]]\nname = \"gpt-[\"\nprovider = \"mock\"\n",
        |_| None,
    )
    .unwrap_err();
    assert_eq!(err.key, "models[0].name", "{err}");
    assert!(err.to_string().contains("glob"), "{err}");
}

/// A schema with what Pydantic and zod write: `$defs` and `$ref`, `anyOf`
/// with null, enums, arrays of objects, formats, bounds.
fn awkward_schema() -> Value {
    json!({
        "type": "object",
        "$defs": {"Address": {"type": "object", "additionalProperties": false,
            "properties": {"city": {"type": "string"}, "zip": {"type": "string", "maxLength": 5}},
            "required": ["city", "zip"]}},
        "properties": {
            "name": {"type": "string", "minLength": 2},
            "age": {"type": "integer", "minimum": 0, "maximum": 130},
            "mood": {"enum": ["happy", "grumpy"]},
            "email": {"type": "string", "format": "email"},
            "nickname": {"anyOf": [{"type": "string"}, {"type": "null"}]},
            "home": {"$ref": "#/$defs/Address"},
            "pets": {"type": "array", "minItems": 1, "maxItems": 3,
                "items": {"type": "object", "properties": {"kind": {"type": "string"}}, "required": ["kind"]}},
            "score": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}
        },
        "required": ["name", "age", "mood", "email", "nickname", "home", "pets", "score"],
        "additionalProperties": false
    })
}

#[tokio::test]
async fn structured_output_is_valid_against_its_schema_on_every_door_over_many_seeds() {
    let server = spawn(config(FAST_MOCK)).await;
    let schema = awkward_schema();
    let validator = jsonschema::validator_for(&schema).unwrap();
    for seed in 0..40u64 {
        let model = format!("mock:seed={seed}");
        let chat: Value = client()
            .post(server.url("/v1/chat/completions"))
            .json(
                &json!({"model": model, "messages": [{"role": "user", "content": "a person"}],
                "response_format": {"type": "json_schema",
                    "json_schema": {"name": "person", "schema": schema, "strict": true}}}),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let responses: Value = client()
            .post(server.url("/v1/responses"))
            .json(&json!({"model": model, "input": "a person",
                "text": {"format": {"type": "json_schema", "name": "person", "schema": schema}}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let messages: Value = client()
            .post(server.url("/v1/messages"))
            .json(&json!({"model": model, "max_tokens": 4096,
                "messages": [{"role": "user", "content": "a person"}],
                "output_config": {"format": {"type": "json_schema", "schema": schema}}}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let texts = [
            chat["choices"][0]["message"]["content"]
                .as_str()
                .map(str::to_owned),
            responses["output"][0]["content"][0]["text"]
                .as_str()
                .map(str::to_owned),
            messages["content"][0]["text"].as_str().map(str::to_owned),
        ];
        for (door, text) in ["chat", "responses", "messages"].iter().zip(texts) {
            let text = text.unwrap_or_else(|| panic!("{door}: no text"));
            let answer: Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{door} seed {seed}: not JSON ({e}): {text}"));
            let errors: Vec<String> = validator
                .iter_errors(&answer)
                .map(|e| e.to_string())
                .collect();
            assert!(
                errors.is_empty(),
                "{door} seed {seed}: {errors:?} in {answer}"
            );
        }
    }
    // `json_object`: an object, streamed in several pieces.
    let json_object: Value = client()
        .post(server.url("/v1/chat/completions"))
        .json(
            &json!({"model": "mock", "messages": [{"role": "user", "content": "hi"}],
            "stream": true, "response_format": {"type": "json_object"}}),
        )
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|text| {
            let pieces: Vec<String> = text
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .filter(|d| *d != "[DONE]")
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .filter_map(|c| {
                    c["choices"][0]["delta"]["content"]
                        .as_str()
                        .map(str::to_owned)
                })
                .collect();
            assert!(pieces.len() > 1, "{pieces:?}");
            serde_json::from_str(&pieces.concat()).unwrap()
        })
        .unwrap();
    assert!(json_object.is_object(), "{json_object}");
}

#[tokio::test]
async fn a_bad_format_is_a_400_in_the_door_s_own_shape_naming_the_field() {
    let server = spawn(config(FAST_MOCK)).await;
    let chat = client()
        .post(server.url("/v1/chat/completions"))
        .json(
            &json!({"model": "mock", "messages": [{"role": "user", "content": "hi"}],
            "response_format": "json"}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(chat.status(), 400);
    let body: Value = chat.json().await.unwrap();
    assert_eq!(body["error"]["param"], "response_format", "{body}");
    let responses = client()
        .post(server.url("/v1/responses"))
        .json(&json!({"model": "mock", "input": "hi",
            "text": {"format": {"type": "json_schema", "name": "x", "schema": {"type": 7}}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(responses.status(), 400);
    let body: Value = responses.json().await.unwrap();
    assert_eq!(body["error"]["param"], "text.format.schema", "{body}");
    let messages = client()
        .post(server.url("/v1/messages"))
        .json(&json!({"model": "mock", "max_tokens": 10,
            "messages": [{"role": "user", "content": "hi"}],
            "output_config": {"format": {"type": "json_schema", "schema": "nope"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(messages.status(), 400);
    let body: Value = messages.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("output_config.format"),
        "{body}"
    );
}

fn weather_tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather",
            "description": "Current conditions for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}},
        {"type": "function", "function": {"name": "get_time",
            "description": "The local clock time somewhere",
            "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}}},
        {"type": "function", "function": {"name": "send_email",
            "description": "Mail someone",
            "parameters": {"type": "object", "properties": {"to": {"type": "string"}}}}}
    ])
}

/// A non-streaming chat turn: the names of the tools called, and the text.
async fn turn(server: &Server, body: Value) -> (Vec<String>, String) {
    let mut body = body;
    body["model"] = json!("mock");
    body["tools"] = weather_tools();
    let answer: Value = client()
        .post(server.url("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let message = &answer["choices"][0]["message"];
    let called = message["tool_calls"]
        .as_array()
        .map(|calls| {
            calls
                .iter()
                .map(|c| c["function"]["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default();
    let finish = answer["choices"][0]["finish_reason"].as_str().unwrap();
    assert_eq!(
        finish == "tool_calls",
        !Vec::<String>::is_empty(&called),
        "{answer}"
    );
    (called, message["content"].as_str().unwrap_or("").to_owned())
}

#[tokio::test]
async fn with_tool_choice_auto_the_mock_decides_as_a_model_would() {
    let server = spawn(config(FAST_MOCK)).await;
    let user = |text: &str| json!({"messages": [{"role": "user", "content": text}]});
    // A word of the description, or the tool's name, in the user's message.
    assert_eq!(
        turn(&server, user("What are the conditions in Paris?"))
            .await
            .0,
        ["get_weather"]
    );
    assert_eq!(
        turn(&server, user("please use get_time")).await.0,
        ["get_time"]
    );
    // Several relevant tools: each once, in the order offered; one alone
    // when parallel calls are off.
    let both = user("Current conditions and clock in Tokyo?");
    assert_eq!(
        turn(&server, both.clone()).await.0,
        ["get_weather", "get_time"]
    );
    let mut one = both.clone();
    one["parallel_tool_calls"] = json!(false);
    assert_eq!(turn(&server, one).await.0, ["get_weather"]);
    // Nothing relevant, or `none`: text.
    let (called, text) = turn(&server, user("Tell me a joke")).await;
    assert!(called.is_empty() && !text.is_empty());
    let mut none = both.clone();
    none["tool_choice"] = json!("none");
    assert!(turn(&server, none).await.0.is_empty());
    // After a tool result: text quoting it, whatever the knob says.
    let result = "Sunny, 21 degrees, light wind from the south-west all afternoon in Paris";
    let after = json!({"messages": [
        {"role": "user", "content": "What are the conditions in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
            "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": result}
    ], "mock": {"tool_call": "get_weather"}});
    let (called, text) = turn(&server, after.clone()).await;
    assert!(called.is_empty(), "{called:?}");
    assert!(text.contains(result), "{text}");
    // A forcing choice keeps its meaning, tool result or not.
    let mut forced = after;
    forced["tool_choice"] = json!("required");
    assert_eq!(turn(&server, forced).await.0, ["get_weather"]);
}

#[tokio::test]
async fn counting_tokens_answers_in_each_door_s_shape() {
    let server = spawn(config(FAST_MOCK)).await;
    let count = async |path: &str, body: Value| {
        let response = client()
            .post(server.url(path))
            .json(&body)
            .send()
            .await
            .unwrap();
        (
            response.status().as_u16(),
            response.json::<Value>().await.unwrap(),
        )
    };
    let messages = json!([{"role": "user", "content": "How many tokens is this?"}]);
    let (status, short) = count(
        "/v1/messages/count_tokens",
        json!({"model": "mock", "messages": messages}),
    )
    .await;
    assert_eq!(status, 200, "{short}");
    let (_, with_system) = count(
        "/v1/messages/count_tokens",
        json!({"model": "mock", "messages": messages, "system": "Be brief and exact in every answer."}),
    )
    .await;
    assert!(short["input_tokens"].as_u64().unwrap() > 0);
    assert!(with_system["input_tokens"].as_u64() > short["input_tokens"].as_u64());
    let (status, responses) = count(
        "/v1/responses/input_tokens",
        json!({"model": "mock", "input": "How many tokens is this?"}),
    )
    .await;
    assert_eq!(status, 200, "{responses}");
    assert_eq!(responses["object"], "response.input_tokens");
    // The two doors' error shapes: an unknown model, a missing field.
    let (status, body) = count(
        "/v1/messages/count_tokens",
        json!({"model": "nope", "messages": messages}),
    )
    .await;
    assert_eq!(
        (status, body["error"]["type"].as_str()),
        (404, Some("not_found_error")),
        "{body}"
    );
    let (status, body) = count("/v1/responses/input_tokens", json!({"model": "mock"})).await;
    assert_eq!(
        (status, body["error"]["param"].as_str()),
        (400, Some("input")),
        "{body}"
    );
}

async fn embed(server: &Server, body: Value) -> (u16, Value) {
    let response = client()
        .post(server.url("/v1/embeddings"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn floats(item: &Value) -> Vec<f64> {
    item["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[tokio::test]
async fn the_mock_embeds_texts_as_deterministic_unit_vectors() {
    let server = spawn(config(FAST_MOCK)).await;
    let texts = [
        "The cat sat on the mat",
        "A cat sat on a mat",
        "Quarterly revenue grew",
    ];
    let (status, body) = embed(&server, json!({"model": "mock", "input": texts})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "list");
    let vectors: Vec<Vec<f64>> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(floats)
        .collect();
    assert_eq!(vectors.len(), 3);
    assert!(vectors.iter().all(|v| v.len() == 1536));
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    assert!((dot(&vectors[0], &vectors[0]) - 1.0).abs() < 1e-4);
    assert!(dot(&vectors[0], &vectors[1]) > dot(&vectors[0], &vectors[2]) + 0.3);
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    // The same input, the same vector; `dimensions` honoured; base64 as
    // OpenAI encodes it (little-endian f32).
    let (_, again) = embed(&server, json!({"model": "mock", "input": texts[0]})).await;
    assert_eq!(floats(&again["data"][0]), vectors[0]);
    let (_, short) = embed(
        &server,
        json!({"model": "mock", "input": "hi", "dimensions": 64}),
    )
    .await;
    assert_eq!(floats(&short["data"][0]).len(), 64);
    let (_, packed) = embed(
        &server,
        json!({"model": "mock", "input": texts[0], "encoding_format": "base64"}),
    )
    .await;
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(packed["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let unpacked: Vec<f64> = bytes
        .chunks(4)
        .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
        .collect();
    assert_eq!(unpacked, vectors[0]);
    // Bad input: OpenAI-shaped 400s naming the field.
    for (body, param) in [
        (json!({"model": "mock"}), "input"),
        (json!({"model": "mock", "input": []}), "input"),
        (
            json!({"model": "mock", "input": "x", "dimensions": 0}),
            "dimensions",
        ),
        (
            json!({"model": "mock", "input": "x", "encoding_format": "hex"}),
            "encoding_format",
        ),
    ] {
        let (status, answer) = embed(&server, body).await;
        assert_eq!(
            (status, answer["error"]["param"].as_str()),
            (400, Some(param)),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn an_openai_upstream_gets_the_embeddings_request_as_it_came() {
    let upstream = crate::common::fake_openai::start().await;
    let server = spawn(config_with_env(
        &format!(
            "[[models]]\nname = \"emb\"\nprovider = \"openai\"\nbase_url = \"{}\"\n\
             api_key_env = \"FAKE_KEY\"\nupstream_model = \"text-embedding-3-small\"\n",
            upstream.base_url
        ),
        &[("FAKE_KEY", "sk-up")],
    ))
    .await;
    let (status, body) = embed(
        &server,
        json!({"model": "emb", "input": ["a", "b"], "user": "u1", "encoding_format": "base64"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "emb");
    assert!(body["data"][1]["embedding"].is_string(), "encoded as asked");
    let sent = upstream.seen.last_body.lock().unwrap().clone().unwrap();
    assert_eq!(sent["model"], "text-embedding-3-small");
    assert_eq!(sent["user"], "u1");
    assert_eq!(sent["encoding_format"], "float");
    assert_eq!(
        upstream.seen.last_auth.lock().unwrap().as_deref(),
        Some("Bearer sk-up")
    );
}

#[tokio::test]
async fn tool_call_ids_on_the_messages_door_look_like_anthropic_s() {
    let server = spawn(config(FAST_MOCK)).await;
    let tools = json!([{"name": "get_weather", "description": "Current conditions for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let message: Value = client()
        .post(server.url("/v1/messages"))
        .json(&json!({"model": "mock", "max_tokens": 200, "tools": tools,
            "messages": [{"role": "user", "content": "What are the conditions in Oslo?"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let call = message["content"]
        .as_array()
        .unwrap()
        .iter()
        .find(|block| block["type"] == "tool_use")
        .unwrap_or_else(|| panic!("no tool_use: {message}"));
    assert!(call["id"].as_str().unwrap().starts_with("toolu_"), "{call}");
    let streamed = receive(
        client()
            .post(server.url("/v1/messages"))
            .json(
                &json!({"model": "mock", "max_tokens": 200, "tools": tools, "stream": true,
                "messages": [{"role": "user", "content": "What are the conditions in Oslo?"}]}),
            )
            .send()
            .await
            .unwrap(),
    )
    .await;
    let start = streamed
        .events
        .iter()
        .find(|e| e.data.contains("\"tool_use\""))
        .unwrap_or_else(|| panic!("{}", streamed.text));
    let start: Value = serde_json::from_str(&start.data).unwrap();
    assert!(
        start["content_block"]["id"]
            .as_str()
            .unwrap()
            .starts_with("toolu_"),
        "{start}"
    );
}

#[tokio::test]
async fn free_string_arguments_take_words_of_the_user_s_message() {
    let server = spawn(config(FAST_MOCK)).await;
    for seed in 0..5 {
        let answer: Value = client()
            .post(server.url("/v1/chat/completions"))
            .json(&json!({"model": format!("mock:seed={seed}"), "tools": weather_tools(),
                "messages": [{"role": "user", "content": "What are the conditions in Reykjavik?"}]}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let arguments = answer["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap();
        let arguments: Value = serde_json::from_str(arguments).unwrap();
        assert_eq!(arguments, json!({"city": "Reykjavik"}), "seed {seed}");
    }
}

#[tokio::test]
async fn a_schema_written_in_the_prompt_is_followed_as_a_model_would() {
    let server = spawn(config(FAST_MOCK)).await;
    let schema = json!({"type": "object", "properties": {"name": {"type": "string"},
        "age": {"type": "integer"}}, "required": ["name", "age"]});
    let system = format!("Return JSON that matches this schema: {schema}");
    let ask = async |extra: Value| {
        let mut body = json!({"model": "mock", "messages": [
            {"role": "system", "content": system}, {"role": "user", "content": "Invent a user"}]});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let answer: Value = client()
            .post(server.url("/v1/chat/completions"))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        answer["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let validator = jsonschema::validator_for(&schema).unwrap();
    // json_object: the prompt's schema is followed.
    let object: Value =
        serde_json::from_str(&ask(json!({"response_format": {"type": "json_object"}})).await)
            .unwrap();
    assert!(validator.is_valid(&object), "{object}");
    // No format: a fenced JSON block that fits it.
    let text = ask(json!({})).await;
    let fenced = text
        .strip_prefix("```json\n")
        .and_then(|t| t.strip_suffix("\n```"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        validator.is_valid(&serde_json::from_str(fenced).unwrap()),
        "{fenced}"
    );
}
