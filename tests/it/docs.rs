//! The docs against the code: every key the config accepts is documented,
//! and the README's `curl` examples run against a live sluice on its
//! embedded default (the mock), as a newcomer would paste them.

use std::path::Path;
use std::process::Command;

use sluice::config::Config;

use crate::common::*;

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// The keys a table accepts, from the error an unknown key gets (serde's
/// "unknown field `zzz`, expected one of `a`, `b`", or "expected `a` or
/// `b`"); `None` when `toml` fails for another reason (the key is not a
/// table of that shape).
fn keys_of(toml: &str) -> Option<Vec<String>> {
    let err = Config::parse(toml, |_| Some("x".into())).err()?;
    let unknown = err.message.split("unknown field").nth(1)?;
    let listed = unknown.split_once("expected")?.1;
    Some(
        listed
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect(),
    )
}

/// Whether `doc` documents `key`: as a TOML line (`key = ...`, perhaps
/// commented out) or named in backticks.
fn documents(doc: &str, key: &str) -> bool {
    doc.lines().any(|line| {
        let line = line.trim_start().trim_start_matches('#').trim_start();
        line.starts_with(&format!("{key} ="))
    }) || doc.contains(&format!("`{key}`"))
        || doc.contains(&format!("`{key} ="))
}

#[test]
fn every_config_key_is_documented() {
    let reference = read("docs/configuration.md");
    // A model's mock knobs are listed with the mock.
    let mock = read("docs/mock.md");
    let top = keys_of("zzz_unknown = 1\n").expect("the top level lists its keys");
    assert!(top.len() > 10, "{top:?}");
    let mut missing = Vec::new();
    for key in &top {
        if !documents(&reference, key) && !reference.contains(&format!("[{key}]")) {
            missing.push(key.clone());
        }
        let table = keys_of(&format!("[{key}]\nzzz_unknown = 1\n"))
            .map(|keys| (format!("[{key}]"), keys))
            .or_else(|| {
                keys_of(&format!("[[{key}]]\nzzz_unknown = 1\n"))
                    .map(|keys| (format!("[[{key}]]"), keys))
            });
        let Some((section, keys)) = table else {
            continue;
        };
        assert!(
            reference.contains(&section),
            "docs/configuration.md has no {section} section"
        );
        for inner in keys {
            let known =
                documents(&reference, &inner) || (key == "models" && documents(&mock, &inner));
            if !known {
                missing.push(format!("{section} {inner}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "config keys missing from docs/configuration.md: {missing:?}"
    );
}

/// The `curl` commands of a Markdown file's code and table cells, one a
/// line, aimed at the default address.
fn curl_examples(markdown: &str) -> Vec<String> {
    markdown
        .lines()
        .filter_map(|line| {
            // Inline code (`curl ...`) ends at its backtick; a code block's
            // line is the command.
            let command = match line.find("`curl ") {
                Some(at) => line[at + 1..].split('`').next()?,
                None => line
                    .trim_start()
                    .strip_prefix("$ ")
                    .unwrap_or(line.trim_start()),
            };
            let command = command.trim_end();
            if !command.starts_with("curl ") {
                return None;
            }
            command
                .contains("localhost:7800")
                .then(|| command.to_owned())
        })
        .collect()
}

#[tokio::test]
async fn the_readmes_curl_examples_run_against_the_default_server() {
    if Command::new("curl").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("SLUICE_REQUIRE_SDKS").is_none(),
            "curl is not installed"
        );
        return;
    }
    // The embedded default: every model name is the mock.
    let server = spawn(Config::parse("", |_| None).unwrap()).await;
    let address = server.base.trim_start_matches("http://").to_owned();
    let examples = curl_examples(&read("README.md"));
    assert!(examples.len() >= 4, "{examples:?}");
    for example in examples {
        let command = example.replace("localhost:7800", &address).replacen(
            "curl ",
            "curl -sS --fail --max-time 30 ",
            1,
        );
        let output = tokio::task::spawn_blocking(move || {
            Command::new("sh").arg("-c").arg(&command).output().unwrap()
        })
        .await
        .unwrap();
        let body = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{example}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        // A stream that ended in its terminal frame, not an error.
        let ended = body.contains("event: done") || body.contains("data: [DONE]");
        assert!(ended && !body.contains("event: error"), "{example}: {body}");
    }
}

#[test]
fn the_reference_lists_every_endpoint_and_error_type() {
    let reference = read("docs/reference.md");
    let doors = read("src/doors/mod.rs");
    let paths: Vec<String> = doors
        .lines()
        .filter_map(|line| line.trim().strip_prefix("pub const "))
        .filter_map(|line| line.split('"').nth(1))
        .filter(|path| path.starts_with("/v1/"))
        .map(|path| path.replace("{*id}", "{id}"))
        .collect();
    assert!(paths.len() >= 20, "{paths:?}");
    let errors = read("src/error.rs");
    let types: Vec<&str> = errors
        .lines()
        .filter(|line| line.contains("ErrorKind::") && line.contains("=> \""))
        .filter_map(|line| line.split('"').nth(1))
        .collect();
    assert!(types.len() >= 15, "{types:?}");
    let missing: Vec<&str> = paths
        .iter()
        .map(String::as_str)
        .filter(|path| {
            // `/v1/generations/{id}/pause` is listed with its siblings.
            let listed = path.rsplit_once('/').map(|(_, last)| format!("`/{last}`"));
            !reference.contains(&format!("`{path}`"))
                && !listed.is_some_and(|last| reference.contains(&last))
        })
        .chain(
            types
                .iter()
                .copied()
                .filter(|kind| !reference.contains(&format!("| `{kind}` |"))),
        )
        .collect();
    assert!(
        missing.is_empty(),
        "missing from docs/reference.md: {missing:?}"
    );
}

#[test]
fn the_metrics_table_lists_every_metric() {
    let operations = read("docs/operations.md");
    let names = read("src/metrics.rs");
    let missing: Vec<&str> = names
        .lines()
        .filter(|line| line.starts_with("pub const ") && line.contains(": &str"))
        .filter_map(|line| line.split('"').nth(1))
        .filter(|name| !operations.contains(&format!("| `{name}` |")))
        .collect();
    assert!(
        missing.is_empty(),
        "missing from docs/operations.md's metrics table: {missing:?}"
    );
}
