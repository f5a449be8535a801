//! A tool call's arguments, generated from the tool's JSON Schema with the
//! mock's seeded RNG: the same request gives the same arguments, and they
//! are valid against the schema (tests check them with the `jsonschema`
//! crate).
//!
//! What is honoured: `type` (one, or a list: the first that is not `null`),
//! `const`, `enum`, `properties` (every one, required or not), `items` and
//! `prefixItems` with `minItems`/`maxItems`, `minimum`/`maximum` and their
//! exclusive forms, `multipleOf` on integers, `minLength`/`maxLength`,
//! common string `format`s, `anyOf`/`oneOf` (the first), `allOf` (merged
//! properties) and local `$ref`s (`#/$defs/..`, `#/definitions/..`). A
//! `pattern` cannot be honoured in general and is not.
//!
//! The work is bounded whatever the schema asks for (contract section 18),
//! since any client can send one: nesting past [`MAX_DEPTH`] ends in `null`,
//! so a recursive schema cannot loop; arrays hold at most [`MAX_ITEMS`] and
//! strings at most [`MAX_STRING`] characters, however large `minItems` or
//! `minLength`; and the whole value is held to [`BUDGET`] bytes and visits,
//! past which values are `null`, so fan-out through `$ref` cannot explode.
//! Such a schema gets a clamped answer, not an error.

use std::cell::Cell;

use serde_json::{Map, Number, Value};

/// How deep generated values nest at most.
pub const MAX_DEPTH: usize = 12;
/// Items in one generated array at most (`minItems` above it is clamped).
pub const MAX_ITEMS: usize = 16;
/// Characters in one generated string at most (`minLength` too).
pub const MAX_STRING: usize = 1024;
/// The generated value's JSON stays under this many bytes (the contract's
/// 64 KiB, with room for a serializer's separators counted loosely here).
pub const BUDGET: usize = 60 * 1024;
/// Schema nodes visited at most, values made or not.
const MAX_VISITS: usize = 20_000;

/// Arguments valid against `schema`, within the bounds above, for a request
/// whose user said `prompt`: a string the schema leaves free prefers a word
/// of it (a capitalised one for a city or a name), so a demo's arguments
/// read sensibly.
pub fn generate(schema: &Value, rng: &mut fastrand::Rng, prompt: &str) -> Value {
    let generator = Generator {
        root: schema,
        bytes: Cell::new(0),
        visits: Cell::new(0),
        hints: Hints::of(prompt),
    };
    match generator.value(schema, rng, 0, "") {
        // Arguments are an object; a schema for something else gets it wrapped.
        Value::Object(object) => Value::Object(object),
        _ if schema.get("type").is_none() => Value::Object(Map::new()),
        other => other,
    }
}

struct Generator<'a> {
    root: &'a Value,
    hints: Hints,
    /// Bytes of JSON made so far, roughly (each value's text and 8 more).
    bytes: Cell<usize>,
    visits: Cell<usize>,
}

/// Words of the user's message for free string fields.
#[derive(Default)]
struct Hints {
    /// Capitalised words after the first (names of places and people).
    proper: Vec<String>,
    /// Words of four letters or more.
    words: Vec<String>,
}

impl Hints {
    fn of(prompt: &str) -> Hints {
        let all: Vec<&str> = prompt
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        Hints {
            proper: all
                .iter()
                .skip(1)
                .filter(|w| w.chars().next().is_some_and(char::is_uppercase) && w.len() >= 3)
                .map(|w| (*w).to_owned())
                .collect(),
            words: all
                .iter()
                .filter(|w| w.chars().count() >= 4)
                .map(|w| (*w).to_owned())
                .collect(),
        }
    }
}

const WORDS: &[&str] = &[
    "Oslo", "blue", "river", "Lisbon", "quick", "maple", "Kyoto", "amber",
];

