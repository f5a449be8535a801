//! Tool calls on a route that continues: held whole, so a call cut half way
//! was never seen by the client and its continuation's calls can be told
//! from repeats.

use serde_json::Value;

use crate::generation::{call_index, merge_tool_calls};

/// Tool-call deltas held until their call is whole.
#[derive(Default)]
pub struct HeldCalls {
    /// The call being assembled (its index, and itself as the only entry
    /// of a merge list), and its arguments' length so far.
    held: Option<(usize, Vec<Value>, usize)>,
    /// Calls the client has whole, by index: `0..relayed`.
    relayed: usize,
    /// Set at a seam: the continuation's calls below it are repeats.
    repeats_below: usize,
}

/// A held call whose arguments pass this is relayed as it is so far, and
/// the rest as it comes.
const MAX_HELD_ARGUMENTS: usize = 256 * 1024;

impl HeldCalls {
    /// Takes one `tool_calls` array: the calls it made whole, if any.
    pub fn take(&mut self, deltas: &Value) -> Option<Value> {
        let mut out = Vec::new();
        for delta in deltas.as_array().into_iter().flatten() {
            let Some(index) = call_index(delta) else {
                continue;
            };
            if index < self.repeats_below {
                continue;
            }
            if self.held.as_ref().is_some_and(|(held, ..)| *held != index) {
                out.extend(self.finish_one());
            }
            let (_, calls, bytes) = self.held.get_or_insert_with(|| (index, Vec::new(), 0));
            let mut alone = delta.clone();
            alone["index"] = Value::from(0);
            *bytes += alone["function"]["arguments"].as_str().map_or(0, str::len);
            merge_tool_calls(calls, &Value::Array(vec![alone]));
            if *bytes > MAX_HELD_ARGUMENTS {
                out.extend(self.finish_one());
            }
        }
        (!out.is_empty()).then_some(Value::Array(out))
    }

    /// The held call as one delta, if any.
    fn finish_one(&mut self) -> Option<Value> {
        let (index, calls, _) = self.held.take()?;
        let mut call = calls.into_iter().next()?;
        call["index"] = Value::from(index);
        self.relayed = self.relayed.max(index + 1);
        Some(call)
    }

    /// The answer ended: the held call, whole.
    pub fn finish(&mut self) -> Option<Value> {
        self.finish_one().map(|call| Value::Array(vec![call]))
    }

    /// The call was cut: the client never saw it.
    pub fn drop_held(&mut self) {
        self.held = None;
    }

    /// A continuation begins: its calls the client has whole are repeats.
    pub fn continuing(&mut self) {
        self.repeats_below = self.relayed;
    }
}
