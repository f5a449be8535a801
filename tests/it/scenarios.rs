//! Section 13's scenario files: scripted mock answers matched by prompt,
//! model, door and whether the last message is a tool result, tried in
//! file-name order; named in `X-Sluice-Scenario`; re-read when they change;
//! a bad file a start-up error naming its file and line.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::binary::Sluice;
use crate::common::*;

/// A fresh directory for a test's scenario files.
fn scenario_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "sluice-scenarios-{name}-{}-{}",
        std::process::id(),
        crate::common::binary::fastrand()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn with_scenarios(dir: &std::path::Path) -> Sluice {
    Sluice::start(
        &format!(
            "[mock]\nscenarios_dir = \"{}\"\n\
             [[models]]\nname = \"*\"\nprovider = \"mock\"\nttft_ms = 0\ntoken_delay_ms = 0\n",
            dir.display()
        ),
        &[],
    )
}

const WEATHER: &str = r#"
[[scenarios]]
name = "weather-call"
match.prompt_contains = "weather"
reply.tool_calls = [{ name = "get_weather", arguments = { city = "Paris" } }]

[[scenarios]]
name = "weather-answer"
match.after_tool = true
reply.text = "It is sunny in Paris."
reply.token_delay_ms = 5
"#;

/// A non-streaming chat turn: the scenario header, and the message.
async fn chat(on: &Sluice, model: &str, messages: Value) -> (Option<String>, Value) {
    let response = client()
        .post(on.url("/v1/chat/completions"))
        .json(&json!({"model": model, "messages": messages}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let scenario = response
        .headers()
        .get("x-sluice-scenario")
        .map(|v| v.to_str().unwrap().to_owned());
    let body: Value = response.json().await.unwrap();
    (scenario, body["choices"][0]["message"].clone())
}

#[tokio::test]
async fn a_scripted_tool_flow_ends_after_two_calls_and_names_its_scenarios() {
    let dir = scenario_dir("flow");
    std::fs::write(dir.join("weather.toml"), WEATHER).unwrap();
    let sluice = with_scenarios(&dir);
    let ask = json!([{"role": "user", "content": "What's the WEATHER like?"}]);
    let (scenario, message) = chat(&sluice, "gpt-4o", ask.clone()).await;
    assert_eq!(scenario.as_deref(), Some("weather-call"));
    let call = &message["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather", "{message}");
    let arguments: Value =
        serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"city": "Paris"}));
    let mut turn = ask.as_array().unwrap().clone();
    turn.push(json!({"role": "assistant", "content": null, "tool_calls": [call]}));
    turn.push(json!({"role": "tool", "tool_call_id": call["id"], "content": "sunny"}));
    let (scenario, message) = chat(&sluice, "gpt-4o", Value::Array(turn)).await;
    assert_eq!(scenario.as_deref(), Some("weather-answer"));
    assert_eq!(message["content"], "It is sunny in Paris.");
    // Nothing matches: the generated answer, and no header.
    let (scenario, message) = chat(
        &sluice,
        "gpt-4o",
        json!([{"role": "user", "content": "hello"}]),
    )
    .await;
    assert_eq!(scenario, None);
    assert!(!message["content"].as_str().unwrap().is_empty());
}

#[tokio::test]
async fn files_are_tried_in_name_order_and_match_by_model_door_and_regex() {
    let dir = scenario_dir("order");
    std::fs::write(
        dir.join("b.toml"),
        "[[scenarios]]\nname = \"b-hello\"\nmatch.prompt_contains = \"hello\"\nreply.text = \"from b\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("a.toml"),
        r#"
[[scenarios]]
name = "a-claude-only"
match = { prompt_contains = "hello", model = "claude-*" }
reply.text = "from a, for claude"

[[scenarios]]
name = "a-messages-door"
match = { prompt_regex = "^order \\d+$", door = "messages" }
reply.json = { order = 42, items = ["tea"] }
"#,
    )
    .unwrap();
    let sluice = with_scenarios(&dir);
    let hello = json!([{"role": "user", "content": "hello there"}]);
    assert_eq!(
        chat(&sluice, "claude-x", hello.clone()).await.1["content"],
        "from a, for claude"
    );
    assert_eq!(chat(&sluice, "gpt-4o", hello).await.1["content"], "from b");
    // The regex and the door: the Messages door answers the JSON; the chat
    // door does not match it.
    let order = json!([{"role": "user", "content": "order 7"}]);
    assert_eq!(chat(&sluice, "gpt-4o", order.clone()).await.0, None);
    let message: Value = client()
        .post(sluice.url("/v1/messages"))
        .json(&json!({"model": "gpt-4o", "max_tokens": 100, "messages": order}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = message["content"][0]["text"].as_str().unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(text).unwrap(),
        json!({"order": 42, "items": ["tea"]})
    );
}

#[tokio::test]
async fn an_edit_is_picked_up_and_a_bad_edit_keeps_the_last_good_set() {
    let dir = scenario_dir("reload");
    let file = dir.join("greeting.toml");
    let scenario = |text: &str| {
        format!("[[scenarios]]\nname = \"greet\"\nmatch.prompt_contains = \"hi\"\nreply.text = \"{text}\"\n")
    };
    std::fs::write(&file, scenario("first")).unwrap();
    let sluice = with_scenarios(&dir);
    let hi = json!([{"role": "user", "content": "hi"}]);
    assert_eq!(
        chat(&sluice, "mock", hi.clone()).await.1["content"],
        "first"
    );
    std::fs::write(&file, scenario("second, a longer text")).unwrap();
    let picked_up = until(Duration::from_secs(5), async || {
        chat(&sluice, "mock", hi.clone()).await.1["content"] == "second, a longer text"
    })
    .await;
    assert!(picked_up, "the edit was not picked up");
    std::fs::write(&file, "[[scenarios]]\nname = \"greet\"\nreply.text = \n").unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        chat(&sluice, "mock", hi).await.1["content"],
        "second, a longer text"
    );
    assert!(
        sluice
            .log_lines()
            .iter()
            .any(|l| l.contains("greeting.toml")),
        "the bad edit is logged: {:?}",
        sluice.log_lines()
    );
}

async fn until(within: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

#[test]
fn a_bad_scenario_file_at_start_exits_2_naming_the_file_and_line() {
    let dir = scenario_dir("bad");
    std::fs::write(
        dir.join("broken.toml"),
        "[[scenarios]]\nname = \"a\"\nmatch.prompt_contains = \"x\"\nmatch.colour = \"red\"\nreply.text = \"hi\"\n",
    )
    .unwrap();
    let config = dir.join("sluice.toml");
    std::fs::write(&config, "[mock]\nscenarios_dir = \".\"\n").unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("--config")
        .arg(&config)
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("SLUICE_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("broken.toml"), "{stderr}");
    assert!(stderr.contains("line 4"), "{stderr}");
    assert!(stderr.contains("colour"), "{stderr}");
}
