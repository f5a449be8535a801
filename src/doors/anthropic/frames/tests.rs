use serde_json::{json, Value};

use super::*;
use crate::generation::Usage;
use crate::pipeline::framer::named_events as events;

fn kinds(got: &[(String, Value)]) -> Vec<&str> {
    got.iter().map(|(kind, _)| kind.as_str()).collect()
}

#[test]
fn a_stream_is_anthropics_event_sequence_with_the_stop_sequence_named() {
    let mut framer = MessageEvents::new(Head::new("mock", 7));
    framer.serving("claude");
    let finish = Finish {
        stop_sequence: Some("END".into()),
        ..Finish::new("stop", Usage::new(8, 2))
    };
    let frames = [
        framer.preamble().unwrap(),
        framer.token("Hi"),
        framer.heartbeat().unwrap(),
        framer.token(" \"there\""),
        framer.done(&finish),
    ];
    let got = events(&frames);
    assert_eq!(
        kinds(&got),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "ping",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    for (kind, data) in &got {
        assert_eq!(data["type"], json!(kind));
    }
    let message = &got[0].1["message"];
    assert_eq!(message["model"], "claude");
    assert_eq!(
        message["usage"],
        json!({"input_tokens": 7, "output_tokens": 0})
    );
    assert_eq!(
        got[1].1["content_block"],
        json!({"type": "text", "text": ""})
    );
    assert_eq!(
        got[5].1["delta"],
        json!({"type": "text_delta", "text": " \"there\""})
    );
    assert_eq!(
        got[7].1,
        json!({"type": "message_delta",
               "delta": {"stop_reason": "stop_sequence", "stop_sequence": "END"},
               "usage": {"input_tokens": 8, "output_tokens": 2}})
    );
}

#[test]
fn the_token_cap_is_max_tokens_and_a_failure_an_error_event() {
    let mut framer = MessageEvents::new(Head::new("mock", 1));
    let got = events(&[framer.done(&Finish::new("length", Usage::new(1, 1)))]);
    // An empty answer still opens and closes its text block.
    assert_eq!(
        kinds(&got),
        [
            "content_block_start",
            "ping",
            "content_block_stop",
            "message_delta",
            "message_stop"
        ]
    );
    assert_eq!(got[3].1["delta"]["stop_reason"], "max_tokens");
    assert_eq!(got[3].1["delta"]["stop_sequence"], Value::Null);

    let err = ApiError::from(crate::generation::UpstreamError::Stream("boom".into()));
    let got = events(&[framer.error(&err)]);
    assert_eq!(got[0].0, "error");
    assert_eq!(got[0].1["type"], "error");
    assert_eq!(got[0].1["error"]["type"], "api_error");
}

#[test]
fn thinking_text_and_a_tool_call_are_blocks_in_order() {
    let mut framer = MessageEvents::new(Head::new("mock", 1));
    let frames = [
        framer.preamble().unwrap(),
        framer.reasoning("Hmm."),
        framer.signature("sig-1").unwrap(),
        framer.token("Checking."),
        framer
            .tool_calls(&json!([{"index": 0, "id": "toolu_1", "type": "function",
                                 "function": {"name": "get_weather", "arguments": ""}}]))
            .unwrap(),
        framer
            .tool_calls(&json!([{"index": 0, "function": {"arguments": "{\"city\":\"Oslo\"}"}}]))
            .unwrap(),
        framer.done(&Finish::new("tool_calls", Usage::new(1, 9))),
    ];
    let got = events(&frames);
    assert_eq!(
        kinds(&got),
        [
            "message_start",
            "content_block_start",
            "ping",
            "content_block_delta",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
    );
    assert_eq!(
        got[1].1["content_block"],
        json!({"type": "thinking", "thinking": "", "signature": ""})
    );
    assert_eq!(
        got[3].1["delta"],
        json!({"type": "thinking_delta", "thinking": "Hmm."})
    );
    assert_eq!(
        got[4].1["delta"],
        json!({"type": "signature_delta", "signature": "sig-1"})
    );
    assert_eq!(got[6].1["index"], 1);
    assert_eq!(
        got[9].1,
        json!({"type": "content_block_start", "index": 2,
               "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}})
    );
    assert_eq!(
        got[10].1["delta"],
        json!({"type": "input_json_delta", "partial_json": "{\"city\":\"Oslo\"}"})
    );
    assert_eq!(got[12].1["delta"]["stop_reason"], "tool_use");
    // A late piece of a closed call has nowhere to go.
    assert_eq!(
        framer.tool_calls(&json!([{"index": 0, "function": {"arguments": "x"}}])),
        None
    );
}
