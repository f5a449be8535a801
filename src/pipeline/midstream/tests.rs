use serde_json::json;

use super::calls::HeldCalls;
use super::prefill::{continuation, instruct_raw, CONTINUE_INSTRUCTION};
use super::*;
use crate::config::ProviderKind;
use crate::generation::Finish;
use crate::generation::{Message, Role};

fn conversation() -> GenRequest {
    GenRequest {
        messages: vec![
            Message {
                role: Role::System,
                content: "Be brief.".into(),
            },
            Message {
                role: Role::User,
                content: "Tell me a story.".into(),
            },
        ],
        raw_messages: Some(vec![
            json!({"role": "system", "content": "Be brief."}),
            json!({"role": "user", "content": [{"type": "text", "text": "Tell me a story."}]}),
        ]),
        tool_results: vec!["42".into()],
        ..GenRequest::default()
    }
}

#[test]
fn the_answer_so_far_is_the_last_message_and_any_instruction_comes_before_it() {
    let request = continuation(&conversation(), "Once upon", ProviderKind::Openai);
    let last = request.messages.last().unwrap();
    assert_eq!(
        (last.role, last.content.as_str()),
        (Role::Assistant, "Once upon")
    );
    assert!(request.messages[0].content.ends_with(CONTINUE_INSTRUCTION));
    let raw = request.raw_messages.unwrap();
    assert_eq!(
        raw.last().unwrap(),
        &json!({"role": "assistant", "content": "Once upon"})
    );
    assert_eq!(
        raw[0]["content"],
        json!(format!("Be brief.\n\n{CONTINUE_INSTRUCTION}"))
    );
    // The user's own message is untouched.
    assert_eq!(raw[1], conversation().raw_messages.unwrap()[1]);
    assert!(request.tool_results.is_empty());

    // Anthropic continues a prefill by design: no instruction.
    let request = continuation(&conversation(), "Once upon", ProviderKind::Anthropic);
    assert_eq!(request.messages[0].content, "Be brief.");
    assert_eq!(request.messages.last().unwrap().role, Role::Assistant);
}

#[test]
fn an_instruction_without_a_system_message_gets_one_of_its_own() {
    let mut raw = vec![json!({"role": "user", "content": "hi"})];
    instruct_raw(&mut raw);
    assert_eq!(
        raw[0],
        json!({"role": "system", "content": CONTINUE_INSTRUCTION})
    );
    assert_eq!(raw.len(), 2);
}

#[test]
fn tool_calls_are_held_whole_and_a_continuations_repeats_dropped() {
    let mut calls = HeldCalls::default();
    let start = json!([{"index": 0, "id": "call_a", "type": "function",
        "function": {"name": "lookup", "arguments": ""}}]);
    assert_eq!(calls.take(&start), None);
    assert_eq!(
        calls.take(&json!([{"index": 0, "function": {"arguments": "{\"q\":"}}])),
        None
    );
    assert_eq!(
        calls.take(&json!([{"index": 0, "function": {"arguments": "1}"}}])),
        None
    );
    // The next call makes the first whole.
    let second = json!([{"index": 1, "id": "call_b", "type": "function",
        "function": {"name": "lookup", "arguments": "{\"q\":"}}]);
    let whole = calls.take(&second).unwrap();
    assert_eq!(
        whole,
        json!([{"index": 0, "id": "call_a", "type": "function",
            "function": {"name": "lookup", "arguments": "{\"q\":1}"}}])
    );
    // Cut half way through the second: it was never relayed.
    calls.drop_held();
    calls.continuing();
    // The continuation makes both again; the first is a repeat.
    assert_eq!(calls.take(&start), None);
    let again = json!([{"index": 1, "id": "call_c", "type": "function",
        "function": {"name": "lookup", "arguments": "{\"q\":2}"}}]);
    assert_eq!(calls.take(&again), None);
    assert_eq!(
        calls.finish().unwrap(),
        json!([{"index": 1, "id": "call_c", "type": "function",
            "function": {"name": "lookup", "arguments": "{\"q\":2}"}}])
    );
}

#[test]
fn usage_sums_over_calls() {
    let a = Usage::new(10, 4);
    let b = Usage::new(14, 6).with_reasoning(Some(2));
    let both = sum(a, b);
    assert_eq!(
        (
            both.prompt_tokens,
            both.completion_tokens,
            both.total_tokens
        ),
        (24, 10, 34)
    );
    assert_eq!(both.reasoning_tokens, Some(2));
    assert_eq!(sum(a, a).reasoning_tokens, None);
}

#[test]
fn a_done_sums_the_cut_calls_usage_and_flushes_the_held_call() {
    let mut midstream = Midstream::new(Vec::new(), 0, conversation());
    midstream.spent = Usage::new(5, 3);
    let calls = json!([{"index": 0, "id": "c", "type": "function",
        "function": {"name": "f", "arguments": "{}"}}]);
    assert_eq!(midstream.take(TokenEvent::ToolCalls(calls.clone())), None);
    assert_eq!(midstream.pop(), None);
    let done = TokenEvent::Done(Finish::new("tool_calls", Usage::new(7, 2)));
    assert_eq!(midstream.take(done), None);
    assert_eq!(midstream.pop(), Some(TokenEvent::ToolCalls(calls)));
    match midstream.pop() {
        Some(TokenEvent::Done(finish)) => assert_eq!(finish.usage, Usage::new(12, 5)),
        other => panic!("expected the done event, got {other:?}"),
    }
}

#[test]
fn with_no_calls_left_a_failure_is_relayed() {
    // A chain with no routes has no calls to make.
    let mut midstream = Midstream::new(Vec::new(), 0, conversation());
    let err = UpstreamError::Stream("cut".into());
    assert!(!midstream.continues_after(&err));
    assert_eq!(midstream.take(TokenEvent::Error(err.clone())), None);
    assert_eq!(midstream.pop(), Some(TokenEvent::Error(err)));
}