impl Generator<'_> {
    /// Whether the budget is spent; else counts one more value of `bytes`.
    fn spent(&self, bytes: usize) -> bool {
        let visits = self.visits.get() + 1;
        self.visits.set(visits);
        let total = self.bytes.get() + bytes + 8;
        if visits > MAX_VISITS || total > BUDGET {
            // Spent for good: no container grows from here.
            self.bytes.set(BUDGET);
            return true;
        }
        self.bytes.set(total);
        false
    }

    /// Whether the budget is gone: objects and arrays stop growing.
    fn exhausted(&self) -> bool {
        self.visits.get() >= MAX_VISITS || self.bytes.get() >= BUDGET
    }

    fn value(&self, schema: &Value, rng: &mut fastrand::Rng, depth: usize, name: &str) -> Value {
        if self.spent(name.len()) || depth > MAX_DEPTH {
            return Value::Null;
        }
        let Some(schema) = schema.as_object() else {
            // `true` (anything) or a malformed schema: a plain string will do.
            return Value::from(word(rng, name, &self.hints));
        };
        if let Some(target) = schema.get("$ref").and_then(Value::as_str) {
            return match self.resolve(target) {
                Some(resolved) => self.value(resolved, rng, depth + 1, name),
                None => Value::Null,
            };
        }
        if let Some(value) = schema.get("const") {
            return value.clone();
        }
        if let Some(choices) = schema
            .get("enum")
            .and_then(Value::as_array)
            .filter(|c| !c.is_empty())
        {
            return choices[rng.usize(..choices.len())].clone();
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(first) = schema
                .get(key)
                .and_then(Value::as_array)
                .and_then(|a| a.first())
            {
                return self.value(first, rng, depth + 1, name);
            }
        }
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            return self.value(&merged(schema, all), rng, depth + 1, name);
        }
        match type_of(schema) {
            "object" => self.object(schema, rng, depth),
            "array" => self.array(schema, rng, depth, name),
            "integer" => integer(schema, rng),
            "number" => number(schema, rng),
            "boolean" => Value::Bool(rng.bool()),
            "null" => Value::Null,
            _ => {
                let text = string(schema, rng, name, &self.hints);
                match self.spent(text.len()) {
                    true => Value::Null,
                    false => Value::from(text),
                }
            }
        }
    }

    fn object(&self, schema: &Map<String, Value>, rng: &mut fastrand::Rng, depth: usize) -> Value {
        let mut object = Map::new();
        if let Some(properties) = schema.get("properties").and_then(Value::as_object) {
            for (name, property) in properties {
                if self.exhausted() {
                    break;
                }
                object.insert(name.clone(), self.value(property, rng, depth + 1, name));
            }
        }
        // A required property with no schema of its own still has to be there.
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(name) = name.as_str() {
                if !object.contains_key(name) {
                    object.insert(name.to_owned(), Value::from(word(rng, name, &self.hints)));
                }
            }
        }
        Value::Object(object)
    }

    fn array(
        &self,
        schema: &Map<String, Value>,
        rng: &mut fastrand::Rng,
        depth: usize,
        name: &str,
    ) -> Value {
        let bound = |key: &str| schema.get(key).and_then(Value::as_u64).map(|n| n as usize);
        let min = bound("minItems").unwrap_or(1).min(MAX_ITEMS);
        let max = bound("maxItems")
            .unwrap_or(min.max(3))
            .max(min)
            .min(min + 8)
            .min(MAX_ITEMS);
        let count = rng.usize(min..=max);
        let prefix = schema.get("prefixItems").and_then(Value::as_array);
        let items = schema.get("items");
        let mut out = Vec::with_capacity(count);
        for i in 0..count {
            if self.exhausted() {
                break;
            }
            let item_schema = prefix.and_then(|p| p.get(i)).or(items);
            out.push(match item_schema {
                Some(item) => self.value(item, rng, depth + 1, name),
                None => Value::from(word(rng, name, &self.hints)),
            });
        }
        Value::Array(out)
    }

    /// A local `$ref` (`#/$defs/x`, `#/definitions/x`, `#`).
    fn resolve(&self, target: &str) -> Option<&Value> {
        let pointer = target.strip_prefix('#')?;
        self.root.pointer(pointer)
    }
}

/// The schema's type: given, or guessed from its keywords.
fn type_of(schema: &Map<String, Value>) -> &str {
    match schema.get("type") {
        Some(Value::String(kind)) => kind,
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| *k != "null")
            .unwrap_or("null"),
        _ if schema.contains_key("properties") => "object",
        _ if schema.contains_key("items") || schema.contains_key("prefixItems") => "array",
        _ => "string",
    }
}

/// `allOf`'s object schemas as one: their properties and requirements joined.
fn merged(schema: &Map<String, Value>, all: &[Value]) -> Value {
    let mut one = schema.clone();
    one.remove("allOf");
    for part in all.iter().filter_map(Value::as_object) {
        for (key, value) in part {
            match (one.get_mut(key), value) {
                (Some(Value::Object(mine)), Value::Object(theirs)) => {
                    mine.extend(theirs.clone());
                }
                (Some(Value::Array(mine)), Value::Array(theirs)) => mine.extend(theirs.clone()),
                (Some(_), _) => {}
                (None, _) => {
                    one.insert(key.clone(), value.clone());
                }
            }
        }
    }
    Value::Object(one)
}

