//! Structured output: each door's format field, a schema in the prompt, a
//! validator over many seeds, and the format translated for an upstream.

use serde_json::{json, Value};

use crate::common::*;

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
        let chat: Value = answer_of(
            server.url("/v1/chat/completions"),
            &json!({"model": model, "messages": [{"role": "user", "content": "a person"}],
                "response_format": {"type": "json_schema",
                    "json_schema": {"name": "person", "schema": schema, "strict": true}}}),
        )
        .await;
        let responses: Value = answer_of(
            server.url("/v1/responses"),
            &json!({"model": model, "input": "a person",
                "text": {"format": {"type": "json_schema", "name": "person", "schema": schema}}}),
        )
        .await;
        let messages: Value = answer_of(
            server.url("/v1/messages"),
            &json!({"model": model, "max_tokens": 4096,
                "messages": [{"role": "user", "content": "a person"}],
                "output_config": {"format": {"type": "json_schema", "schema": schema}}}),
        )
        .await;
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

#[tokio::test]
async fn a_format_asked_for_at_another_door_reaches_an_openai_upstream_as_response_format() {
    let upstream = crate::common::fake_openai::start().await;
    let server = spawn(config_with_env(
        &crate::common::fake_openai::config_toml(&upstream.base_url, ""),
        &[("FAKE_KEY", "k")],
    ))
    .await;
    let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
    let response = client()
        .post(server.url("/v1/responses"))
        .json(&json!({"model": "up-ok", "input": "hi",
            "text": {"format": {"type": "json_schema", "name": "x", "schema": schema}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let sent = upstream.seen.last_body.lock().unwrap().clone().unwrap();
    assert_eq!(
        sent["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}),
        "{sent}"
    );
}
