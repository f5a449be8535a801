//! Every door's POST that starts a generation, with how to read its
//! answer's text, for tests that hold a promise on each door.

use serde_json::{json, Value};

use super::Received;

/// A door's POST that starts a generation: its path, its body, and how to
/// read its answer's text.
pub type DoorCase = (&'static str, Value, fn(&Received) -> String);

/// The text of a streamed Chat Completions answer: its chunks' content.
pub fn chat_stream_text(got: &Received) -> String {
    got.events
        .iter()
        .filter(|e| e.data != "[DONE]")
        .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
        .filter_map(|c| {
            c["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}

/// Every door's POST that starts a generation, for `model`.
pub fn every_door(model: &str) -> Vec<DoorCase> {
    let text = |got: &Received| got.token_text();
    let chat_stream = chat_stream_text;
    let chat_whole = |got: &Received| {
        got.json()["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let completion_stream = |got: &Received| {
        got.events
            .iter()
            .filter(|e| e.data != "[DONE]")
            .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
            .filter_map(|c| c["choices"][0]["text"].as_str().map(str::to_owned))
            .collect()
    };
    let responses_stream = |got: &Received| {
        got.events
            .iter()
            .filter(|e| e.event == "response.output_text.delta")
            .map(|e| {
                serde_json::from_str::<Value>(&e.data).unwrap()["delta"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    };
    let responses_whole = |got: &Received| {
        got.json()["output"][0]["content"][0]["text"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let messages_stream = |got: &Received| {
        got.events
            .iter()
            .filter(|e| e.event == "content_block_delta")
            .filter_map(|e| {
                serde_json::from_str::<Value>(&e.data).unwrap()["delta"]["text"]
                    .as_str()
                    .map(str::to_owned)
            })
            .collect()
    };
    let messages_whole = |got: &Received| {
        got.json()["content"][0]["text"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let ui = |got: &Received| {
        got.events
            .iter()
            .filter(|e| e.data != "[DONE]")
            .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
            .filter(|c| c["type"] == "text-delta")
            .map(|c| c["delta"].as_str().unwrap().to_owned())
            .collect()
    };
    let agui = |got: &Received| {
        got.events
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(&e.data).ok())
            .filter(|c| c["type"] == "TEXT_MESSAGE_CONTENT")
            .map(|c| c["delta"].as_str().unwrap().to_owned())
            .collect()
    };
    let chat = json!([{"role": "user", "content": "hi"}]);
    vec![
        ("/v1/stream", json!({"prompt": "hi", "model": model}), text),
        (
            "/v1/chat/completions",
            json!({"model": model, "messages": chat, "stream": true}),
            chat_stream,
        ),
        (
            "/v1/chat/completions",
            json!({"model": model, "messages": chat}),
            chat_whole,
        ),
        (
            "/v1/completions",
            json!({"model": model, "prompt": "hi", "stream": true}),
            completion_stream,
        ),
        (
            "/v1/responses",
            json!({"model": model, "input": "hi", "stream": true}),
            responses_stream,
        ),
        (
            "/v1/responses",
            json!({"model": model, "input": "hi"}),
            responses_whole,
        ),
        (
            "/v1/messages",
            json!({"model": model, "max_tokens": 64, "messages": chat, "stream": true}),
            messages_stream,
        ),
        (
            "/v1/messages",
            json!({"model": model, "max_tokens": 64, "messages": chat}),
            messages_whole,
        ),
        (
            "/v1/ui/chat",
            json!({"id": "c1", "model": model, "messages": [{"id": "u", "role": "user", "parts": [{"type": "text", "text": "hi"}]}]}),
            ui,
        ),
        (
            "/v1/agui",
            json!({"threadId": "t", "runId": "r", "messages": [{"id": "u", "role": "user", "content": "hi"}], "forwardedProps": {"model": model}}),
            agui,
        ),
    ]
}
