//! Counting tokens on the Messages and Responses doors.

use serde_json::{json, Value};

use crate::common::*;

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

#[tokio::test]
async fn an_anthropic_model_s_tokens_are_counted_by_its_upstream() {
    let anthropic = crate::common::fake_anthropic::start().await;
    let server = spawn(config_with_env(
        &format!(
            "[[models]]\nname = \"claude\"\nprovider = \"anthropic\"\nbase_url = \"{}\"\n\
             api_key_env = \"ANTHROPIC_KEY\"\nupstream_model = \"claude-up\"\n",
            anthropic.base_url
        ),
        &[("ANTHROPIC_KEY", "sk-ant")],
    ))
    .await;
    let counted: Value = answer_of(
        server.url("/v1/messages/count_tokens"),
        &json!({"model": "claude", "system": "Be brief.",
            "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(counted, json!({"input_tokens": 1001}));
    let sent = anthropic.seen.last_body.lock().unwrap().clone().unwrap();
    assert_eq!(sent["model"], "claude-up");
    assert_eq!(sent["system"], "Be brief.", "{sent}");
    assert!(
        sent.get("max_tokens").is_none() && sent.get("stream").is_none(),
        "{sent}"
    );
}
