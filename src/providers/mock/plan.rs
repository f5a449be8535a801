//! What the mock will send, decided up front from the prompt, seed and knobs,
//! so it is deterministic: reasoning (the `reasoning_tokens` knob), then an
//! answer or a tool call.
//!
//! Each text is kept once, with where to cut it; a piece becomes a `String`
//! only when it is sent (a plan of strings cost ~64 bytes per token held for
//! the whole stream).

use super::{answer, arguments};
use crate::generation::{forced, GenRequest, MockKnobs, MockMode, OutputFormat};
use crate::tokenizer::{self, Cut};

/// A text and where it is cut into the pieces it is streamed in.
#[derive(Debug, Default)]
pub struct Pieces {
    pub text: String,
    pub cuts: Vec<Cut>,
}

impl Pieces {
    fn new(text: String, cuts: Vec<Cut>) -> Pieces {
        let mut pieces = Pieces { text, cuts };
        pieces.trim();
        pieces
    }

    /// The pieces in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u32)> {
        let mut start = 0;
        self.cuts.iter().map(move |cut| {
            let piece = &self.text[start..cut.end];
            start = cut.end;
            (piece, cut.tokens)
        })
    }

    pub fn tokens(&self) -> u32 {
        self.cuts.iter().map(|c| c.tokens).sum()
    }

    /// Keeps the leading pieces that fit in `limit` tokens; true if any were cut.
    fn truncate_to_tokens(&mut self, limit: u32) -> bool {
        let cut = truncate_to_tokens(&mut self.cuts, limit);
        self.trim();
        cut
    }

    /// Only what will be sent is kept.
    fn trim(&mut self) {
        self.text.truncate(self.cuts.last().map_or(0, |c| c.end));
        self.text.shrink_to_fit();
    }
}

/// What follows the reasoning.
#[derive(Debug)]
pub enum Output {
    Answer(Pieces),
    /// One call of a tool, its arguments streamed in pieces.
    ToolCall {
        id: String,
        name: String,
        arguments: Pieces,
    },
}

#[derive(Debug)]
pub struct Plan {
    pub reasoning: Pieces,
    pub output: Output,
    pub finish_reason: &'static str,
    /// The request's stop sequence the answer was cut before, if any.
    pub stop_sequence: Option<String>,
}

impl Plan {
    pub fn new(knobs: &MockKnobs, request: &GenRequest, rng: &mut fastrand::Rng) -> Plan {
        let prompt = request.last_user_text();
        let mut reasoning = match knobs.reasoning_tokens {
            Some(tokens) if tokens > 0 => {
                let (text, cuts) = answer::reasoning(rng, prompt, tokens);
                let mut pieces = Pieces::new(text, cuts);
                pieces.truncate_to_tokens(tokens);
                pieces
            }
            Some(_) | None => Pieces::default(),
        };
        // The cap counts reasoning too, as OpenAI's does.
        let mut left = request.max_tokens;
        let mut finish_reason = "stop";
        if let Some(max) = left {
            if reasoning.truncate_to_tokens(max) {
                finish_reason = "length";
            }
            left = Some(max.saturating_sub(reasoning.tokens()));
        }
        let tool = forced(
            &request.tools,
            &request.tool_choice,
            knobs.tool_call.as_deref(),
        );
        let (output, stop_sequence) = match tool {
            Some(tool) => {
                let json = arguments::generate(&tool.parameters, rng).to_string();
                let cuts = tokenizer::cuts(&json);
                let mut arguments = Pieces::new(json, cuts);
                if finish_reason == "stop" {
                    finish_reason = "tool_calls";
                }
                if left.is_some_and(|max| arguments.truncate_to_tokens(max)) {
                    finish_reason = "length";
                }
                let call = ToolCallId::new(rng);
                (
                    Output::ToolCall {
                        id: call.0,
                        name: tool.name.clone(),
                        arguments,
                    },
                    None,
                )
            }
            None => {
                let (text, mut cuts) = answer_text(knobs, request, rng);
                // A JSON answer is whole or cut by `max_tokens` alone, as a
                // model's is.
                if let (Some(wanted), None) = (knobs.tokens, &request.format) {
                    truncate_to_tokens(&mut cuts, wanted);
                }
                let mut stop_sequence = cut_at_stop(&text, &mut cuts, &request.stop);
                let mut answer = Pieces::new(text, cuts);
                if left.is_some_and(|max| answer.truncate_to_tokens(max))
                    || finish_reason == "length"
                {
                    finish_reason = "length";
                    stop_sequence = None;
                }
                (Output::Answer(answer), stop_sequence)
            }
        };
        Plan {
            reasoning,
            output,
            finish_reason,
            stop_sequence,
        }
    }
}

/// The answer the knobs ask for, cut into pieces.
fn answer_text(
    knobs: &MockKnobs,
    request: &GenRequest,
    rng: &mut fastrand::Rng,
) -> (String, Vec<Cut>) {
    if let (None, Some(format)) = (&knobs.text, &request.format) {
        let json = structured(format, request, rng);
        let cuts = tokenizer::cuts(&json);
        return (json, cuts);
    }
    match (&knobs.text, knobs.mode.unwrap_or_default()) {
        (Some(text), _) => (text.clone(), tokenizer::cuts(text)),
        (None, MockMode::Echo) => {
            let text = request.last_user_text();
            (text.to_owned(), tokenizer::cuts(text))
        }
        (None, MockMode::Lorem) => {
            answer::compose(rng, request.last_user_text(), knobs.tokens.unwrap_or(0))
        }
    }
}

/// The JSON document a structured-output request gets: one valid against
/// its schema, or an object that answers in one field.
fn structured(format: &OutputFormat, request: &GenRequest, rng: &mut fastrand::Rng) -> String {
    match format {
        OutputFormat::JsonSchema(schema) => arguments::generate(schema, rng).to_string(),
        OutputFormat::JsonObject => {
            let (text, _) = answer::compose(rng, request.last_user_text(), 40);
            serde_json::json!({ "answer": text }).to_string()
        }
    }
}

/// A call id in OpenAI's style, from the seeded RNG so it repeats.
struct ToolCallId(String);

impl ToolCallId {
    fn new(rng: &mut fastrand::Rng) -> ToolCallId {
        let chars: String = (0..24).map(|_| rng.alphanumeric()).collect();
        ToolCallId(format!("call_{chars}"))
    }
}

/// Ends the planned pieces before the first of `stops` in the text, as a
/// model does (the stop sequence itself is not sent), and says which one.
fn cut_at_stop(text: &str, cuts: &mut Vec<Cut>, stops: &[String]) -> Option<String> {
    let planned = &text[..cuts.last().map_or(0, |c| c.end)];
    let (at, stop) = stops
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| planned.find(s.as_str()).map(|at| (at, s)))
        .min_by_key(|(at, _)| *at)?;
    cuts.retain(|c| c.end <= at);
    // The piece the stop sequence begins inside is cut again before it.
    let kept = cuts.last().map_or(0, |c| c.end);
    cuts.extend(tokenizer::cuts(&text[kept..at]).into_iter().map(|c| Cut {
        end: kept + c.end,
        tokens: c.tokens,
    }));
    Some(stop.clone())
}

/// Keeps the leading pieces that fit in `limit` tokens; true if any were cut.
fn truncate_to_tokens(cuts: &mut Vec<Cut>, limit: u32) -> bool {
    let mut used = 0u32;
    let keep = cuts
        .iter()
        .take_while(|c| {
            used += c.tokens;
            used <= limit
        })
        .count();
    let cut = keep < cuts.len();
    cuts.truncate(keep);
    cut
}
