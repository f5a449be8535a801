//! The official SDKs against the real server: OpenAI's (Python and Node) on
//! the Chat Completions and Responses doors, Anthropic's (Python) on the
//! Messages door, and the AI SDK with its OpenAI and Anthropic providers. These
//! are the clients chat UIs and agents actually use, so shape mistakes that a
//! hand-written check could share with the code cannot hide.
//!
//! The SDKs come from PyPI and npm at pinned versions (`tests/sdk/install.sh`,
//! which `.ci/run` runs). Without them these tests say so and pass, unless
//! `SLUICE_REQUIRE_SDKS=1` (set by `.ci/run`), where a missing SDK fails.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::common::*;
use tokio::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether `needed` exists; when it does not, a failure if SDKs are required.
fn available(what: &str, needed: &Path) -> bool {
    if needed.exists() {
        return true;
    }
    let hint = format!(
        "{what} is not installed ({} is missing): run tests/sdk/install.sh",
        needed.display()
    );
    if std::env::var_os("SLUICE_REQUIRE_SDKS").is_some_and(|v| v == "1") {
        panic!("{hint}");
    }
    eprintln!("skipped: {hint}");
    false
}

/// The key the scripts send: the server they run against has auth on, so
/// each can check its SDK's authentication error too.
const KEY: &str = "sk-sdk-test";

/// Runs a client script against a fresh sluice and fails with its output.
async fn run_client(program: &Path, script: &Path) {
    run_client_with(program, script, "").await;
}

/// A quick mock answering any model name, as the embedded default does.
const ANY_MODEL: &str =
    "[[models]]\nname = \"*\"\nprovider = \"mock\"\nttft_ms = 0\ntoken_delay_ms = 0\n";

/// [`run_client`] with `models` (TOML) after the quick mock.
async fn run_client_with(program: &Path, script: &Path, models: &str) {
    let server = spawn(config(&format!(
        "[auth]\napi_keys = [\"{KEY}\"]\n{FAST_MOCK}{models}"
    )))
    .await;
    let mut command = Command::new(program);
    command
        .arg(script)
        .env("SLUICE_BASE_URL", server.url("/v1"))
        .env("SLUICE_KEY", KEY)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("the SDK client finished within 120 s")
        .expect("the SDK client started");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{} failed ({}):\n{stdout}\n{stderr}",
        script.display(),
        output.status
    );
    assert!(stdout.contains("all checks passed"), "{stdout}\n{stderr}");
    eprintln!("{}", stdout.trim());
}

#[tokio::test]
async fn the_python_openai_sdk_streams_and_raises_its_own_errors() {
    let python = root().join("target/sdk-venv/bin/python");
    if available("the Python openai SDK", &python) {
        run_client(&python, &root().join("tests/sdk/openai_python.py")).await;
    }
}

/// A quick mock route that continues an answer whose upstream stalls
/// past `idle_ms` (section 17).
const CONTINUING: &str =
    "[timeouts]\nidle_ms = 400\n[[models]]\nname = \"continuing\"\nprovider = \"mock\"\n\
     ttft_ms = 0\ntoken_delay_ms = 0\nmidstream = \"continue\"\n";

/// Section 17: an answer continued after a stall reaches the SDKs whole.
#[tokio::test]
async fn the_python_sdks_get_a_continued_answer_whole() {
    let python = root().join("target/sdk-venv/bin/python");
    if available("the Python openai SDK", &python) {
        run_client_with(
            &python,
            &root().join("tests/sdk/midstream_python.py"),
            CONTINUING,
        )
        .await;
    }
}

#[tokio::test]
async fn the_node_openai_sdk_streams_and_raises_its_own_errors() {
    let sdk = root().join("tests/sdk/node/node_modules/openai/package.json");
    if available("the Node openai SDK", &sdk) {
        run_client(
            Path::new("node"),
            &root().join("tests/sdk/node/openai_node.mjs"),
        )
        .await;
    }
}

#[tokio::test]
async fn the_python_openai_sdk_speaks_the_responses_api() {
    let python = root().join("target/sdk-venv/bin/python");
    if available("the Python openai SDK", &python) {
        run_client(&python, &root().join("tests/sdk/openai_responses.py")).await;
    }
}

#[tokio::test]
async fn the_python_anthropic_sdk_speaks_the_messages_api() {
    let sdk = root().join("target/sdk-venv/bin/python");
    if available("the Python anthropic SDK", &sdk) {
        run_client(&sdk, &root().join("tests/sdk/anthropic_python.py")).await;
    }
}

#[tokio::test]
async fn the_ai_sdk_streams_through_the_responses_and_messages_doors() {
    let sdk = root().join("tests/sdk/node/node_modules/ai/package.json");
    if available("the AI SDK", &sdk) {
        run_client(Path::new("node"), &root().join("tests/sdk/node/ai_sdk.mjs")).await;
    }
}

