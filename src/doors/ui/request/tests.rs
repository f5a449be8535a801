//! The UI door's request reading: both views of a tool loop, and bad input.
use super::*;

fn templates() -> Templates {
    Templates::load(std::path::Path::new("/nonexistent-sluice-prompts"))
}

fn parse_json(body: Value) -> Result<UiRequest, ApiError> {
    parse(body.to_string().as_bytes(), &templates())
}

#[test]
fn a_tool_loop_turn_reads_into_both_views() {
    let request = parse_json(json!({
        "id": "chat-1", "trigger": "submit-message", "messageId": null,
        "system": "Be brief.",
        "messages": [
            {"id": "u1", "role": "user", "parts": [{"type": "text", "text": "Weather in Paris?"}]},
            {"id": "a1", "role": "assistant", "parts": [
                {"type": "step-start"},
                {"type": "text", "text": "Let me look."},
                {"type": "tool-weather", "toolCallId": "call_1", "state": "output-available",
                 "input": {"city": "Paris"}, "output": {"temp": 21}},
            ]},
        ],
        "tools": [{"type": "function", "function": {"name": "weather", "parameters": {"type": "object"}}}],
    }))
    .unwrap();
    assert_eq!(request.chat, "chat-1");
    let g = &request.generation;
    let text: Vec<(Role, &str)> = g
        .messages
        .iter()
        .map(|m| (m.role, m.content.as_str()))
        .collect();
    assert_eq!(
        text,
        [
            (Role::System, "Be brief."),
            (Role::User, "Weather in Paris?"),
            (Role::Assistant, "Let me look."),
            (Role::User, "{\"temp\":21}"),
        ]
    );
    assert_eq!(g.tool_results, ["{\"temp\":21}"]);
    let raw = g.raw_messages.as_ref().unwrap();
    assert_eq!(raw[0]["role"], "system");
    assert_eq!(
        raw[2]["tool_calls"][0]["function"]["arguments"],
        "{\"city\":\"Paris\"}"
    );
    assert_eq!(
        raw[3],
        json!({"role": "tool", "tool_call_id": "call_1", "content": "{\"temp\":21}"})
    );
    assert_eq!(g.tools[0].name, "weather");
}

#[test]
fn bad_input_names_its_field() {
    let cases = [
        (json!({"messages": []}), "id"),
        (json!({"id": "c", "messages": []}), "messages"),
        (
            json!({"id": "", "messages": [{"role": "user", "parts": []}]}),
            "id",
        ),
        (
            json!({"id": "c", "messages": [{"role": "robot", "parts": []}]}),
            "messages[0].role",
        ),
        (
            json!({"id": "c", "messages": [{"role": "user", "parts": [{"type": "file", "url": "x"}]}]}),
            "messages[0].parts[0].type",
        ),
        (
            json!({"id": "c", "messages": [{"role": "user", "parts": [{"type": "text"}]}]}),
            "messages[0].parts[0].text",
        ),
        (
            json!({"id": "c", "max_token": 3, "messages": [{"role": "user", "parts": [{"type": "text", "text": "hi"}]}]}),
            "max_token",
        ),
        (
            json!({"id": "c", "vars": {}, "messages": [{"role": "user", "parts": [{"type": "text", "text": "hi"}]}]}),
            "vars",
        ),
    ];
    for (body, field) in cases {
        let err = parse_json(body.clone()).unwrap_err();
        assert_eq!(err.param.as_deref(), Some(field), "{body}: {err:?}");
    }
}
