//! Scenarios (contract section 13): scripted answers for the mock, so a
//! frontend developer can build and demo a flow ("when the user says X, call
//! tool Y with Z, then answer W").
//!
//! `[mock] scenarios_dir` holds TOML files of `[[scenarios]]`, tried in
//! file-name order, then in order within a file; the first whose `match`
//! holds answers a mock request with its `reply`, and a request that matches
//! none gets the generated answer. A reply is folded into the request
//! ([`Scenarios::apply`]) as the mock's knobs (`text`, `json` as its text,
//! `error_status`, any other knob, under the request's own) or as scripted
//! tool calls, so the mock streams it like any answer, on every door.
//!
//! Files are read at start (a bad file is a config error naming the file
//! and the line) and again when they change, polled once a second by the
//! server; a bad edit then keeps the last good set and is logged.
//!
//! What it may not do: answer a request for a model that is not a mock.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use globset::GlobMatcher;
use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use crate::generation::{GenRequest, MockKnobs};
use crate::parse::deserialize_strict;
use crate::watched::{fingerprint, Fingerprint};

/// One file's scenarios, as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    scenarios: Vec<Written>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Written {
    name: String,
    #[serde(default, rename = "match")]
    when: When,
    reply: toml::Spanned<toml::Table>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct When {
    prompt_contains: Option<String>,
    prompt_regex: Option<String>,
    model: Option<String>,
    door: Option<String>,
    #[serde(default)]
    after_tool: bool,
}

/// The doors a scenario may name.
const DOORS: &[&str] = &["native", "openai", "responses", "messages", "ui", "agui"];

/// One scenario, ready to match.
#[derive(Debug)]
pub struct Scenario {
    pub name: String,
    contains: Option<String>,
    regex: Option<Regex>,
    model: Option<GlobMatcher>,
    door: Option<String>,
    after_tool: bool,
    reply: Reply,
}

/// What a scenario answers.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The mock's knobs: the text (or JSON) to stream, `error_status`, pace.
    pub knobs: MockKnobs,
    /// Tool calls to make instead of answering: name and arguments.
    pub tool_calls: Vec<(String, Value)>,
}

/// The scenarios of a directory, reloadable while requests read them.
pub struct Scenarios {
    dir: Option<PathBuf>,
    current: RwLock<Arc<Set>>,
}

#[derive(Default)]
struct Set {
    scenarios: Arc<[Scenario]>,
    fingerprint: Fingerprint,
}

/// A bad scenario file: which, where and why.
#[derive(Debug)]
pub struct ScenarioError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}, line {line}: {}", self.file.display(), self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl Scenarios {
    /// None at all (no directory).
    pub fn none() -> Scenarios {
        Scenarios {
            dir: None,
            current: RwLock::default(),
        }
    }

    /// The scenarios of `dir`, or the first bad file's error.
    pub fn load(dir: Option<&Path>) -> Result<Scenarios, ScenarioError> {
        let set = match dir {
            Some(dir) => read(dir)?,
            None => Set::default(),
        };
        Ok(Scenarios {
            dir: dir.map(Path::to_owned),
            current: RwLock::new(Arc::new(set)),
        })
    }

    fn set(&self) -> Arc<Set> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Re-reads the directory if any file changed; a bad edit keeps the
    /// last good set and is logged.
    pub fn reload_if_changed(&self) {
        let Some(dir) = &self.dir else {
            return;
        };
        if fingerprint(dir, "toml") == self.set().fingerprint {
            return;
        }
        match read(dir) {
            Ok(set) => {
                tracing::info!(dir = %dir.display(), scenarios = set.scenarios.len(), "mock scenarios loaded");
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(set);
            }
            Err(err) => {
                tracing::error!("mock scenarios not reloaded, the last good ones stay: {err}");
                // The same set, with the new fingerprint: not again until
                // the files change again.
                let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
                let kept = Set {
                    scenarios: current.scenarios.clone(),
                    fingerprint: fingerprint(dir, "toml"),
                };
                *current = Arc::new(kept);
            }
        }
    }

    /// Folds the first scenario matching `request` (a request for `model`
    /// through `door`) into it; its name, if one matched.
    pub fn apply(&self, door: &str, model: &str, request: &mut GenRequest) -> Option<String> {
        let set = self.set();
        let scenario = set
            .scenarios
            .iter()
            .find(|s| s.matches(door, model, request))?;
        request.mock = scenario.reply.knobs.overridden_by(&request.mock);
        request.scripted_calls = scenario.reply.tool_calls.clone();
        Some(scenario.name.clone())
    }
}

impl Scenario {
    fn matches(&self, door: &str, model: &str, request: &GenRequest) -> bool {
        let prompt = request.last_user_text();
        let after_tool = !request.tool_results.is_empty();
        self.after_tool == after_tool
            && self.door.as_deref().is_none_or(|d| d == door)
            && self.model.as_ref().is_none_or(|glob| glob.is_match(model))
            && self
                .contains
                .as_ref()
                .is_none_or(|text| prompt.to_lowercase().contains(text))
            && self
                .regex
                .as_ref()
                .is_none_or(|regex| regex.is_match(prompt))
    }
}

