//! The `tools` and `tool_choice` of a request, as each door writes them, read
//! into the pipeline's [`Tool`]s and [`ToolChoice`]: OpenAI Chat Completions'
//! `{"type":"function","function":{name, parameters}}`, the Responses API's
//! flat `{"type":"function", name, parameters}`, Anthropic's
//! `{name, input_schema}`. Tools of other types (built-in tools such as
//! `web_search`) are not the mock's to call and are skipped.
//!
//! A wrong field is a 400 naming it, as everywhere.

use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::generation::{Tool, ToolChoice};

/// How a door writes its tools.
#[derive(Clone, Copy)]
pub enum Dialect {
    /// `/v1/chat/completions`: the function under `function`.
    Chat,
    /// `/v1/responses`: the function's fields at the top.
    Responses,
    /// `/v1/messages`: `name` and `input_schema`.
    Messages,
}

fn invalid(field: String, what: &str) -> ApiError {
    ApiError::invalid(field.clone(), format!("`{field}` {what}"))
}

/// The tools of `body` (read, not removed: the OpenAI door passes them on).
pub fn tools(body: &Map<String, Value>, dialect: Dialect) -> Result<Vec<Tool>, ApiError> {
    let list = match body.get("tools") {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Array(list)) => list,
        Some(_) => return Err(invalid("tools".into(), "must be an array of tools")),
    };
    let mut tools = Vec::with_capacity(list.len());
    for (i, tool) in list.iter().enumerate() {
        let at = format!("tools[{i}]");
        let Some(tool) = tool.as_object() else {
            return Err(invalid(at, "must be an object"));
        };
        let kind = tool.get("type").and_then(Value::as_str);
        let (function, name_at, schema_key) = match dialect {
            Dialect::Chat if kind == Some("function") => match tool.get("function") {
                Some(Value::Object(function)) => (function, format!("{at}.function"), "parameters"),
                _ => return Err(invalid(format!("{at}.function"), "must be an object")),
            },
            Dialect::Responses if kind == Some("function") => (tool, at, "parameters"),
            // Anthropic's client tools have no type, or "custom".
            Dialect::Messages if matches!(kind, None | Some("custom")) => {
                (tool, at, "input_schema")
            }
            Dialect::Chat | Dialect::Responses | Dialect::Messages => continue,
        };
        let name = match function.get("name") {
            Some(Value::String(name)) if !name.is_empty() => name.clone(),
            _ => {
                return Err(invalid(
                    format!("{name_at}.name"),
                    "must be a non-empty string",
                ))
            }
        };
        let parameters = match function.get(schema_key) {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(schema @ (Value::Object(_) | Value::Bool(_))) => schema.clone(),
            Some(_) => {
                return Err(invalid(
                    format!("{name_at}.{schema_key}"),
                    "must be a JSON Schema object",
                ))
            }
        };
        let description = function
            .get("description")
            .and_then(Value::as_str)
            .map(str::to_owned);
        tools.push(Tool {
            name,
            description,
            parameters,
        });
    }
    Ok(tools)
}

