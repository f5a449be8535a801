//! The bad-input matrix: every malformed request on every door is a 4xx in
//! the door's own error shape, naming the field.

use crate::common::*;
use crate::templates::{PromptsDir, SUMMARISE};

/// One row of the bad-input matrix.
struct Row {
    what: &'static str,
    path: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    status: u16,
    kind: &'static str,
    param: Option<&'static str>,
}

fn row(
    what: &'static str,
    path: &'static str,
    body: impl Into<Vec<u8>>,
    status: u16,
    kind: &'static str,
    param: Option<&'static str>,
) -> Row {
    Row {
        what,
        path,
        content_type: "application/json",
        body: body.into(),
        status,
        kind,
        param,
    }
}

fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

#[tokio::test]
async fn the_bad_input_matrix() {
    let dir = PromptsDir::new(&[("summarise.md", SUMMARISE)]);
    let toml = format!("{}[limits]\nmax_body_bytes = 4096\n{FAST_MOCK}", dir.toml());
    let server = spawn(config(&toml)).await;
    const S: &str = "/v1/stream";
    const C: &str = "/v1/chat/completions";
    const L: &str = "/v1/completions";
    const R: &str = "/v1/responses";
    let deep_native = format!(
        r#"{{"prompt":"x","template":"summarise","vars":{{"audience":{}}}}}"#,
        nested(1000)
    );
    let deep_chat = format!(
        r#"{{"model":"mock","messages":[{{"role":"user","content":"x"}}],"tools":{}}}"#,
        nested(1000)
    );
    let long = "x".repeat(10_000);
    let mut rows = vec![
        row(
            "malformed JSON",
            S,
            "{\"prompt\": ",
            400,
            "invalid_request",
            Some("body"),
        ),
        row(
            "not an object",
            S,
            "[1,2]",
            400,
            "invalid_request",
            Some("body"),
        ),
        row("empty body", S, "", 400, "invalid_request", Some("body")),
        row(
            "wrong type",
            S,
            r#"{"prompt": 5}"#,
            400,
            "invalid_request",
            Some("prompt"),
        ),
        row(
            "unknown field",
            S,
            r#"{"prompt":"x","max_token":3}"#,
            400,
            "invalid_request",
            Some("max_token"),
        ),
        row(
            "empty prompt",
            S,
            r#"{"prompt":"  "}"#,
            400,
            "invalid_request",
            Some("prompt"),
        ),
        row(
            "no prompt",
            S,
            r#"{}"#,
            400,
            "invalid_request",
            Some("prompt"),
        ),
        row(
            "negative max_tokens",
            S,
            r#"{"prompt":"x","max_tokens":-1}"#,
            400,
            "invalid_request",
            Some("max_tokens"),
        ),
        row(
            "huge max_tokens",
            S,
            r#"{"prompt":"x","max_tokens":5000000}"#,
            400,
            "invalid_request",
            Some("max_tokens"),
        ),
        row(
            "max_tokens past u32",
            S,
            r#"{"prompt":"x","max_tokens":99999999999}"#,
            400,
            "invalid_request",
            Some("max_tokens"),
        ),
        row(
            "temperature out of range",
            S,
            r#"{"prompt":"x","temperature":9}"#,
            400,
            "invalid_request",
            Some("temperature"),
        ),
        row(
            "bad role",
            S,
            r#"{"messages":[{"role":"bot","content":"x"}]}"#,
            400,
            "invalid_request",
            Some("messages[0].role"),
        ),
        row(
            "bad mock knob",
            S,
            r#"{"prompt":"x","mock":{"error_status":200}}"#,
            400,
            "invalid_request",
            Some("mock.error_status"),
        ),
        row(
            "deeply nested JSON",
            S,
            deep_native.clone(),
            400,
            "invalid_request",
            Some("body"),
        ),
        row(
            "invalid UTF-8 in JSON",
            S,
            b"{\"prompt\":\"\xff\xfe\"}".to_vec(),
            400,
            "invalid_request",
            Some("body"),
        ),
        row(
            "body over max_body_bytes",
            S,
            format!(r#"{{"prompt":"{long}"}}"#),
            413,
            "payload_too_large",
            None,
        ),
        row(
            "unknown model",
            S,
            r#"{"prompt":"x","model":"gpt-9"}"#,
            404,
            "not_found",
            Some("model"),
        ),
        row(
            "unknown template",
            S,
            r#"{"prompt":"x","template":"nope"}"#,
            404,
            "not_found",
            Some("template"),
        ),
        row(
            "missing template variable",
            S,
            r#"{"prompt":"x","template":"summarise"}"#,
            400,
            "invalid_request",
            Some("vars.audience"),
        ),
        row(
            "vars without template",
            S,
            r#"{"prompt":"x","vars":{"a":1}}"#,
            400,
            "invalid_request",
            Some("vars"),
        ),
        row(
            "malformed JSON",
            C,
            "{\"model\": ",
            400,
            "invalid_request",
            Some("body"),
        ),
        row(
            "no messages",
            C,
            r#"{"model":"mock"}"#,
            400,
            "invalid_request",
            Some("messages"),
        ),
        row(
            "wrong type",
            C,
            r#"{"model":"mock","messages":[{"role":"user","content":"x"}],"stream":"yes"}"#,
            400,
            "invalid_request",
            Some("stream"),
        ),
        row(
            "negative max_tokens",
            C,
            r#"{"model":"mock","messages":[{"role":"user","content":"x"}],"max_tokens":-5}"#,
            400,
            "invalid_request",
            Some("max_tokens"),
        ),
        row(
            "huge max_completion_tokens",
            C,
            r#"{"model":"mock","messages":[{"role":"user","content":"x"}],"max_completion_tokens":5000000}"#,
            400,
            "invalid_request",
            Some("max_completion_tokens"),
        ),
        row(
            "deeply nested JSON",
            C,
            deep_chat,
            400,
            "invalid_request",
            Some("body"),
        ),
        row(
            "invalid UTF-8 in JSON",
            C,
            b"{\"model\":\"mock\",\"messages\":[{\"role\":\"user\",\"content\":\"\xc3\x28\"}]}"
                .to_vec(),
            400,
            "invalid_request",
            Some("body"),
        ),
        row(
            "body over max_body_bytes",
            C,
            format!(r#"{{"model":"mock","messages":[{{"role":"user","content":"{long}"}}]}}"#),
            413,
            "payload_too_large",
            None,
        ),
        row(
            "unknown model",
            C,
            r#"{"model":"gpt-9","messages":[{"role":"user","content":"x"}]}"#,
            404,
            "not_found",
            Some("model"),
        ),
        row(
            "no prompt",
            L,
            r#"{"model":"mock"}"#,
            400,
            "invalid_request",
            Some("prompt"),
        ),
        row(
            "prompt of wrong type",
            L,
            r#"{"model":"mock","prompt":{"a":1}}"#,
            400,
            "invalid_request",
            Some("prompt"),
        ),
        row(
            "malformed JSON",
            R,
            "{\"input\": ",
            400,
            "invalid_request",
            Some("body"),
        ),
        row(
            "no input",
            R,
            r#"{"model":"mock"}"#,
            400,
            "invalid_request",
            Some("input"),
        ),
        row(
            "input of wrong type",
            R,
            r#"{"model":"mock","input":{"a":1}}"#,
            400,
            "invalid_request",
            Some("input"),
        ),
        row(
            "an image part",
            R,
            r#"{"input":[{"role":"user","content":[{"type":"input_image","image_url":"data:x"}]}]}"#,
            400,
            "invalid_request",
            Some("input[0].content[0].type"),
        ),
        row(
            "huge max_output_tokens",
            R,
            r#"{"input":"x","max_output_tokens":5000000}"#,
            400,
            "invalid_request",
            Some("max_output_tokens"),
        ),
        row(
            "top_p out of range",
            R,
            r#"{"input":"x","top_p":2}"#,
            400,
            "invalid_request",
            Some("top_p"),
        ),
        row(
            "body over max_body_bytes",
            R,
            format!(r#"{{"input":"{long}"}}"#),
            413,
            "payload_too_large",
            None,
        ),
        row(
            "unknown model",
            R,
            r#"{"model":"gpt-9","input":"x"}"#,
            404,
            "not_found",
            Some("model"),
        ),
    ];
    rows.push(Row {
        what: "invalid UTF-8 in a form body",
        path: S,
        content_type: "application/x-www-form-urlencoded",
        body: b"prompt=%FF%FE".to_vec(),
        status: 400,
        kind: "invalid_request",
        param: Some("body"),
    });
    for row in rows {
        let got = send(
            client()
                .post(server.url(row.path))
                .header("content-type", row.content_type)
                .body(row.body.clone()),
        )
        .await;
        let context = format!("{} on {}: {}", row.what, row.path, got.text);
        assert_eq!(got.status, row.status, "{context}");
        let error = error_of(&got);
        assert_eq!(error["type"], row.kind, "{context}");
        assert!(
            !error["message"].as_str().unwrap_or("").is_empty(),
            "{context}"
        );
        if let Some(param) = row.param {
            assert_eq!(error["param"], param, "{context}");
        }
        if row.path != S {
            assert!(error.get("code").is_some(), "OpenAI shape: {context}");
        }
    }
    // Query strings are decoded strictly too.
    let got = send(client().get(server.url("/v1/stream?prompt=%FF"))).await;
    assert_eq!(got.status, 400);
    assert_eq!(error_of(&got)["param"], "query");
    // And the server is still fine afterwards.
    assert_eq!(post_json(&server, quick()).await.status, 200);
}

/// The Messages door answers in Anthropic's shape, which has no `param`:
/// the field is named in the message instead.
#[tokio::test]
async fn the_bad_input_matrix_of_the_messages_door() {
    let server = spawn(config(&format!(
        "[limits]\nmax_body_bytes = 4096\n{FAST_MOCK}"
    )))
    .await;
    let long = "x".repeat(10_000);
    let hi = r#"[{"role":"user","content":"hi"}]"#;
    let rows: Vec<(&str, String, u16, &str, &str)> = vec![
        ("malformed JSON", "{\"model\": ".into(), 400, "invalid_request_error", "malformed JSON"),
        ("not an object", "[1]".into(), 400, "invalid_request_error", "JSON object"),
        ("no max_tokens", format!(r#"{{"messages":{hi}}}"#), 400, "invalid_request_error", "max_tokens"),
        ("zero max_tokens", format!(r#"{{"max_tokens":0,"messages":{hi}}}"#), 400, "invalid_request_error", "max_tokens"),
        ("no messages", r#"{"max_tokens":5}"#.into(), 400, "invalid_request_error", "messages"),
        ("a system role", r#"{"max_tokens":5,"messages":[{"role":"system","content":"x"}]}"#.into(), 400, "invalid_request_error", "messages.0.role"),
        ("no content", r#"{"max_tokens":5,"messages":[{"role":"user"}]}"#.into(), 400, "invalid_request_error", "messages.0.content"),
        ("an image block", r#"{"max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{}}]}]}"#.into(), 400, "invalid_request_error", "messages.0.content.0.type"),
        ("temperature past 1", format!(r#"{{"max_tokens":5,"temperature":1.5,"messages":{hi}}}"#), 400, "invalid_request_error", "temperature"),
        ("stop_sequences of wrong type", format!(r#"{{"max_tokens":5,"stop_sequences":[1],"messages":{hi}}}"#), 400, "invalid_request_error", "stop_sequences"),
        ("bad mock knob", format!(r#"{{"max_tokens":5,"mock":{{"tokens":-1}},"messages":{hi}}}"#), 400, "invalid_request_error", "mock.tokens"),
        ("body over max_body_bytes", format!(r#"{{"max_tokens":5,"messages":[{{"role":"user","content":"{long}"}}]}}"#), 413, "request_too_large", "max_body_bytes"),
        ("unknown model", format!(r#"{{"model":"gpt-9","max_tokens":5,"messages":{hi}}}"#), 404, "not_found_error", "gpt-9"),
    ];
    for (what, body, status, kind, named) in rows {
        let got = send(
            client()
                .post(server.url("/v1/messages"))
                .header("content-type", "application/json")
                .body(body),
        )
        .await;
        let context = format!("{what}: {}", got.text);
        assert_eq!(got.status, status, "{context}");
        let body = got.json();
        assert_eq!(body["type"], "error", "{context}");
        assert_eq!(body["error"]["type"], kind, "{context}");
        let message = body["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(named), "{context}");
    }
    let got = post_to(&server, "/v1/messages", serde_json::json!({"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}], "mock": {"tokens": 1}})).await;
    assert_eq!(got.status, 200);
}