fn read(dir: &Path) -> Result<Set, ScenarioError> {
    let fingerprint = fingerprint(dir, "toml");
    let mut scenarios = Vec::new();
    for (path, _, _) in &fingerprint {
        let text = std::fs::read_to_string(path).map_err(|err| ScenarioError {
            file: path.clone(),
            line: None,
            message: format!("cannot read the file: {err}"),
        })?;
        scenarios.extend(parse(&text).map_err(|(line, message)| ScenarioError {
            file: path.clone(),
            line,
            message,
        })?);
    }
    Ok(Set {
        scenarios: scenarios.into(),
        fingerprint,
    })
}

/// The line of byte `at` of `text`, from 1.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

/// One file's scenarios, or the line and the reason it is bad.
fn parse(text: &str) -> Result<Vec<Scenario>, (Option<usize>, String)> {
    let file: File = toml::from_str(text).map_err(|err| {
        let line = err.span().map(|span| line_of(text, span.start));
        (line, err.message().to_owned())
    })?;
    file.scenarios
        .into_iter()
        .map(|written| {
            let line = line_of(text, written.reply.span().start);
            let name = written.name.clone();
            scenario(written)
                .map_err(|message| (Some(line), format!("scenario `{name}`: {message}")))
        })
        .collect()
}

fn scenario(written: Written) -> Result<Scenario, String> {
    let when = written.when;
    let regex = when
        .prompt_regex
        .as_deref()
        .map(|r| Regex::new(r).map_err(|err| format!("match.prompt_regex: {err}")))
        .transpose()?;
    let model = when
        .model
        .as_deref()
        .map(|m| {
            globset::Glob::new(m)
                .map(|glob| glob.compile_matcher())
                .map_err(|err| format!("match.model: {err}"))
        })
        .transpose()?;
    if let Some(door) = &when.door {
        if !DOORS.contains(&door.as_str()) {
            return Err(format!(
                "match.door: unknown door `{door}`, expected one of {}",
                DOORS.join(", ")
            ));
        }
    }
    Ok(Scenario {
        name: written.name,
        contains: when.prompt_contains.map(|c| c.to_lowercase()),
        regex,
        model,
        door: when.door,
        after_tool: when.after_tool,
        reply: reply(written.reply.into_inner())?,
    })
}

/// A reply: exactly one of `text`, `json`, `tool_calls`, `error_status`,
/// and any mock knob.
fn reply(mut table: toml::Table) -> Result<Reply, String> {
    let answers = ["text", "json", "tool_calls", "error_status"];
    let given: Vec<&str> = answers
        .into_iter()
        .filter(|k| table.contains_key(*k))
        .collect();
    if given.len() != 1 {
        return Err(format!(
            "reply needs exactly one of text, json, tool_calls, error_status (it has {})",
            if given.is_empty() {
                "none".to_owned()
            } else {
                given.join(", ")
            }
        ));
    }
    let json = table.remove("json").map(|json| to_json(&json));
    let calls = table.remove("tool_calls").map(|calls| to_json(&calls));
    let mut knobs = serde_json::Map::new();
    for (key, value) in table {
        knobs.insert(key, to_json(&value));
    }
    if let Some(json) = json {
        if !json.is_object() && !json.is_array() {
            return Err("reply.json must be a table or an array".into());
        }
        knobs.insert("text".into(), Value::from(json.to_string()));
    }
    let knobs: MockKnobs = deserialize_strict(Value::Object(knobs))
        .map_err(|err| format!("reply: {}", err.message))?;
    knobs
        .validate()
        .map_err(|bad| format!("reply.{}: {}", bad.field, bad.message))?;
    let tool_calls = match calls {
        None => Vec::new(),
        Some(Value::Array(calls)) if !calls.is_empty() => calls
            .into_iter()
            .enumerate()
            .map(|(i, call)| match call {
                Value::Object(mut call) => {
                    let name = match call.remove("name") {
                        Some(Value::String(name)) if !name.is_empty() => name,
                        _ => return Err(format!("reply.tool_calls[{i}].name must be a string")),
                    };
                    let arguments = call
                        .remove("arguments")
                        .unwrap_or(Value::Object(Default::default()));
                    if let Some(other) = call.keys().next() {
                        return Err(format!("reply.tool_calls[{i}]: unknown key `{other}`"));
                    }
                    Ok((name, arguments))
                }
                _ => Err(format!(
                    "reply.tool_calls[{i}] must be a table {{name, arguments}}"
                )),
            })
            .collect::<Result<_, _>>()?,
        Some(_) => return Err("reply.tool_calls must be a non-empty list".into()),
    };
    Ok(Reply { knobs, tool_calls })
}

fn to_json(value: &toml::Value) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_files_name_the_line_and_the_reason() {
        let unknown = "[[scenarios]]\nname = \"a\"\nmatch.prompt_contains = \"x\"\nmatch.colour = \"red\"\nreply.text = \"hi\"\n";
        let (line, message) = parse(unknown).unwrap_err();
        assert_eq!(line, Some(4), "{message}");
        assert!(message.contains("colour"), "{message}");
        let two =
            "[[scenarios]]\nname = \"a\"\n\n[scenarios.reply]\ntext = \"hi\"\njson = { a = 1 }\n";
        let (line, message) = parse(two).unwrap_err();
        assert_eq!(line, Some(4), "{message}");
        assert!(message.contains("exactly one"), "{message}");
        let knob = "[[scenarios]]\nname = \"a\"\nreply = { text = \"hi\", sped = 3 }\n";
        let (_, message) = parse(knob).unwrap_err();
        assert!(message.contains("sped"), "{message}");
    }
}
