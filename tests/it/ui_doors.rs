//! Section 15 over plain HTTP: what the chat UI doors promise beyond what
//! the real clients check (`sdk_clients::chat_ui_clients_...`): a chat's
//! answer found from another replica, a page that leaves with `[ui] resume
//! = false`, one client's chat out of another's reach, and bad input named
//! in the native shape.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::redis::*;
use crate::common::*;

fn ui_body(chat: &str, mock: Value) -> Value {
    json!({
        "id": chat,
        "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Tell me about rivers"}]}],
        "mock": mock,
    })
}

/// The `data:` chunks of a UI message stream, without `[DONE]`.
fn chunks(got: &Received) -> Vec<Value> {
    got.events
        .iter()
        .filter(|e| e.data != "[DONE]")
        .map(|e| serde_json::from_str(&e.data).unwrap())
        .collect()
}

fn text_of(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter(|c| c["type"] == "text-delta")
        .map(|c| c["delta"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_chat_answer_started_on_a_resumes_from_b() {
    let Some((_redis, a, b)) = pair("").await else {
        return;
    };
    let chat = "chat-across";
    let mock = json!({"tokens": 10, "token_delay_ms": 100});
    let started = client()
        .post(a.url("/v1/ui/chat"))
        .json(&ui_body(chat, mock))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 200);
    let on_b = client()
        .get(b.url(&format!("/v1/ui/chat/{chat}/stream")))
        .send()
        .await
        .unwrap();
    assert_eq!(on_b.status(), 200, "B finds the chat's running answer");
    assert_eq!(on_b.headers()["x-vercel-ai-ui-message-stream"], "v1");
    let (on_a, on_b) = tokio::join!(receive(started), receive(on_b));
    let (on_a, on_b) = (chunks(&on_a), chunks(&on_b));
    assert_eq!(on_b.first().unwrap()["type"], "start");
    assert_eq!(on_b.first(), on_a.first(), "the same message id");
    assert_eq!(text_of(&on_b), text_of(&on_a), "from its start");
    assert_eq!(on_b.last().unwrap()["type"], "finish");
    // Ended: nothing to resume, from either replica.
    for on in [&a, &b] {
        let after = client()
            .get(on.url(&format!("/v1/ui/chat/{chat}/stream")))
            .send()
            .await
            .unwrap();
        assert_eq!(after.status(), 204);
    }
}

#[tokio::test]
async fn without_resume_a_page_that_leaves_cancels_its_answer() {
    let server = spawn(config(&format!("[ui]\nresume = false\n{FAST_MOCK}"))).await;
    let mut response = client()
        .post(server.url("/v1/ui/chat"))
        .json(&ui_body(
            "chat-leaves",
            json!({"tokens": 200, "token_delay_ms": 20}),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let generation = response.headers()["x-sluice-generation"]
        .to_str()
        .unwrap()
        .to_owned();
    response.chunk().await.unwrap();
    drop(response);
    let status_url = server.url(&format!("/v1/generations/{generation}"));
    let mut status = Value::Null;
    for _ in 0..100 {
        status = client()
            .get(&status_url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["status"] != "running" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status["status"], "cancelled", "{status}");
}

#[tokio::test]
async fn one_clients_chat_is_out_of_anothers_reach() {
    let server = spawn(config(&format!(
        "[auth]\napi_keys = [\"sk-one\", \"sk-two\"]\n{FAST_MOCK}"
    )))
    .await;
    let chat = "chat-private";
    let started = client()
        .post(server.url("/v1/ui/chat"))
        .bearer_auth("sk-one")
        .json(&ui_body(chat, json!({"tokens": 50, "token_delay_ms": 50})))
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 200);
    let stream = server.url(&format!("/v1/ui/chat/{chat}/stream"));
    let other = client()
        .get(&stream)
        .bearer_auth("sk-two")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 204, "another key sees no running answer");
    let stop = client()
        .delete(&stream)
        .bearer_auth("sk-two")
        .send()
        .await
        .unwrap();
    assert_eq!(stop.status(), 204, "and cannot stop it");
    let own = client()
        .get(&stream)
        .bearer_auth("sk-one")
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
    let stop = client()
        .delete(&stream)
        .bearer_auth("sk-one")
        .send()
        .await
        .unwrap();
    assert_eq!(stop.json::<Value>().await.unwrap()["status"], "cancelled");
    drop((started, own));
}

#[tokio::test]
async fn bad_input_on_the_ui_doors_is_a_400_naming_the_field() {
    let server = spawn(fast_mock_config()).await;
    let cases = [
        ("/v1/ui/chat", json!({"messages": []}), "id"),
        (
            "/v1/ui/chat",
            json!({"id": "c", "messages": [{"role": "user", "parts": [{"type": "file", "url": "x", "mediaType": "image/png"}]}]}),
            "messages[0].parts[0].type",
        ),
        (
            "/v1/ui/chat",
            json!({"id": "c", "messages": [{"role": "user", "parts": [{"type": "text", "text": "hi"}]}], "model": 7}),
            "model",
        ),
        (
            "/v1/agui",
            json!({"runId": "r", "messages": []}),
            "threadId",
        ),
        (
            "/v1/agui",
            json!({"threadId": "t", "runId": "r", "messages": [{"id": "1", "role": "user", "content": "hi"}], "forwardedProps": {"mock": {"tokens": "many"}}}),
            "forwardedProps.mock.tokens",
        ),
    ];
    for (path, body, field) in cases {
        let got = post_to(&server, path, body.clone()).await;
        assert_eq!(got.status, 400, "{path} {body}: {}", got.text);
        let error = got.json()["error"].clone();
        assert_eq!(error["type"], "invalid_request", "{}", got.text);
        assert_eq!(error["param"], field, "{path} {body}: {}", got.text);
    }
}

/// Serves the files of `dir` on a loopback port: the example page's own
/// origin, as a dev server would give it (sluice allows loopback origins).
async fn serve_dir(dir: std::path::PathBuf) -> String {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
        let dir = dir.clone();
        async move {
            let name = uri.path().trim_start_matches('/');
            let name = if name.is_empty() { "index.html" } else { name };
            let kind = if name.ends_with(".js") {
                "text/javascript"
            } else {
                "text/html"
            };
            match std::fs::read(dir.join(name)) {
                Ok(bytes) if !name.contains("..") => {
                    ([(header::CONTENT_TYPE, kind)], bytes).into_response()
                }
                _ => StatusCode::NOT_FOUND.into_response(),
            }
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/")
}

/// The example app (`examples/chat-ui`, `useChat` with `resume: true` and a
/// Stop button) in a real browser: an answer streams, the page is reloaded
/// mid-answer and picks the answer up again to its end (once, the same text
/// the native door gives), and Stop ends the next one for good.
/// Screenshots go to `target/chat-ui-screenshots/`.
#[tokio::test]
async fn the_example_chat_page_resumes_after_a_reload_and_stops() {
    let Some(script) = crate::browser::script("chat-ui.mjs") else {
        return;
    };
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let dist = root.join("examples/chat-ui/dist");
    if !dist.join("app.js").exists() {
        let hint = "the example page is not built (run tests/browser/install.sh)";
        assert!(
            std::env::var_os("SLUICE_REQUIRE_BROWSER").is_none_or(|v| v != "1"),
            "{hint}"
        );
        eprintln!("skipped: {hint}");
        return;
    }
    let server = spawn(config(
        "[[models]]\nname = \"mock\"\nprovider = \"mock\"\nttft_ms = 0\ntokens = 60\n",
    ))
    .await;
    let page = serve_dir(dist).await;
    let shots = root.join("target/chat-ui-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let seen = crate::browser::run(
        &script,
        &[
            ("PAGE", page),
            ("API", server.url("/v1/ui/chat")),
            ("SCREENSHOTS", shots.display().to_string()),
        ],
    )
    .await;
    eprintln!("{}", seen["log"]);
    let native = post_json(
        &server,
        json!({"prompt": "Tell me about rivers", "mock": {"token_delay_ms": 0}}),
    )
    .await;
    let after = seen["after"].as_array().unwrap();
    assert_eq!(
        after.len(),
        1,
        "one assistant message after the resume: {seen}"
    );
    assert_eq!(after[0], native.token_text(), "{seen}");
    let before = seen["before"].as_str().unwrap();
    assert!(before.len() < native.token_text().len(), "{seen}");
    assert_eq!(
        seen["stopped"], seen["stoppedLater"],
        "nothing after Stop: {seen}"
    );
    assert!(seen["stopped"].as_str().unwrap().len() < native.token_text().len());
    assert_eq!(seen["resumeAfterStop"], 204, "{seen}");
}

/// `body: { template, vars }` from the transport: the template renders the
/// last user message and sets the system prompt (the mock's `echo` mode
/// streams the rendered message back).
#[tokio::test]
async fn a_template_renders_the_last_user_message() {
    use crate::templates::{PromptsDir, SUMMARISE};
    let prompts = PromptsDir::new(&[("summarise.md", SUMMARISE)]);
    let server = spawn(config(&format!("{}{FAST_MOCK}", prompts.toml()))).await;
    let mut body = ui_body("chat-template", json!({"mode": "echo"}));
    body["template"] = json!("summarise");
    body["vars"] = json!({"audience": "child"});
    let got = post_to(&server, "/v1/ui/chat", body).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(
        text_of(&chunks(&got)),
        "Summarise this for a child:\n\nTell me about rivers"
    );
}

/// An OpenAI-compatible upstream behind the UI door gets the page's tool
/// loop in Chat Completions' own shape: the assistant's `tool_calls`, the
/// `tool` result with its `tool_call_id`, the page's tools; and its tool
/// call reaches the page as `tool-input-*` chunks.
#[tokio::test]
async fn an_openai_upstream_gets_the_tool_loop_in_its_own_shape() {
    use crate::common::fake_openai;
    let upstream = fake_openai::start().await;
    let toml = fake_openai::config_toml(&upstream.base_url, "");
    let server = spawn(config_with_env(
        &toml,
        &[("FAKE_KEY", fake_openai::UPSTREAM_KEY)],
    ))
    .await;
    let body = json!({
        "id": "chat-upstream", "model": "up-tools", "system": "Be brief.",
        "messages": [
            {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Weather?"}]},
            {"id": "a1", "role": "assistant", "parts": [
                {"type": "step-start"},
                {"type": "tool-weather", "toolCallId": "call_9", "state": "output-available",
                 "input": {"city": "Paris"}, "output": {"temp": 21}},
            ]},
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
    });
    let got = post_to(&server, "/v1/ui/chat", body).await;
    assert_eq!(got.status, 200, "{}", got.text);
    let sent = upstream.seen.last_body.lock().unwrap().clone().unwrap();
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Weather?"},
            {"role": "assistant", "content": null, "tool_calls": [{"id": "call_9", "type": "function",
                "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_9", "content": "{\"temp\":21}"},
        ])
    );
    assert_eq!(sent["tools"][0]["function"]["name"], "weather");
    let kinds: Vec<Value> = chunks(&got).iter().map(|c| c["type"].clone()).collect();
    assert!(kinds.contains(&json!("tool-input-start")), "{kinds:?}");
    assert!(kinds.contains(&json!("tool-input-available")), "{kinds:?}");
    assert_eq!(kinds.last().unwrap(), "finish");
}
