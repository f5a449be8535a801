//! A chunk's `delta`, read in one pass: the parts sluice interprets typed,
//! every other field kept as it came.
//!
//! Hand-written rather than `#[serde(flatten)]`, which buffers the whole
//! object before sorting it into fields; this is on the per-token path.
//! `null` fields, and empty `content`, reasoning and `tool_calls`, count as
//! absent: servers send `"refusal": null` or `"tool_calls": []` on every
//! chunk, and relaying them would invent fields on every chunk.

use std::borrow::Cow;
use std::fmt;

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::{Map, Value};

#[derive(Debug, Default, PartialEq)]
pub struct Delta {
    pub content: Option<String>,
    /// `reasoning_content` or `reasoning`, whichever came first.
    pub reasoning: Option<String>,
    pub tool_calls: Option<Value>,
    /// Every other field but `role`.
    pub other: Map<String, Value>,
}

/// A key, borrowed from the input when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a field name")
            }
            fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(key)))
            }
            fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(key.to_owned())))
            }
        }
        deserializer.deserialize_str(KeyVisitor)
    }
}

impl<'de> Deserialize<'de> for Delta {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(DeltaVisitor)
    }
}

struct DeltaVisitor;

impl<'de> Visitor<'de> for DeltaVisitor {
    type Value = Delta;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a chat.completion.chunk delta object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Delta, A::Error> {
        let mut delta = Delta::default();
        let text = |t: Option<String>| t.filter(|t| !t.is_empty());
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            match key.as_ref() {
                "content" => delta.content = text(map.next_value()?),
                "reasoning_content" | "reasoning" => {
                    let reasoning = text(map.next_value()?);
                    if delta.reasoning.is_none() {
                        delta.reasoning = reasoning;
                    }
                }
                "tool_calls" => {
                    let calls: Option<Value> = map.next_value()?;
                    delta.tool_calls = calls.filter(|c| match c {
                        Value::Array(calls) => !calls.is_empty(),
                        other => !other.is_null(),
                    });
                }
                "role" => {
                    map.next_value::<IgnoredAny>()?;
                }
                _ => {
                    let value: Value = map.next_value()?;
                    if !value.is_null() {
                        delta.other.insert(key.into_owned(), value);
                    }
                }
            }
        }
        Ok(delta)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn delta(json: &str) -> Delta {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_interpreted_parts_are_typed_and_the_rest_kept() {
        let got = delta(
            r#"{"role":"assistant","content":"Hi","reasoning_content":null,"reasoning":"hm",
                "refusal":null,"tool_calls":[],"audio":{"id":"a1"},"func\u0074ion_call":{"name":"f"}}"#,
        );
        assert_eq!(got.content.as_deref(), Some("Hi"));
        assert_eq!(got.reasoning.as_deref(), Some("hm"));
        assert_eq!(got.tool_calls, None);
        assert_eq!(
            Value::Object(got.other),
            json!({"audio": {"id": "a1"}, "function_call": {"name": "f"}})
        );
        // Both reasoning names with the same text (some servers send both): once.
        let both = delta(r#"{"reasoning_content":"a","reasoning":"a"}"#);
        assert_eq!(both.reasoning.as_deref(), Some("a"));
        assert_eq!(delta(r#"{"content":""}"#), Delta::default());
        assert!(serde_json::from_str::<Delta>(r#"{"content":5}"#).is_err());
    }
}
