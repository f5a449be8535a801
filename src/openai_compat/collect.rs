//! Non-streaming answers: a whole generation gathered into one
//! `chat.completion` or `text_completion` object, with the same content the
//! stream would have carried.

use futures_util::StreamExt;
use serde_json::{json, Map, Value};

use tokio_util::sync::CancellationToken;

use super::Identity;
use crate::error::ApiError;
use crate::generation::{Finish, TokenEvent, TokenStream};
use crate::observe::{Ended, StreamMeter};
use crate::providers::UpstreamError;
use crate::relay;

/// A finished generation.
pub struct Collected {
    /// The model that served (a fallback, perhaps).
    pub served_by: Option<String>,
    pub content: String,
    /// Tool calls assembled from their deltas, in index order.
    pub tool_calls: Vec<Value>,
    pub finish: Finish,
}

/// Runs the generation to its end. Any failure is the response's error,
/// since nothing has been sent yet.
pub async fn collect(
    events: TokenStream,
    mut meter: StreamMeter,
    shutdown: CancellationToken,
) -> Result<Collected, ApiError> {
    let result = tokio::select! {
        result = gather(events, &mut meter) => result,
        () = shutdown.cancelled() => Err(relay::shutting_down()),
    };
    meter.end(match &result {
        Ok(_) => Ended::Done,
        Err(err) => Ended::Error(err.kind),
    });
    result
}

async fn gather(mut events: TokenStream, meter: &mut StreamMeter) -> Result<Collected, ApiError> {
    let mut content = String::new();
    let mut tool_calls = Vec::new();
    let mut served_by = None;
    while let Some(event) = events.next().await {
        match event {
            TokenEvent::Serving(model) => served_by = Some(model),
            TokenEvent::Token(token) => {
                meter.token();
                content.push_str(&token);
            }
            TokenEvent::ToolCalls(deltas) => merge_tool_calls(&mut tool_calls, &deltas),
            TokenEvent::Done(finish) => {
                return Ok(Collected {
                    served_by,
                    content,
                    tool_calls,
                    finish,
                })
            }
            TokenEvent::Error(err) => return Err(err.into()),
            TokenEvent::Cut => {
                return Err(UpstreamError::Stream("the generation was cut off".into()).into())
            }
        }
    }
    Err(UpstreamError::Stream("the generation ended without finishing".into()).into())
}

/// Folds one `delta.tool_calls` array into the calls so far: `id`, `type` and
/// the function's `name` arrive once, `arguments` arrive in pieces.
fn merge_tool_calls(calls: &mut Vec<Value>, deltas: &Value) {
    for delta in deltas.as_array().into_iter().flatten() {
        let index = delta.get("index").and_then(Value::as_u64).unwrap_or(0) as usize;
        while calls.len() <= index {
            calls.push(
                json!({"id": "", "type": "function", "function": {"name": "", "arguments": ""}}),
            );
        }
        let call = &mut calls[index];
        for key in ["id", "type"] {
            if let Some(value) = delta.get(key).filter(|v| v.is_string()) {
                call[key] = value.clone();
            }
        }
        if let Some(function) = delta.get("function").and_then(Value::as_object) {
            for key in ["name", "arguments"] {
                if let Some(piece) = function.get(key).and_then(Value::as_str) {
                    let whole = call["function"][key].as_str().unwrap_or("").to_owned() + piece;
                    call["function"][key] = Value::from(whole);
                }
            }
        }
    }
}

/// `chat.completion`
pub fn chat_completion(identity: &Identity, collected: Collected) -> Value {
    let model = collected.served_by.as_deref().unwrap_or(&identity.model);
    let mut message = Map::new();
    message.insert("role".into(), json!("assistant"));
    let has_tools = !collected.tool_calls.is_empty();
    message.insert(
        "content".into(),
        if has_tools && collected.content.is_empty() {
            Value::Null
        } else {
            Value::from(collected.content)
        },
    );
    if has_tools {
        message.insert("tool_calls".into(), Value::from(collected.tool_calls));
    }
    message.insert("refusal".into(), Value::Null);
    json!({
        "id": identity.id,
        "object": "chat.completion",
        "created": identity.created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": message,
            "logprobs": null,
            "finish_reason": collected.finish.finish_reason,
        }],
        "usage": collected.finish.usage,
    })
}

/// `text_completion`
pub fn text_completion(identity: &Identity, collected: Collected) -> Value {
    json!({
        "id": identity.id,
        "object": "text_completion",
        "created": identity.created,
        "model": collected.served_by.as_deref().unwrap_or(&identity.model),
        "choices": [{
            "text": collected.content,
            "index": 0,
            "logprobs": null,
            "finish_reason": collected.finish.finish_reason,
        }],
        "usage": collected.finish.usage,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_call_deltas_merge_into_whole_calls() {
        let mut calls = Vec::new();
        merge_tool_calls(
            &mut calls,
            &json!([{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":""}}]),
        );
        merge_tool_calls(
            &mut calls,
            &json!([{"index":0,"function":{"arguments":"{\"city\":"}}]),
        );
        merge_tool_calls(
            &mut calls,
            &json!([{"index":0,"function":{"arguments":"\"Oslo\"}"}}]),
        );
        assert_eq!(
            calls,
            vec![
                json!({"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Oslo\"}"}})
            ]
        );
    }
}
