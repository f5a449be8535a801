//! The fields of section 1 that the chat UI doors take beside their own
//! protocol's: what a page adds through its transport's `body` (the AI SDK)
//! or its `forwardedProps` (AG-UI): `model`, `system`, `template` and
//! `vars`, `mock` and the sampling settings. Read with the native door's
//! strictness: a wrong type or an unknown field is a 400 naming it.
//!
//! What it may not do: read a door's conversation; the door hands over its
//! messages already in the text view.

use serde::Deserialize;
use serde_json::{Map, Value};

use super::Stop;
use crate::error::ApiError;
use crate::generation::{GenRequest, Message, MockKnobs, Role};
use crate::parse::deserialize_strict;
use crate::templates::Templates;

/// A conversation as a UI door read it, in both views: the text view
/// (tool results as user text) and, when it holds tool calls, Chat
/// Completions' own messages for OpenAI-compatible upstreams.
#[derive(Debug, Default)]
pub struct Conversation {
    pub text: Vec<Message>,
    pub raw: Vec<Value>,
    /// The results of the tool calls the conversation ends with: what the
    /// next answer is to use.
    pub trailing_results: Vec<String>,
    pub has_tools: bool,
}

/// The section 1 fields of a UI door's request.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub model: Option<String>,
    pub system: Option<String>,
    pub template: Option<String>,
    pub vars: Option<Map<String, Value>>,
    pub max_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub seed: Option<u64>,
    pub stop: Option<Stop>,
    pub mock: Option<MockKnobs>,
}

/// The field names [`Settings`] reads, for doors that must pick them out of
/// an object that also holds other things (AG-UI's `forwardedProps`).
pub const FIELDS: &[&str] = &[
    "model",
    "system",
    "template",
    "vars",
    "max_tokens",
    "temperature",
    "top_p",
    "seed",
    "stop",
    "mock",
];

impl Settings {
    /// The settings in `fields` (what is left of the body once the door took
    /// its own fields out), strictly.
    pub fn read(fields: Map<String, Value>) -> Result<Settings, ApiError> {
        deserialize_strict(Value::Object(fields))
    }

    /// The request for a door's `conversation`, with the system prompt
    /// first and the template rendered over the last user message (in both
    /// views), and the tool results it ends with; and the model asked for
    /// (the request's, else the template's). Not yet validated: the door
    /// adds its tools, then calls [`GenRequest::validate`].
    pub fn into_generation(
        self,
        templates: &Templates,
        conversation: Conversation,
    ) -> Result<(GenRequest, Option<String>), ApiError> {
        let Conversation {
            text,
            raw,
            trailing_results,
            has_tools,
        } = conversation;
        let text_len = text.len();
        let templated = self.template.is_some();
        let (mut generation, model) = self.text_view(templates, text)?;
        generation.tool_results = trailing_results;
        if has_tools {
            generation.raw_messages = Some(raw_messages(&generation, text_len, templated, raw));
        }
        Ok((generation, model))
    }

    /// The request for the text view of a conversation.
    fn text_view(
        self,
        templates: &Templates,
        mut conversation: Vec<Message>,
    ) -> Result<(GenRequest, Option<String>), ApiError> {
        let mut system = self.system;
        let mut model = self.model;
        match (&self.template, &self.vars) {
            (Some(name), vars) => {
                let Some(last) = conversation.last_mut().filter(|m| m.role == Role::User) else {
                    return Err(ApiError::invalid(
                        "template",
                        "`template` renders the last user message: the conversation must end with one",
                    ));
                };
                let empty = Map::new();
                let rendered =
                    templates.render(name, Some(&last.content), vars.as_ref().unwrap_or(&empty))?;
                last.content = rendered.user_message;
                // The template's system prompt wins: it is the server's to set.
                system = rendered.system.or(system);
                model = model.or(rendered.model);
            }
            (None, Some(_)) => {
                return Err(ApiError::invalid(
                    "vars",
                    "`vars` only applies with `template`",
                ))
            }
            (None, None) => {}
        }
        if !conversation.iter().any(|m| m.role != Role::System) {
            return Err(ApiError::invalid(
                "messages",
                "`messages` must hold at least one user or assistant message",
            ));
        }
        let mut messages = Vec::with_capacity(conversation.len() + 1);
        if let Some(system) = system {
            messages.push(Message {
                role: Role::System,
                content: system,
            });
        }
        messages.extend(conversation);
        let generation = GenRequest {
            messages,
            max_tokens: self.max_tokens,
            temperature: self.temperature,
            top_p: self.top_p,
            seed: self.seed,
            stop: Stop::into_vec(self.stop),
            mock: self.mock.unwrap_or_default(),
            ..GenRequest::default()
        };
        Ok((generation, model))
    }
}

/// Chat Completions' messages for a request made by
/// [`Settings::into_generation`] from a conversation of `text_len` text
/// messages, whose door also read it into `raw`: with the system prompt
/// the settings put first, and, when a template rendered the last user
/// message (`templated`: the conversation then ends with it in both
/// views), that message as rendered.
fn raw_messages(
    generation: &GenRequest,
    text_len: usize,
    templated: bool,
    mut raw: Vec<Value>,
) -> Vec<Value> {
    if let (true, Some(text), Some(last)) = (templated, generation.messages.last(), raw.last_mut())
    {
        last["content"] = Value::from(text.content.clone());
    }
    let added = (generation.messages.len() > text_len)
        .then(|| generation.messages.first())
        .flatten()
        .map(|m| serde_json::json!({"role": "system", "content": m.content}));
    added.into_iter().chain(raw).collect()
}
