//! Replay (contract section 14): a route with `provider = "replay"` and a
//! `dir` answers from the recordings there (`record`, `cassette`): the one
//! whose request matches (the model asked for, the messages, tools, tool
//! choice and output format; the newest when several do) is played through
//! the normal pipeline, so on any door, at its recorded timing scaled by
//! `speed` (the route's, or a request's `mock.speed`; 1.0 by default; 0 as
//! fast as it can).
//!
//! A request with no recording fails with a 404 naming what was looked
//! for, unless the route has `fallback = "mock"`: then the mock answers.
//!
//! The directory is indexed by its recordings' request lines, again
//! whenever its files change (their sizes and times, as `watched` sees
//! them), so a recording made while it serves is found.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_stream::stream;
use tokio::time::Instant;

use super::cassette::{self, Line};
use super::Provider;
use crate::generation::{GenRequest, TokenEvent, TokenStream, UpstreamError};
use crate::watched::{self, Fingerprint};

/// A route answered from recordings.
pub struct Replay {
    route: String,
    dir: PathBuf,
    speed: f64,
    fallback: Option<Arc<dyn Provider>>,
    index: Mutex<Index>,
}

#[derive(Default)]
struct Index {
    fingerprint: Fingerprint,
    /// A request key (as JSON text) -> its newest recording.
    by_key: HashMap<String, PathBuf>,
}

impl Replay {
    pub fn new(
        route: &str,
        dir: PathBuf,
        speed: f64,
        fallback: Option<Arc<dyn Provider>>,
    ) -> Replay {
        Replay {
            route: route.to_owned(),
            dir,
            speed,
            fallback,
            index: Mutex::default(),
        }
    }

    /// The newest recording of `key`, indexing the directory again first
    /// if its files changed.
    fn find(&self, key: &str) -> Option<PathBuf> {
        let fingerprint = watched::fingerprint(&self.dir, "jsonl");
        let mut index = self.index.lock().unwrap_or_else(|e| e.into_inner());
        if index.fingerprint != fingerprint {
            index.by_key = read_index(&self.dir);
            index.fingerprint = fingerprint;
        }
        index.by_key.get(key).cloned()
    }
}

/// Every recording's request key, newest last (file names start with
/// their time), so the newest of a key wins.
fn read_index(dir: &Path) -> HashMap<String, PathBuf> {
    let mut by_key = HashMap::new();
    for path in watched::files(dir, "jsonl") {
        if let Some(Line::Request { key, .. }) = first_line(&path) {
            by_key.insert(key.to_string(), path);
        }
    }
    by_key
}

fn first_line(path: &Path) -> Option<Line> {
    use std::io::BufRead;
    let file = std::fs::File::open(path).ok()?;
    let mut line = String::new();
    std::io::BufReader::new(file).read_line(&mut line).ok()?;
    serde_json::from_str(&line).ok()
}

/// A recording's lines; a line that does not parse ends it there.
pub fn read(path: &Path) -> Result<Vec<Line>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut lines = Vec::new();
    for (n, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        match serde_json::from_str::<Line>(line) {
            Ok(line) => lines.push(line),
            Err(err) => return Err(format!("{}:{}: {err}", path.display(), n + 1)),
        }
    }
    Ok(lines)
}

impl Provider for Replay {
    fn generate(&self, request: GenRequest) -> TokenStream {
        let key = cassette::key(&self.route, &request);
        let Some(path) = self.find(&key.to_string()) else {
            if let Some(fallback) = &self.fallback {
                return fallback.generate(request);
            }
            let last = request.last_user_text();
            let excerpt: String = last.chars().take(60).collect();
            let message = format!(
                "no recording in {} of model `{}` for this request ({} messages; the last user message begins `{excerpt}`)",
                self.dir.display(),
                self.route,
                request.messages.len(),
            );
            return Box::pin(futures_util::stream::once(async move {
                TokenEvent::Error(UpstreamError::NoRecording(message))
            }));
        };
        // The request's `mock.speed`, else the route's.
        let speed = request.mock.speed.unwrap_or(self.speed);
        Box::pin(stream! {
            let lines = match read(&path) {
                Ok(lines) => lines,
                Err(err) => {
                    yield TokenEvent::Error(UpstreamError::Stream(format!("the recording could not be read: {err}")));
                    return;
                }
            };
            let started = Instant::now();
            for line in lines {
                let Some(event) = line.event() else {
                    continue;
                };
                if speed > 0.0 {
                    let at = Duration::from_millis(line.ms()).mul_f64(speed);
                    tokio::time::sleep_until(started + at).await;
                }
                yield event;
                if line.is_end() {
                    return;
                }
            }
            yield TokenEvent::Error(UpstreamError::Stream(
                "the recording ends with no terminal event".into(),
            ));
        })
    }
}

/// `sluice replay --list DIR`: one line per recording, oldest first: its
/// file, route, provider, how it ended, its tokens and length, and the
/// start of its last user message.
pub fn list(dir: &Path) -> Vec<String> {
    watched::files(dir, "jsonl")
        .iter()
        .map(|path| {
            let name = path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            match read(path) {
                Err(err) => format!("{name}  unreadable: {err}"),
                Ok(lines) => summary(&name, &lines),
            }
        })
        .collect()
}

fn summary(name: &str, lines: &[Line]) -> String {
    let Some(Line::Request {
        route,
        provider,
        key,
        ..
    }) = lines.first()
    else {
        return format!("{name}  not a recording (no request line first)");
    };
    let tokens = lines
        .iter()
        .filter(|l| matches!(l, Line::Token { .. }))
        .count();
    let length = lines.last().map_or(0, Line::ms);
    let ended = match lines.last() {
        Some(Line::Done { finish_reason, .. }) => finish_reason.clone(),
        Some(Line::Error {
            status: Some(status),
            ..
        }) => format!("error {status}"),
        Some(Line::Error { status: None, .. }) => "error".into(),
        Some(Line::Cut { .. }) => "cut".into(),
        Some(Line::Cancelled { .. }) => "cancelled".into(),
        Some(Line::Truncated { .. }) => "truncated".into(),
        Some(
            Line::Request { .. }
            | Line::Token { .. }
            | Line::Reasoning { .. }
            | Line::Signature { .. }
            | Line::ToolCalls { .. },
        )
        | None => "unfinished".into(),
    };
    let last_user = key["messages"]
        .as_array()
        .and_then(|m| m.iter().rev().find(|m| m[0] == "user"))
        .and_then(|m| m[1].as_str())
        .unwrap_or("");
    let excerpt: String = last_user.chars().take(40).collect();
    format!("{name}  {route} ({provider})  {ended}, {tokens} tokens in {length} ms  \"{excerpt}\"")
}
