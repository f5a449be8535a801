//! Tool calls put together from the pipeline's OpenAI `tool_calls` deltas,
//! for the doors whose protocols announce a call once and then stream its
//! arguments (the chat UI doors): each delta tells whether it starts a call
//! and which piece of arguments it carries.

use serde_json::Value;

use crate::generation::call_index;

/// One tool call as its deltas made it.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// The upstream's `index` for it.
    index: usize,
    pub id: String,
    pub name: String,
    pub arguments: String,
}

impl Call {
    /// The arguments as JSON (an object when they are empty; the text when
    /// they do not parse, so nothing the model wrote is lost).
    pub fn input(&self) -> Value {
        if self.arguments.trim().is_empty() {
            return Value::Object(serde_json::Map::new());
        }
        serde_json::from_str(&self.arguments)
            .unwrap_or_else(|_| Value::from(self.arguments.clone()))
    }
}

/// What one delta did.
pub struct Fed<'d> {
    /// Which call (a position in [`Calls::all`]).
    pub call: usize,
    /// The delta started it.
    pub new: bool,
    /// The piece of arguments it carries (may be empty).
    pub piece: &'d str,
}

/// The calls of one answer, in the order they started.
#[derive(Debug, Default)]
pub struct Calls {
    calls: Vec<Call>,
}

impl Calls {
    /// Takes one delta of a `tool_calls` array; `None` for one past
    /// `MAX_TOOL_CALLS` (in `generation::events`).
    pub fn feed<'d>(&mut self, delta: &'d Value) -> Option<Fed<'d>> {
        let index = call_index(delta)?;
        let piece = delta["function"]["arguments"].as_str().unwrap_or("");
        let (call, new) = match self.calls.iter().position(|c| c.index == index) {
            Some(at) => (at, false),
            None => {
                let id = delta["id"]
                    .as_str()
                    .filter(|id| !id.is_empty())
                    .map_or_else(|| format!("call_{index}"), str::to_owned);
                let name = delta["function"]["name"].as_str().unwrap_or("").to_owned();
                self.calls.push(Call {
                    index,
                    id,
                    name,
                    arguments: String::new(),
                });
                (self.calls.len() - 1, true)
            }
        };
        self.calls[call].arguments.push_str(piece);
        Some(Fed { call, new, piece })
    }

    pub fn get(&self, call: usize) -> &Call {
        &self.calls[call]
    }

    pub fn all(&self) -> &[Call] {
        &self.calls
    }
}
