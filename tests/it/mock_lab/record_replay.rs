//! Section 14, record and replay: a route with `record = true` writes its
//! exchanges with the fake OpenAI upstream to `[record] dir` (no key in
//! them); a `replay` route answers from them on all four doors with the same
//! tokens, finish reason and usage, at the recorded timing; a request with no
//! recording is a 404 naming it, or the mock's answer with `fallback`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common::fake_openai::{self, UPSTREAM_KEY};
use crate::common::*;

const CLIENT_KEY: &str = "sk-client-key-0123456789";

struct Cassettes(PathBuf);

impl Cassettes {
    fn new() -> Cassettes {
        let dir = std::env::temp_dir().join(format!(
            "sluice-cassettes-{}-{}",
            std::process::id(),
            crate::common::binary::fastrand()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Cassettes(dir)
    }

    fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        files
    }
}

impl Drop for Cassettes {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn auth() -> String {
    format!("[auth]\napi_keys = [\"{CLIENT_KEY}\"]\n")
}

/// A server recording model `gpt` (the fake's `behaviour`) into `dir`.
async fn recorder(upstream: &str, behaviour: &str, dir: &Path) -> Server {
    let toml = format!(
        "{}[record]\ndir = {:?}\n[[models]]\nname = \"gpt\"\nprovider = \"openai\"\nbase_url = \"{upstream}\"\n\
         api_key_env = \"FAKE_KEY\"\nupstream_model = \"{behaviour}\"\nretries = 0\nrecord = true\n",
        auth(),
        dir.display().to_string()
    );
    spawn(config_with_env(&toml, &[("FAKE_KEY", UPSTREAM_KEY)])).await
}

/// A server answering model `gpt` from `dir`.
async fn replayer(dir: &Path, extra: &str) -> Server {
    spawn(config(&format!(
        "{}[[models]]\nname = \"gpt\"\nprovider = \"replay\"\ndir = {:?}\n{extra}",
        auth(),
        dir.display().to_string()
    )))
    .await
}

async fn post(server: &Server, path: &str, body: Value) -> Received {
    receive(
        client()
            .post(server.url(path))
            .bearer_auth(CLIENT_KEY)
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await
}

fn chat_body(stream: bool) -> Value {
    json!({"model": "gpt", "stream": stream, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Say hello"}]})
}

/// The chat door's text, finish reason and usage.
fn chat_answer(got: &Received) -> (String, String, Value) {
    let mut text = String::new();
    let (mut finish, mut usage) = (String::new(), Value::Null);
    for event in got.events.iter().filter(|e| e.data != "[DONE]") {
        let chunk: Value = serde_json::from_str(&event.data).unwrap();
        if let Some(piece) = chunk["choices"][0]["delta"]["content"].as_str() {
            text.push_str(piece);
        }
        if let Some(reason) = chunk["choices"][0]["finish_reason"].as_str() {
            finish = reason.to_owned();
        }
        if !chunk["usage"].is_null() {
            usage = chunk["usage"].clone();
        }
    }
    (text, finish, usage)
}

#[tokio::test]
async fn a_recording_replays_on_every_door_with_its_tokens_finish_and_usage() {
    let cassettes = Cassettes::new();
    let upstream = fake_openai::start().await;
    let recording = recorder(&upstream.base_url, "ok", &cassettes.0).await;
    let recorded = post(&recording, "/v1/chat/completions", chat_body(true)).await;
    assert_eq!(recorded.status, 200, "{}", recorded.text);
    let (text, finish, usage) = chat_answer(&recorded);
    assert_eq!(text, fake_openai::TOKENS.concat());

    let files = cassettes.files();
    assert_eq!(files.len(), 1, "one file per exchange");
    let written = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        !written.contains(UPSTREAM_KEY),
        "no upstream key: {written}"
    );
    assert!(!written.contains(CLIENT_KEY), "no client key: {written}");
    let lines: Vec<Value> = written
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["kind"], "request");
    assert_eq!(lines.last().unwrap()["kind"], "done");

    let replay = replayer(&cassettes.0, "").await;
    let before = upstream
        .seen
        .requests
        .load(std::sync::atomic::Ordering::SeqCst);
    // The OpenAI door.
    let again = post(&replay, "/v1/chat/completions", chat_body(true)).await;
    assert_eq!(
        chat_answer(&again),
        (text.clone(), finish.clone(), usage.clone())
    );
    // The native door.
    let native = post(
        &replay,
        "/v1/stream",
        json!({"model": "gpt", "prompt": "Say hello"}),
    )
    .await;
    assert_eq!(native.token_text(), text);
    let done = native.terminal_json();
    assert_eq!(done["finish_reason"], finish.as_str());
    assert_eq!(
        done["usage"]["completion_tokens"],
        usage["completion_tokens"]
    );
    // The Responses door.
    let whole = post(
        &replay,
        "/v1/responses",
        json!({"model": "gpt", "input": "Say hello"}),
    )
    .await;
    let whole = whole.json();
    assert_eq!(whole["output"][0]["content"][0]["text"], text.as_str());
    assert_eq!(whole["status"], "completed");
    assert_eq!(whole["usage"]["output_tokens"], usage["completion_tokens"]);
    // The Messages door.
    let messages = post(
        &replay,
        "/v1/messages",
        json!({"model": "gpt", "max_tokens": 64,
        "messages": [{"role": "user", "content": "Say hello"}]}),
    )
    .await;
    let messages = messages.json();
    assert_eq!(messages["content"][0]["text"], text.as_str());
    assert_eq!(messages["stop_reason"], "end_turn");
    assert_eq!(
        messages["usage"]["output_tokens"],
        usage["completion_tokens"]
    );
    assert_eq!(
        upstream
            .seen
            .requests
            .load(std::sync::atomic::Ordering::SeqCst),
        before,
        "a replay asks no upstream"
    );
}

#[tokio::test]
async fn a_replay_keeps_the_recorded_gaps() {
    let cassettes = Cassettes::new();
    let upstream = fake_openai::start().await;
    let recording = recorder(&upstream.base_url, "slow", &cassettes.0).await;
    post(&recording, "/v1/chat/completions", chat_body(true)).await;
    let written = std::fs::read_to_string(&cassettes.files()[0]).unwrap();
    let recorded: Vec<u64> = written
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["kind"] == "token" && l["text"] != "")
        .map(|l| l["ms"].as_u64().unwrap())
        .collect();
    assert_eq!(recorded.len(), fake_openai::TOKENS.len());

    let replay = replayer(&cassettes.0, "").await;
    let started = Instant::now();
    let response = client()
        .post(replay.url("/v1/stream"))
        .bearer_auth(CLIENT_KEY)
        .json(&json!({"model": "gpt", "messages": [{"role": "user", "content": "Say hello"}]}))
        .send()
        .await
        .unwrap();
    let chunks = timed_chunks(started, response).await;
    let arrivals: Vec<Duration> = chunks
        .iter()
        .flat_map(|(at, text)| std::iter::repeat_n(*at, text.matches("data: {\"token\"").count()))
        .collect();
    assert_eq!(arrivals.len(), recorded.len());
    let mut deviations: Vec<i64> = (1..recorded.len())
        .map(|i| {
            let replayed = (arrivals[i] - arrivals[i - 1]).as_millis() as i64;
            let original = (recorded[i] - recorded[i - 1]) as i64;
            (replayed - original).abs()
        })
        .collect();
    eprintln!(
        "recorded token times {recorded:?}, replayed {arrivals:?}, gap deviations {deviations:?}"
    );
    deviations.sort_unstable();
    // Each gap within 10 ms of the recorded one; a loaded test machine may
    // delay one delivery, so the worst may reach 25.
    assert!(deviations[deviations.len() / 2] <= 10, "{deviations:?}");
    assert!(*deviations.last().unwrap() <= 25, "{deviations:?}");

    // `mock.speed = 0`: the same answer, as fast as it goes (the recording
    // took 2.4 s).
    let started = Instant::now();
    let fast = post(
        &replay,
        "/v1/stream",
        json!({"model": "gpt", "mock": {"speed": 0},
        "messages": [{"role": "user", "content": "Say hello"}]}),
    )
    .await;
    assert_eq!(fast.token_text(), fake_openai::TOKENS.concat());
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn with_no_recording_a_404_names_it_unless_the_mock_falls_back() {
    let cassettes = Cassettes::new();
    let replay = replayer(&cassettes.0, "").await;
    let missing = post(&replay, "/v1/chat/completions", chat_body(false)).await;
    assert_eq!(missing.status, 404, "{}", missing.text);
    let message = missing.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("no recording") && message.contains("Say hello"),
        "{message}"
    );

    let fallback = replayer(
        &cassettes.0,
        "fallback = \"mock\"\nttft_ms = 0\ntoken_delay_ms = 0\n",
    )
    .await;
    let mocked = post(&fallback, "/v1/chat/completions", chat_body(false)).await;
    assert_eq!(mocked.status, 200, "{}", mocked.text);
    assert!(!mocked.json()["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn sluice_replay_lists_the_recordings() {
    let cassettes = Cassettes::new();
    let upstream = fake_openai::start().await;
    let recording = recorder(&upstream.base_url, "ok", &cassettes.0).await;
    post(&recording, "/v1/chat/completions", chat_body(true)).await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["replay", "--list"])
        .arg(&cassettes.0)
        .output()
        .unwrap();
    assert!(output.status.success());
    let listed = String::from_utf8_lossy(&output.stdout);
    assert!(listed.contains("gpt (openai)  stop, 6 tokens"), "{listed}");
    assert!(listed.contains("\"Say hello\""), "{listed}");
    assert!(listed.contains("1 recording(s)"), "{listed}");
}

#[test]
fn a_record_route_needs_a_record_dir_and_replay_its_dir() {
    let bad = [
        (
            "[[models]]\nname = \"m\"\nprovider = \"mock\"\nrecord = true\n",
            "models[0].record",
        ),
        (
            "[[models]]\nname = \"m\"\nprovider = \"replay\"\n",
            "models[0].dir",
        ),
        (
            "[[models]]\nname = \"m\"\nprovider = \"replay\"\ndir = \"x\"\nfallback = \"gpt\"\n",
            "models[0].fallback",
        ),
        (
            "[[models]]\nname = \"m\"\nprovider = \"mock\"\nspeed = 2.0\n",
            "models[0].speed",
        ),
    ];
    for (toml, key) in bad {
        let Err(err) = sluice::Config::parse(toml, |_| None) else {
            panic!("{toml} was accepted");
        };
        assert_eq!(err.key, key, "{toml}: {err}");
    }
}
