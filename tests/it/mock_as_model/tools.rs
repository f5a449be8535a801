//! Tools in an agent loop: how the mock decides, its ids on the Messages
//! door, and arguments from the user's words.

use serde_json::{json, Value};

use crate::common::*;

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
async fn tool_call_ids_on_the_messages_door_look_like_anthropic_s() {
    let server = spawn(config(FAST_MOCK)).await;
    let tools = json!([{"name": "get_weather", "description": "Current conditions for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let message: Value = answer_of(
        server.url("/v1/messages"),
        &json!({"model": "mock", "max_tokens": 200, "tools": tools,
            "messages": [{"role": "user", "content": "What are the conditions in Oslo?"}]}),
    )
    .await;
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
        let answer: Value = answer_of(server.url("/v1/chat/completions"), &json!({"model": format!("mock:seed={seed}"), "tools": weather_tools(),
                "messages": [{"role": "user", "content": "What are the conditions in Reykjavik?"}]})).await;
        let arguments = answer["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap();
        let arguments: Value = serde_json::from_str(arguments).unwrap();
        assert_eq!(arguments, json!({"city": "Reykjavik"}), "seed {seed}");
    }
}
