//! The tools a client offers the model, as every door's request names them
//! (OpenAI's `function` tools, the Responses API's flat ones, Anthropic's
//! `input_schema` ones): what the mock needs to call one.
//!
//! OpenAI-compatible upstreams behind the OpenAI door get the client's own
//! `tools` (passed through); every other pairing of door and provider gets
//! these, written in the provider's shape.

use serde_json::Value;

use super::error::InvalidField;

/// One tool: its name and the JSON Schema of its arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    pub name: String,
    pub description: Option<String>,
    pub parameters: Value,
}

/// Whether the model must call a tool, in every door's terms: OpenAI's
/// `"auto"`, `"none"`, `"required"` or a named function; Anthropic's
/// `auto`, `none`, `any` or `tool`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ToolChoice {
    #[default]
    Auto,
    None,
    /// Some tool (OpenAI `"required"`, Anthropic `any`).
    Required,
    /// This tool.
    Named(String),
}

/// The tool a forcing `choice` (or the mock's `tool_call` knob) asks for,
/// among `tools`.
pub fn forced<'a>(tools: &'a [Tool], choice: &ToolChoice, knob: Option<&str>) -> Option<&'a Tool> {
    let named = |name: &str| tools.iter().find(|t| t.name == name);
    match (knob, choice) {
        (Some(name), _) => named(name),
        (None, ToolChoice::Named(name)) => named(name),
        (None, ToolChoice::Required) => tools.first(),
        (None, ToolChoice::Auto | ToolChoice::None) => None,
    }
}

/// A named choice must name one of the tools.
pub fn check_choice(tools: &[Tool], choice: &ToolChoice, field: &str) -> Result<(), InvalidField> {
    match choice {
        ToolChoice::Named(name) if !tools.iter().any(|t| &t.name == name) => {
            Err(InvalidField::new(
                field,
                format!("`{field}` names `{name}`, which is not among `tools`"),
            ))
        }
        ToolChoice::Required if tools.is_empty() => Err(InvalidField::new(
            field,
            format!("`{field}` asks for a tool call, but `tools` is empty"),
        )),
        ToolChoice::Named(_) | ToolChoice::Required | ToolChoice::Auto | ToolChoice::None => Ok(()),
    }
}