/// The `tool_choice` of `body`.
pub fn choice(body: &Map<String, Value>, dialect: Dialect) -> Result<ToolChoice, ApiError> {
    let Some(choice) = body.get("tool_choice").filter(|c| !c.is_null()) else {
        return Ok(ToolChoice::Auto);
    };
    let bad = || {
        let expected = match dialect {
            Dialect::Chat | Dialect::Responses => {
                "must be \"auto\", \"none\", \"required\" or {\"type\": \"function\", ...}"
            }
            Dialect::Messages => "must be {\"type\": \"auto\" | \"any\" | \"tool\" | \"none\"}",
        };
        invalid("tool_choice".into(), expected)
    };
    let named = |name: Option<&Value>| match name {
        Some(Value::String(name)) => Ok(ToolChoice::Named(name.clone())),
        _ => Err(invalid(
            "tool_choice.name".into(),
            "must be the name of a tool",
        )),
    };
    match (dialect, choice) {
        (Dialect::Chat | Dialect::Responses, Value::String(mode)) => match mode.as_str() {
            "auto" => Ok(ToolChoice::Auto),
            "none" => Ok(ToolChoice::None),
            "required" => Ok(ToolChoice::Required),
            _ => Err(bad()),
        },
        (Dialect::Chat, Value::Object(object))
            if object.get("type") == Some(&Value::from("function")) =>
        {
            match object.get("function") {
                Some(function) => named(function.get("name")).map_err(|_| {
                    invalid(
                        "tool_choice.function.name".into(),
                        "must be the name of a tool",
                    )
                }),
                None => Err(invalid("tool_choice.function".into(), "is missing")),
            }
        }
        (Dialect::Responses, Value::Object(object))
            if object.get("type") == Some(&Value::from("function")) =>
        {
            named(object.get("name"))
        }
        (Dialect::Messages, Value::Object(object)) => {
            match object.get("type").and_then(Value::as_str) {
                Some("auto") => Ok(ToolChoice::Auto),
                Some("none") => Ok(ToolChoice::None),
                Some("any") => Ok(ToolChoice::Required),
                Some("tool") => named(object.get("name")),
                _ => Err(bad()),
            }
        }
        (Dialect::Chat | Dialect::Responses | Dialect::Messages, _) => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn body(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn each_dialect_reads_its_own_shape() {
        let schema = json!({"type": "object", "properties": {"city": {"type": "string"}}});
        let chat = body(
            json!({"tools": [{"type": "function", "function": {"name": "w", "parameters": schema}}],
                              "tool_choice": {"type": "function", "function": {"name": "w"}}}),
        );
        let responses = body(
            json!({"tools": [{"type": "web_search"}, {"type": "function", "name": "w", "parameters": schema}],
                                   "tool_choice": "required"}),
        );
        let messages = body(
            json!({"tools": [{"name": "w", "input_schema": schema}], "tool_choice": {"type": "any"}}),
        );
        let expected = vec![Tool {
            name: "w".into(),
            description: None,
            parameters: schema.clone(),
        }];
        assert_eq!(tools(&chat, Dialect::Chat).unwrap(), expected);
        assert_eq!(tools(&responses, Dialect::Responses).unwrap(), expected);
        assert_eq!(tools(&messages, Dialect::Messages).unwrap(), expected);
        assert_eq!(
            choice(&chat, Dialect::Chat).unwrap(),
            ToolChoice::Named("w".into())
        );
        assert_eq!(
            choice(&responses, Dialect::Responses).unwrap(),
            ToolChoice::Required
        );
        assert_eq!(
            choice(&messages, Dialect::Messages).unwrap(),
            ToolChoice::Required
        );
    }

    #[test]
    fn a_wrong_field_is_named() {
        let param = |result: Result<Vec<Tool>, ApiError>| result.unwrap_err().param.unwrap();
        assert_eq!(
            param(tools(&body(json!({"tools": {}})), Dialect::Chat)),
            "tools"
        );
        assert_eq!(
            param(tools(
                &body(json!({"tools": [{"type": "function", "function": {"parameters": {}}}]})),
                Dialect::Chat
            )),
            "tools[0].function.name"
        );
        assert_eq!(
            param(tools(
                &body(json!({"tools": [{"name": "w", "input_schema": 3}]})),
                Dialect::Messages
            )),
            "tools[0].input_schema"
        );
        let bad_choice = choice(&body(json!({"tool_choice": "always"})), Dialect::Chat);
        assert_eq!(
            bad_choice.unwrap_err().param.as_deref(),
            Some("tool_choice")
        );
        let bad_choice = choice(
            &body(json!({"tool_choice": {"type": "tool"}})),
            Dialect::Messages,
        );
        assert_eq!(
            bad_choice.unwrap_err().param.as_deref(),
            Some("tool_choice.name")
        );
    }
}
