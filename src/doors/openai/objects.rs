//! Non-streaming answers as OpenAI's objects: `chat.completion` and
//! `text_completion`, with the same content the stream would have carried.

use serde_json::{json, Map, Value};

use super::identity::Identity;
use crate::generation::Usage;
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
    if !collected.reasoning.is_empty() {
        message.insert(
            "reasoning_content".into(),
            Value::from(collected.reasoning.as_str()),
        );
    }
    let extras = &collected.extras;
    if let Some(call) = &extras.function_call {
        message.insert("function_call".into(), call.clone());
    }
    message.insert("refusal".into(), Value::from(extras.refusal.clone()));
    let logprobs = match &extras.logprobs {
        Some(content) => json!({ "content": content, "refusal": null }),
        None => Value::Null,
    };
    json!({
        "id": identity.id,
        "object": "chat.completion",
        "created": identity.created,
        "model": identity.model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": logprobs,
            "finish_reason": collected.finish.finish_reason,
        }],
        "usage": usage(&collected.finish.usage),
    })
}

/// Usage in OpenAI's names: reasoning tokens, when known, under
/// `completion_tokens_details`.
pub fn usage(usage: &Usage) -> Value {
    let mut object = json!({
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    });
    if let Some(reasoning) = usage.reasoning_tokens {
        object["completion_tokens_details"] = json!({ "reasoning_tokens": reasoning });
    }
    object
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
        "usage": usage(&collected.finish.usage),
    })
}
