//! Non-streaming answers as OpenAI's objects: `chat.completion` and
//! `text_completion`, with the same content the stream would have carried.

use serde_json::{json, Map, Value};

use super::identity::Identity;
use crate::pipeline::collect::Collected;

/// A `chat.completion` object.
pub fn chat_completion(identity: &Identity, collected: &Collected) -> Value {
    let mut message = Map::new();
    message.insert("role".into(), json!("assistant"));
    let has_tools = !collected.tool_calls.is_empty();
    message.insert(
        "content".into(),
        if has_tools && collected.content.is_empty() {
            Value::Null
        } else {
            Value::from(collected.content.as_str())
        },
    );
    if has_tools {
        message.insert(
            "tool_calls".into(),
            Value::from(collected.tool_calls.clone()),
        );
    }
    message.insert("refusal".into(), Value::Null);
    json!({
        "id": identity.id,
        "object": "chat.completion",
        "created": identity.created,
        "model": identity.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": collected.finish.finish_reason,
        }],
        "usage": collected.finish.usage,
    })
}

/// A `text_completion` object.
pub fn text_completion(identity: &Identity, collected: &Collected) -> Value {
    json!({
        "id": identity.id,
        "object": "text_completion",
        "created": identity.created,
        "model": identity.model,
        "choices": [{
            "text": collected.content,
            "index": 0,
            "logprobs": null,
            "finish_reason": collected.finish.finish_reason,
        }],
        "usage": collected.finish.usage,
    })
}
