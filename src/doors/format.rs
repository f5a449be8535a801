//! The structured output a request asks for, as each door writes it, read
//! into the pipeline's [`OutputFormat`] (contract section 13):
//! - Chat Completions: `response_format`, `{"type":"json_object"}` or
//!   `{"type":"json_schema","json_schema":{"name","schema","strict"}}`;
//! - Responses: `text.format`, `{"type":"json_object"}` or
//!   `{"type":"json_schema","name","schema","strict"}`;
//! - Messages: `output_config.format` (or the beta `output_format`),
//!   `{"type":"json_schema","schema"}`.
//!
//! `{"type":"text"}` asks for nothing. The fields are read, not removed: an
//! OpenAI-compatible upstream gets them as they came. A schema is checked
//! against its meta-schema (the `jsonschema` crate), so a schema that is
//! not one is a 400 naming it, not a mock answer nobody can validate.

use serde_json::{Map, Value};

use crate::doors::tools::Dialect;
use crate::error::ApiError;
use crate::generation::OutputFormat;

/// The format `body` asks for in `dialect`'s field, if any.
pub fn format(
    body: &Map<String, Value>,
    dialect: Dialect,
) -> Result<Option<OutputFormat>, ApiError> {
    let (field, value) = match dialect {
        Dialect::Chat => ("response_format", body.get("response_format")),
        Dialect::Responses => (
            "text.format",
            body.get("text").and_then(|text| text.get("format")),
        ),
        Dialect::Messages => match body.get("output_config").and_then(|c| c.get("format")) {
            Some(format) => ("output_config.format", Some(format)),
            None => ("output_format", body.get("output_format")),
        },
    };
    let format = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Object(format)) => format,
        Some(_) => return Err(invalid(field, "must be an object with a `type`")),
    };
    match format.get("type").and_then(Value::as_str) {
        Some("text") if !matches!(dialect, Dialect::Messages) => Ok(None),
        // Some clients (instructor's JSON_SCHEMA mode) put a schema beside
        // `json_object`: it is honoured.
        Some("json_object") if !matches!(dialect, Dialect::Messages) => {
            match format.get("schema") {
                Some(schema) => schema_of(&format!("{field}.schema"), schema).map(Some),
                None => Ok(Some(OutputFormat::JsonObject)),
            }
        }
        Some("json_schema") => {
            let (at, schema) = match dialect {
                Dialect::Chat => (
                    "response_format.json_schema.schema",
                    format.get("json_schema").and_then(|j| j.get("schema")),
                ),
                Dialect::Responses => ("text.format.schema", format.get("schema")),
                Dialect::Messages => (field, format.get("schema")),
            };
            let schema =
                schema.ok_or_else(|| invalid(at, "is missing: a JSON Schema is needed"))?;
            schema_of(at, schema).map(Some)
        }
        Some(other) => Err(invalid(field, &format!("has an unknown `type` `{other}`"))),
        None => Err(invalid(field, "must have a string `type`")),
    }
}

/// `schema`, if it is a JSON Schema.
fn schema_of(field: &str, schema: &Value) -> Result<OutputFormat, ApiError> {
    if !schema.is_object() && !schema.is_boolean() {
        return Err(invalid(field, "must be a JSON Schema (an object)"));
    }
    // A `$schema` naming a draft the validator does not bundle cannot be
    // checked: the schema is taken as it is.
    let known = schema
        .get("$schema")
        .and_then(Value::as_str)
        .is_none_or(|draft| draft.contains("json-schema.org"));
    if known {
        if let Err(err) = jsonschema::meta::validate(schema) {
            return Err(invalid(
                field,
                &format!("is not a valid JSON Schema: {err}"),
            ));
        }
    }
    Ok(OutputFormat::JsonSchema(schema.clone()))
}

fn invalid(field: &str, what: &str) -> ApiError {
    ApiError::invalid(field.to_owned(), format!("`{field}` {what}"))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read(body: Value, dialect: Dialect) -> Result<Option<OutputFormat>, ApiError> {
        format(body.as_object().unwrap(), dialect)
    }

    #[test]
    fn each_door_s_field_is_read_into_one_format() {
        let schema = json!({"type": "object", "properties": {"a": {"type": "string"}}});
        let chat = json!({"response_format": {"type": "json_schema",
            "json_schema": {"name": "x", "schema": schema, "strict": true}}});
        let responses =
            json!({"text": {"format": {"type": "json_schema", "name": "x", "schema": schema}}});
        let messages =
            json!({"output_config": {"format": {"type": "json_schema", "schema": schema}}});
        let wanted = Some(OutputFormat::JsonSchema(schema.clone()));
        assert_eq!(read(chat, Dialect::Chat).unwrap(), wanted);
        assert_eq!(read(responses, Dialect::Responses).unwrap(), wanted);
        assert_eq!(read(messages, Dialect::Messages).unwrap(), wanted);
        assert_eq!(
            read(
                json!({"response_format": {"type": "json_object"}}),
                Dialect::Chat
            )
            .unwrap(),
            Some(OutputFormat::JsonObject)
        );
        assert_eq!(
            read(
                json!({"text": {"format": {"type": "text"}}}),
                Dialect::Responses
            )
            .unwrap(),
            None
        );
    }

    #[test]
    fn bad_formats_are_400s_naming_the_field() {
        let cases = [
            (
                json!({"response_format": "json"}),
                Dialect::Chat,
                "response_format",
            ),
            (
                json!({"response_format": {"type": "yaml"}}),
                Dialect::Chat,
                "response_format",
            ),
            (
                json!({"response_format": {"type": "json_schema", "json_schema": {"name": "x"}}}),
                Dialect::Chat,
                "response_format.json_schema.schema",
            ),
            (
                json!({"text": {"format": {"type": "json_schema", "schema": {"type": "bogus"}}}}),
                Dialect::Responses,
                "text.format.schema",
            ),
            (
                json!({"output_config": {"format": {"type": "json_schema", "schema": [1]}}}),
                Dialect::Messages,
                "output_config.format",
            ),
        ];
        for (body, dialect, field) in cases {
            let err = read(body.clone(), dialect).unwrap_err();
            assert_eq!(err.param.as_deref(), Some(field), "{body}: {err:?}");
        }
    }
}
