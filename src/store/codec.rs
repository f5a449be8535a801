//! How a generation looks in Redis: its keys, and a log entry as a Redis
//! stream entry and back.
//!
//! Keys, all under the prefix: `gen:{GEN}` a hash (`owner`, `model`,
//! `created`, `prompt_tokens`, `status`, `replica`: the replica that runs
//! it), `gen:{GEN}:log` the stream of its frames, `gen:{GEN}:alive` the
//! generation's lease, renewed by its owner while it runs (a dead owner's
//! generation is lost once it is gone), `gen:{GEN}:watched` set while
//! another replica has watchers (so the owner does not abandon it),
//! `gen:{GEN}:cancel` set by a `DELETE` elsewhere (besides the message on the
//! `cancel` channel, for an owner that missed it). The braces are a Redis
//! Cluster hash tag: a generation's keys share one slot, so one pipeline or
//! script may touch them all, and generations spread over the nodes.
//!
//! Frame N of a generation is the stream entry with the explicit id `0-(N+1)`
//! (Redis forbids `0-0`), so a reader knows every frame's index from its id,
//! `XREAD` after frame N is `XREAD ... 0-(N+1)`, and a trimmed log starts at
//! its first id. One field per entry, named by its kind: `t` a token's text,
//! `r` reasoning, `d` the finish as JSON, `e` the error as JSON.

use std::collections::HashMap;

use redis::Value;
use serde_json::{json, Value as Json};

use super::connection::Redis;
use crate::error::{ApiError, ErrorKind};
use crate::generation::{Finish, Usage};
use crate::generations::Entry;

/// The keys of one generation.
#[derive(Debug, Clone)]
pub struct GenKeys {
    pub id: String,
    pub meta: String,
    pub log: String,
    pub alive: String,
    pub watched: String,
    pub cancel: String,
}

impl GenKeys {
    pub fn of(redis: &Redis, id: &str) -> GenKeys {
        let base = redis.key(&format!("gen:{{{id}}}"));
        GenKeys {
            id: id.to_owned(),
            log: format!("{base}:log"),
            alive: format!("{base}:alive"),
            watched: format!("{base}:watched"),
            cancel: format!("{base}:cancel"),
            meta: base,
        }
    }
}

/// The stream id of frame `index`.
pub fn stream_id(index: u64) -> String {
    format!("0-{}", index + 1)
}

/// The frame index of a stream id this codec wrote.
pub fn index_of(id: &str) -> Option<u64> {
    id.strip_prefix("0-")?.parse::<u64>().ok()?.checked_sub(1)
}

/// The entry's field and value.
pub fn encode(entry: &Entry) -> (&'static str, String) {
    match entry {
        Entry::Token(text) => ("t", text.clone()),
        Entry::Reasoning(text) => ("r", text.clone()),
        Entry::ToolCalls(calls) => ("c", calls.to_string()),
        Entry::Signature(text) => ("s", text.clone()),
        Entry::Malformed => ("m", String::new()),
        Entry::Continued(seam) => ("j", json!(seam).to_string()),
        Entry::Done(finish) => (
            "d",
            json!({
                "finish_reason": finish.finish_reason,
                "usage": finish.usage,
                "stop_sequence": finish.stop_sequence,
            })
            .to_string(),
        ),
        Entry::Error(err) => (
            "e",
            json!({
                "type": err.kind.as_str(),
                "status": err.status.as_u16(),
                "message": err.message,
                "param": err.param,
                "retry_after": err.retry_after,
            })
            .to_string(),
        ),
    }
}

/// The entry a stream entry holds; `None` for one this codec did not write.
pub fn decode(fields: &HashMap<String, Value>) -> Option<Entry> {
    let (field, value) = fields.iter().next()?;
    let text = match value {
        Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok()?,
        Value::SimpleString(text) => text.clone(),
        _ => return None,
    };
    match field.as_str() {
        "t" => Some(Entry::Token(text)),
        "r" => Some(Entry::Reasoning(text)),
        "c" => serde_json::from_str(&text).ok().map(Entry::ToolCalls),
        "s" => Some(Entry::Signature(text)),
        "m" => Some(Entry::Malformed),
        "j" => serde_json::from_str(&text).ok().map(Entry::Continued),
        "d" => {
            let json: Json = serde_json::from_str(&text).ok()?;
            let usage: Usage = serde_json::from_value(json.get("usage")?.clone()).ok()?;
            Some(Entry::Done(Finish {
                finish_reason: json.get("finish_reason")?.as_str()?.to_owned(),
                usage,
                stop_sequence: json
                    .get("stop_sequence")
                    .and_then(Json::as_str)
                    .map(str::to_owned),
            }))
        }
        "e" => {
            let json: Json = serde_json::from_str(&text).ok()?;
            let kind = ErrorKind::named(json.get("type")?.as_str()?)?;
            let status = json
                .get("status")
                .and_then(Json::as_u64)
                .and_then(|s| axum::http::StatusCode::from_u16(s as u16).ok())
                .unwrap_or(kind.status());
            Some(Entry::Error(ApiError {
                kind,
                status,
                message: json.get("message")?.as_str()?.to_owned(),
                param: json.get("param").and_then(Json::as_str).map(str::to_owned),
                retry_after: json.get("retry_after").and_then(Json::as_u64),
            }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(entry: Entry) {
        let (field, value) = encode(&entry);
        let fields = HashMap::from([(field.to_owned(), Value::BulkString(value.into_bytes()))]);
        assert_eq!(decode(&fields), Some(entry));
    }

    #[test]
    fn every_entry_comes_back_as_it_went() {
        round_trip(Entry::Token("héllo \n\"x\"".into()));
        round_trip(Entry::Reasoning("hmm".into()));
        round_trip(Entry::Signature("EqQBCgIYAhIM".into()));
        round_trip(Entry::Malformed);
        round_trip(Entry::Continued(crate::generation::Seam {
            after_tokens: 3,
            model: "backup".into(),
            reason: "idle_timeout".into(),
        }));
        round_trip(Entry::ToolCalls(json!([{"index": 0, "id": "call_1",
            "function": {"name": "f", "arguments": "{\"a\""}}])));
        round_trip(Entry::Done(Finish {
            finish_reason: "stop".into(),
            usage: Usage {
                reasoning_tokens: Some(3),
                ..Usage::new(5, 7)
            },
            stop_sequence: Some("END".into()),
        }));
        round_trip(Entry::Done(Finish::new("cancelled", Usage::new(1, 0))));
        round_trip(Entry::Error(ApiError {
            retry_after: Some(2),
            param: Some("model".into()),
            ..ApiError::new(ErrorKind::UpstreamTimeout, "slow")
        }));
        round_trip(Entry::Error(ApiError::new(
            ErrorKind::GenerationLost,
            "gone",
        )));
    }

    #[test]
    fn ids_name_frame_indexes() {
        assert_eq!(stream_id(0), "0-1");
        assert_eq!(index_of("0-1"), Some(0));
        assert_eq!(index_of(&stream_id(41)), Some(41));
        assert_eq!(index_of("0-0"), None);
        assert_eq!(index_of("1700000000000-0"), None);
    }
}