fn integer(schema: &Map<String, Value>, rng: &mut fastrand::Rng) -> Value {
    // Bounds come from the client and may sit at or past i64's range (the
    // casts saturate), so every step below saturates instead of overflowing.
    let num = |key: &str| schema.get(key).and_then(Value::as_f64);
    let low = match (num("minimum"), num("exclusiveMinimum")) {
        (_, Some(x)) => (x.floor() as i64).saturating_add(1),
        (Some(m), None) => m.ceil() as i64,
        (None, None) => 0,
    };
    let high = match (num("maximum"), num("exclusiveMaximum")) {
        (_, Some(x)) => (x.ceil() as i64).saturating_sub(1),
        (Some(m), None) => m.floor() as i64,
        (None, None) => low.max(0).saturating_add(100),
    };
    let high = high.max(low);
    let mut n = rng.i64(low..=high);
    if let Some(step) = schema
        .get("multipleOf")
        .and_then(Value::as_i64)
        .filter(|s| *s > 0)
    {
        // The first multiple at or above the low bound, then up to the high
        // one; when none fits in i64, the drawn value stands.
        let first = (low.div_euclid(step) as i128 * step as i128)
            + if low.rem_euclid(step) == 0 {
                0
            } else {
                step as i128
            };
        if first <= high as i128 {
            let count = ((high as i128 - first) / step as i128).min(i64::MAX as i128) as i64;
            n = (first + step as i128 * rng.i64(0..=count) as i128) as i64;
        }
    }
    Value::from(n)
}

fn number(schema: &Map<String, Value>, rng: &mut fastrand::Rng) -> Value {
    let num = |key: &str| schema.get(key).and_then(Value::as_f64);
    let low = num("exclusiveMinimum").or(num("minimum")).unwrap_or(0.0);
    let high = num("exclusiveMaximum")
        .or(num("maximum"))
        .unwrap_or(low.max(0.0) + 100.0);
    let high = high.max(low);
    // Two decimals, strictly inside exclusive bounds (their midpoint when
    // the rounding would reach one).
    let mut x = ((low + (high - low) * rng.f64()) * 100.0).round() / 100.0;
    let outside = |x: f64| {
        num("exclusiveMinimum").is_some_and(|b| x <= b)
            || num("exclusiveMaximum").is_some_and(|b| x >= b)
            || x < low
            || x > high
    };
    if outside(x) {
        x = (low + high) / 2.0;
    }
    Number::from_f64(x).map_or(Value::Null, Value::Number)
}

fn string(
    schema: &Map<String, Value>,
    rng: &mut fastrand::Rng,
    name: &str,
    hints: &Hints,
) -> String {
    let format = schema.get("format").and_then(Value::as_str);
    let mut text = match format {
        Some("date-time") => format!("2026-0{}-1{}T10:30:00Z", rng.u8(1..=9), rng.u8(0..=9)),
        Some("date") => format!("2026-0{}-1{}", rng.u8(1..=9), rng.u8(0..=9)),
        Some("time") => format!("1{}:30:00", rng.u8(0..=9)),
        Some("email") => format!("{}@example.com", word(rng, name, hints).to_lowercase()),
        Some("uri" | "url" | "iri") => {
            format!(
                "https://example.com/{}",
                word(rng, name, hints).to_lowercase()
            )
        }
        Some("uuid") => {
            let hex: String = (0..32)
                .map(|_| char::from_digit(rng.u32(0..16), 16).unwrap_or('0'))
                .collect();
            format!(
                "{}-{}-4{}-a{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[13..16],
                &hex[17..20],
                &hex[20..]
            )
        }
        Some("ipv4") => format!("192.0.2.{}", rng.u8(1..=254)),
        Some("ipv6") => "2001:db8::1".into(),
        Some("hostname") => "example.com".into(),
        _ => word(rng, name, hints),
    };
    let bound = |key: &str| {
        schema
            .get(key)
            .and_then(Value::as_u64)
            .map(|n| (n as usize).min(MAX_STRING))
    };
    if let Some(min) = bound("minLength") {
        let have = text.chars().count();
        text.extend(std::iter::repeat_n('x', min.saturating_sub(have)));
    }
    if let Some(max) = bound("maxLength") {
        text = text.chars().take(max).collect();
    }
    text
}