/// Section 18 (T3's retry-block regression): `@microsoft/fetch-event-source`
/// reading a POST stream with a handler that parses every message.
#[tokio::test]
async fn fetch_event_source_parses_every_message_of_a_native_stream() {
    let sdk = root().join("tests/sdk/node/node_modules/@microsoft/fetch-event-source/package.json");
    if available("@microsoft/fetch-event-source", &sdk) {
        run_client(
            Path::new("node"),
            &root().join("tests/sdk/node/fetch_event_source.mjs"),
        )
        .await;
    }
}

/// Section 15: the AI SDK's `DefaultChatTransport` (`sendMessages`,
/// `reconnectToStream`) with `readUIMessageStream`, and AG-UI's `HttpAgent`
/// (its event verifier on), against the chat UI doors: text as the native
/// door's, reasoning, a tool loop, errors, resume from the start after the
/// page left, Stop by `DELETE`.
#[tokio::test]
async fn chat_ui_clients_stream_resume_and_stop_on_the_ui_doors() {
    let script = root().join("tests/sdk/node/ui_doors.mjs");
    let needed = root().join("tests/sdk/node/node_modules/@ag-ui/client/package.json");
    if available("the AI SDK and @ag-ui/client", &needed) {
        run_client(Path::new("node"), &script).await;
    }
}

/// Section 17: an answer continued after a stall reaches the AI SDK's
/// transport and AG-UI's agent whole.
#[tokio::test]
async fn chat_ui_clients_get_a_continued_answer_whole() {
    let script = root().join("tests/sdk/node/midstream_node.mjs");
    let needed = root().join("tests/sdk/node/node_modules/@ag-ui/client/package.json");
    if available("the AI SDK and @ag-ui/client", &needed) {
        // A route of its own: the script counts its continuations.
        let route = CONTINUING.replace("\"continuing\"", "\"continuing-ui\"");
        run_client_with(Path::new("node"), &script, &route).await;
    }
}

/// Section 16: the Python SDK's background Responses: create, retrieve,
/// stream and resume after a cut with `starting_after`, cancel, 404.
#[tokio::test]
async fn the_python_openai_sdk_runs_responses_in_the_background() {
    let python = root().join("target/sdk-venv/bin/python");
    if available("the Python openai SDK", &python) {
        run_client(&python, &root().join("tests/sdk/openai_background.py")).await;
    }
}

/// Section 14: the mock's faults through the official Python SDKs, each
/// raising that SDK's own exception (or ending) for the real thing.
#[tokio::test]
async fn the_python_sdks_raise_their_own_errors_for_the_mocks_faults() {
    let python = root().join("target/sdk-venv/bin/python");
    if available("the Python openai SDK", &python) {
        run_client(&python, &root().join("tests/sdk/faults_python.py")).await;
    }
}

#[tokio::test]
async fn the_python_sdks_parse_structured_output_and_count_tokens() {
    let python = root().join("target/sdk-venv/bin/python");
    if available("the Python openai SDK", &python) {
        run_client_with(
            &python,
            &root().join("tests/sdk/mock_as_model_python.py"),
            ANY_MODEL,
        )
        .await;
    }
}

#[tokio::test]
async fn the_ai_sdk_generates_and_streams_objects_on_every_door() {
    let script = root().join("tests/sdk/node/structured.mjs");
    if available("the AI SDK", &root().join("tests/sdk/node/node_modules/ai")) {
        run_client_with(Path::new("node"), &script, ANY_MODEL).await;
    }
}

#[tokio::test]
async fn agent_frameworks_tool_loops_end_after_two_model_calls() {
    let python = root().join("target/sdk-venv/bin/python");
    if available("the Python openai SDK", &python) {
        run_client_with(
            &python,
            &root().join("tests/sdk/agent_loop_python.py"),
            ANY_MODEL,
        )
        .await;
    }
}

#[tokio::test]
async fn the_ai_sdk_tool_loop_ends_after_two_steps_on_every_door() {
    let script = root().join("tests/sdk/node/agent_loop.mjs");
    if available("the AI SDK", &root().join("tests/sdk/node/node_modules/ai")) {
        run_client_with(Path::new("node"), &script, ANY_MODEL).await;
    }
}

#[tokio::test]
async fn langchain_and_llm_get_valid_structured_output() {
    let python = root().join("target/sdk-venv/bin/python");
    if available("the Python openai SDK", &python) {
        run_client_with(
            &python,
            &root().join("tests/sdk/structured_clients_python.py"),
            ANY_MODEL,
        )
        .await;
    }
}

#[tokio::test]
async fn instructor_gets_a_valid_object_in_each_of_its_modes() {
    let python = root().join("target/sdk-venv-instructor/bin/python");
    if available("instructor", &python) {
        run_client_with(
            &python,
            &root().join("tests/sdk/instructor_python.py"),
            ANY_MODEL,
        )
        .await;
    }
}
