//! What the mock will send, decided up front from the prompt, seed and knobs,
//! so it is deterministic: reasoning (the `reasoning_tokens` knob), then an
//! answer or a tool call.
//!
//! Each text is kept once, with where to cut it; a piece becomes a `String`
//! only when it is sent (a plan of strings cost ~64 bytes per token held for
//! the whole stream).

use super::{answer, arguments};
use std::collections::HashSet;

use crate::generation::{forced, GenRequest, MockKnobs, MockMode, OutputFormat, Tool, ToolChoice};
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

    /// How many leading pieces make up `prefill` (an answer being
    /// continued, section 17): 0 when it is not this answer's beginning.
    pub fn continued_after(&self, prefill: &str) -> usize {
        if prefill.is_empty() || !self.text.starts_with(prefill) {
            return 0;
        }
        self.cuts
            .iter()
            .take_while(|cut| cut.end <= prefill.len())
            .count()
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
    /// Calls of tools, in order, each one's arguments streamed in pieces.
    ToolCalls(Vec<Call>),
}

/// One call of a tool.
#[derive(Debug)]
pub struct Call {
    pub id: String,
    pub name: String,
    pub arguments: Pieces,
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
        // A scenario's calls, else the ones the mock decides on; each with
        // its arguments as JSON text.
        let tools: Vec<(&str, String)> = match request.scripted_calls.is_empty() {
            false => request
                .scripted_calls
                .iter()
                .map(|(name, arguments)| (name.as_str(), arguments.to_string()))
                .collect(),
            true => calls(knobs, request)
                .into_iter()
                .map(|tool| {
                    let prompt = request.last_user_text();
                    let json = arguments::generate(&tool.parameters, rng, prompt).to_string();
                    (tool.name.as_str(), json)
                })
                .collect(),
        };
        let (output, stop_sequence) = match tools.is_empty() {
            false => {
                if finish_reason == "stop" {
                    finish_reason = "tool_calls";
                }
                let mut calls = Vec::with_capacity(tools.len());
                for (name, json) in tools {
                    let cuts = tokenizer::cuts(&json);
                    let mut arguments = Pieces::new(json, cuts);
                    if left.is_some_and(|max| arguments.truncate_to_tokens(max)) {
                        finish_reason = "length";
                    }
                    left = left.map(|max| max.saturating_sub(arguments.tokens()));
                    calls.push(Call {
                        id: ToolCallId::new(rng).0,
                        name: name.to_owned(),
                        arguments,
                    });
                    if finish_reason == "length" {
                        break;
                    }
                }
                (Output::ToolCalls(calls), None)
            }
            true => {
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
    // No format asked for, but a schema in the conversation and the word
    // JSON (instructor's MD_JSON, a hand-written prompt): the JSON in a
    // fenced block, as a model answers such a prompt.
    if let (None, None, true) = (
        &knobs.text,
        &request.format,
        request.tool_results.is_empty(),
    ) {
        if let Some(schema) = schema_in(request, true) {
            let json = arguments::generate(&schema, rng, request.last_user_text());
            let text = format!("```json\n{json}\n```");
            let cuts = tokenizer::cuts(&text);
            return (text, cuts);
        }
    }
    if let (None, false) = (&knobs.text, request.tool_results.is_empty()) {
        let text = quoting(&request.tool_results);
        let cuts = tokenizer::cuts(&text);
        return (text, cuts);
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

/// The tools the mock calls, the way a model decides (section 13): a forcing
/// `tool_choice` or the `tool_call` knob names them; with `auto`, the tools
/// relevant to the last user message (its name, or a word of four letters
/// or more of its description, in that message, ignoring case), each once
/// in the order offered, or the first alone when parallel calls are off.
/// Never right after a tool result, unless a forcing choice says so: the
/// knob applies only to turns that do not answer a tool.
fn calls<'a>(knobs: &MockKnobs, request: &'a GenRequest) -> Vec<&'a Tool> {
    let after_tool = !request.tool_results.is_empty();
    let knob = knobs.tool_call.as_deref().filter(|_| !after_tool);
    if let Some(tool) = forced(&request.tools, &request.tool_choice, knob) {
        return vec![tool];
    }
    match (&request.tool_choice, after_tool) {
        (ToolChoice::Auto, false) => {}
        (ToolChoice::Auto, true)
        | (ToolChoice::None | ToolChoice::Required | ToolChoice::Named(_), _) => return Vec::new(),
    }
    let said: HashSet<String> = words(request.last_user_text()).collect();
    let prompt = request.last_user_text().to_lowercase();
    let mut relevant: Vec<&Tool> = request
        .tools
        .iter()
        .filter(|tool| {
            prompt.contains(&tool.name.to_lowercase())
                || tool.description.as_deref().is_some_and(|description| {
                    words(description).any(|word| word.chars().count() >= 4 && said.contains(&word))
                })
        })
        .collect();
    if request.parallel_tool_calls == Some(false) {
        relevant.truncate(1);
    }
    relevant
}

/// The words of `text`, lowercased.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .map(str::to_lowercase)
}

/// The answer to tool results: each quoted (its first 200 characters).
fn quoting(results: &[String]) -> String {
    let quoted: Vec<String> = results
        .iter()
        .map(|result| {
            let head: String = result.chars().take(200).collect();
            format!("\"{head}\"")
        })
        .collect();
    match quoted.as_slice() {
        [one] => format!("The tool returned {one}. That is the answer to your question."),
        many => format!(
            "The tools returned {}. Together they answer your question.",
            many.join(" and ")
        ),
    }
}

/// The JSON document a structured-output request gets: one valid against
/// its schema, or an object that answers in one field.
fn structured(format: &OutputFormat, request: &GenRequest, rng: &mut fastrand::Rng) -> String {
    match format {
        OutputFormat::JsonSchema(schema) => {
            arguments::generate(schema, rng, request.last_user_text()).to_string()
        }
        // A schema the prompt gives (LangChain's json_mode, instructor's
        // JSON mode) is followed; else an object that answers in one field.
        OutputFormat::JsonObject => match schema_in(request, false) {
            Some(schema) => arguments::generate(&schema, rng, request.last_user_text()).to_string(),
            None => {
                let (text, _) = answer::compose(rng, request.last_user_text(), 40);
                serde_json::json!({ "answer": text }).to_string()
            }
        },
    }
}

/// A JSON Schema written into the conversation (an object with
/// `properties`, or `"type": "object"`), the first found; with `json_asked`
/// only in a message that also says "json". At most [`SCHEMA_TRIES`] places
/// per message are tried, so a long prompt costs little.
fn schema_in(request: &GenRequest, json_asked: bool) -> Option<serde_json::Value> {
    request
        .messages
        .iter()
        .filter(|m| !json_asked || m.content.to_ascii_lowercase().contains("json"))
        .find_map(|m| {
            m.content
                .match_indices('{')
                .take(SCHEMA_TRIES)
                .find_map(|(at, _)| {
                    let mut values = serde_json::Deserializer::from_str(&m.content[at..])
                        .into_iter::<serde_json::Value>();
                    match values.next() {
                        Some(Ok(serde_json::Value::Object(object)))
                            if object.contains_key("properties")
                                || object.get("type").and_then(|t| t.as_str())
                                    == Some("object") =>
                        {
                            Some(serde_json::Value::Object(object))
                        }
                        _ => None,
                    }
                })
        })
}

/// Where in one message a schema is looked for, at most.
const SCHEMA_TRIES: usize = 16;

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