/// A word for a string field: from the user's message where it has one (a
/// capitalised word for a city, a place or a name), else the field's own
/// kind where it says (a city, a name), else one from a small list.
fn word(rng: &mut fastrand::Rng, name: &str, hints: &Hints) -> String {
    let lower = name.to_ascii_lowercase();
    let proper = [
        "city", "location", "place", "country", "name", "person", "who",
    ]
    .iter()
    .any(|kind| lower.contains(kind));
    let from_prompt = match proper {
        true => hints.proper.first().or(hints.words.first()),
        false if hints.words.is_empty() => None,
        false => hints.words.get(rng.usize(..hints.words.len())),
    };
    if let Some(word) = from_prompt {
        return word.clone();
    }
    let pick = if lower.contains("city") || lower.contains("location") {
        ["Oslo", "Lisbon", "Kyoto", "Toronto"][rng.usize(..4)]
    } else if lower.contains("name") {
        ["Ada", "Grace", "Linus", "Margaret"][rng.usize(..4)]
    } else {
        WORDS[rng.usize(..WORDS.len())]
    };
    pick.to_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Many schemas, many seeds: every value is valid.
    #[test]
    fn generated_arguments_are_valid_against_their_schema() {
        let schemas = [
            json!({"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}),
            json!({"type": "object", "properties": {
                "n": {"type": "integer", "exclusiveMinimum": 3, "exclusiveMaximum": 9, "multipleOf": 2},
                "x": {"type": "number", "minimum": 0.5, "maximum": 0.75},
                "s": {"type": ["null", "string"], "format": "email"},
                "u": {"type": "string", "format": "uuid"},
                "t": {"type": "string", "format": "date-time"},
                "id": {"const": 42},
                "pick": {"anyOf": [{"type": "integer", "minimum": 10}, {"type": "string"}]},
                "both": {"allOf": [{"properties": {"a": {"type": "boolean"}}, "required": ["a"]},
                                   {"properties": {"b": {"type": "null"}}, "required": ["b"]}]},
                "rows": {"type": "array", "items": {"type": "object", "properties": {"k": {"type": "string", "minLength": 5, "maxLength": 6}}}},
                "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "boolean"}], "minItems": 2, "maxItems": 2},
            }, "required": ["n", "x", "s", "u", "t", "id", "pick", "both", "rows", "pair"]}),
            json!({"type": "object", "properties": {"node": {"$ref": "#/definitions/node"}},
                   "definitions": {"node": {"type": "object", "properties": {"next": {"anyOf": [{"type": "null"}, {"$ref": "#/definitions/node"}]}}}}}),
            json!({}),
        ];
        // The check can fail: a wrong value is caught.
        let strict = jsonschema::validator_for(&schemas[1]).unwrap();
        assert!(!strict.is_valid(&json!({"n": 5})));
        for schema in &schemas {
            let validator = jsonschema::validator_for(schema).unwrap();
            for seed in 0..200 {
                let value = generate(schema, &mut fastrand::Rng::with_seed(seed), "");
                let errors: Vec<String> = validator
                    .iter_errors(&value)
                    .map(|e| e.to_string())
                    .collect();
                assert!(
                    errors.is_empty(),
                    "seed {seed}: {value} against {schema}: {errors:?}"
                );
            }
        }
    }

    /// T3-1: schemas that ask for huge arrays, huge strings or exponential
    /// fan-out get a bounded answer, quickly.
    #[test]
    fn t3_1_schema_bombs_give_bounded_arguments() {
        let fan_out: Map<String, Value> = (0..6)
            .map(|i| (format!("p{i}"), json!({"$ref": "#"})))
            .collect();
        let bombs = [
            json!({"type": "object", "properties": {"a": {"type": "array", "minItems": 1_099_511_627_776_u64}}}),
            json!({"type": "object", "properties": {"s": {"type": "string", "minLength": 300_000}}}),
            json!({"type": "object", "properties": fan_out}),
            json!({"type": "object", "properties": {"a": {"type": "array", "minItems": 16, "items": {"type": "array", "minItems": 16, "items": {"type": "string", "minLength": 1000}}}}}),
        ];
        for bomb in &bombs {
            let started = tokio::time::Instant::now();
            let value = generate(bomb, &mut fastrand::Rng::with_seed(1), "");
            let bytes = value.to_string().len();
            assert!(bytes <= 64 * 1024, "{bytes} bytes for {bomb}");
            // A bomb pins a core for a minute; two seconds leaves room for a
            // debug build on a loaded machine.
            assert!(
                started.elapsed() < std::time::Duration::from_secs(2),
                "{:?} for {bomb}",
                started.elapsed()
            );
        }
    }

    /// Found by the `mock_arguments` fuzz target: bounds at or past i64's
    /// range (the float casts saturate) overflowed the arithmetic on them.
    #[test]
    fn integer_bounds_at_the_edge_of_i64_do_not_overflow() {
        let schemas = [
            json!({"type": "integer", "minimum": 1.3e30}),
            json!({"type": "integer", "exclusiveMinimum": 1e300}),
            json!({"type": "integer", "exclusiveMaximum": -1e300}),
            json!({"type": "integer", "minimum": -1e300, "maximum": 1e300, "multipleOf": 7}),
            json!({"type": "integer", "minimum": 9.2e18, "multipleOf": 1_000_000_000_000_000_000_i64}),
            json!({"type": "integer", "minimum": -9.3e18, "maximum": -9.2e18, "multipleOf": 3}),
        ];
        for schema in &schemas {
            for seed in 0..50 {
                let value = generate(schema, &mut fastrand::Rng::with_seed(seed), "");
                assert!(value.is_i64(), "{value} for {schema}");
            }
        }
    }
}
