use serde_json::json;

use super::*;
use crate::doors::responses::request::Echo;
use crate::generation::Usage;
use crate::pipeline::framer::named_events as events;

fn framer() -> ResponseEvents {
    ResponseEvents::new(Head::new("mock", Echo::default()))
}

fn kinds(got: &[(String, Value)]) -> Vec<&str> {
    got.iter().map(|(kind, _)| kind.as_str()).collect()
}

#[test]
fn a_stream_is_the_sequence_the_sdks_check_numbered_from_zero() {
    let mut framer = framer();
    framer.serving("mock-fallback");
    let frames = [
        framer.preamble().unwrap(),
        framer.token("Hel"),
        framer.token("lo \"you\""),
        framer.done(&Finish::new("stop", Usage::new(3, 2))),
    ];
    let got = events(&frames);
    assert_eq!(
        kinds(&got),
        [
            "response.created",
            "response.in_progress",
            "response.output_item.added",
            "response.content_part.added",
            DELTA,
            DELTA,
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (n, (kind, data)) in got.iter().enumerate() {
        assert_eq!(data["type"], json!(kind));
        assert_eq!(data["sequence_number"], json!(n));
    }
    assert_eq!(got[2].1["item"]["content"], json!([]));
    let delta = &got[5].1;
    assert_eq!(delta["delta"], "lo \"you\"");
    assert_eq!(delta["item_id"], got[2].1["item"]["id"]);
    let completed = &got[9].1["response"];
    assert_eq!(completed["status"], "completed");
    assert_eq!(completed["model"], "mock-fallback");
    assert_eq!(
        completed["output"][0]["content"][0]["text"],
        "Hello \"you\""
    );
    assert_eq!(
        completed["usage"],
        json!({"input_tokens": 3, "input_tokens_details": {"cached_tokens": 0},
               "output_tokens": 2, "output_tokens_details": {"reasoning_tokens": 0},
               "total_tokens": 5})
    );
    assert_eq!(got[6].1["text"], "Hello \"you\"");
}

#[test]
fn the_token_cap_is_incomplete_and_a_failure_is_failed() {
    let mut framer = framer();
    let frames = [
        framer.preamble().unwrap(),
        framer.token("a"),
        framer.done(&Finish::new("length", Usage::new(1, 1))),
    ];
    let got = events(&frames);
    let (kind, last) = got.last().unwrap();
    assert_eq!(kind, "response.incomplete");
    assert_eq!(last["response"]["status"], "incomplete");
    assert_eq!(
        last["response"]["incomplete_details"]["reason"],
        "max_output_tokens"
    );
    assert_eq!(got[got.len() - 2].1["item"]["status"], "incomplete");

    let mut framer = self::framer();
    let err = ApiError::new(crate::error::ErrorKind::IdleTimeout, "no token for 5 s");
    let frames = [
        framer.preamble().unwrap(),
        framer.token("a"),
        framer.error(&err),
    ];
    let got = events(&frames);
    let (kind, last) = got.last().unwrap();
    assert_eq!(kind, "response.failed");
    assert_eq!(last["sequence_number"], 5);
    assert_eq!(last["response"]["status"], "failed");
    assert_eq!(
        last["response"]["error"],
        json!({"code": "idle_timeout", "message": "no token for 5 s"})
    );
    assert_eq!(last["response"]["output"][0]["content"][0]["text"], "a");
    assert_eq!(last["response"]["output"][0]["status"], "incomplete");
}

#[test]
fn reasoning_then_answer_then_a_tool_call_are_three_items_in_order() {
    let mut framer = framer();
    let frames = [
        framer.preamble().unwrap(),
        framer.reasoning("Think"),
        framer.reasoning("ing."),
        framer.token("Let me check."),
        framer
            .tool_calls(&json!([{"index": 0, "id": "call_1", "type": "function",
                                 "function": {"name": "get_weather", "arguments": ""}}]))
            .unwrap(),
        framer
            .tool_calls(&json!([{"index": 0, "function": {"arguments": "{\"city\":"}}]))
            .unwrap(),
        framer
            .tool_calls(&json!([{"index": 0, "function": {"arguments": "\"Oslo\"}"}}]))
            .unwrap(),
        framer.done(&Finish::new("tool_calls", Usage::new(3, 9))),
    ];
    let got = events(&frames);
    assert_eq!(
        kinds(&got)[2..],
        [
            "response.output_item.added",
            "response.content_part.added",
            "response.reasoning_text.delta",
            "response.reasoning_text.delta",
            "response.reasoning_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.content_part.added",
            DELTA,
            "response.output_text.done",
            "response.content_part.done",
            "response.output_item.done",
            "response.output_item.added",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.delta",
            "response.function_call_arguments.done",
            "response.output_item.done",
            "response.completed",
        ]
    );
    for (n, (_, data)) in got.iter().enumerate() {
        assert_eq!(data["sequence_number"], json!(n));
    }
    assert_eq!(got[2].1["item"]["type"], "reasoning");
    assert_eq!(got[6].1["text"], "Thinking.");
    assert_eq!(got[11].1["output_index"], 1);
    let call = &got[15].1["item"];
    assert_eq!(
        (
            &call["type"],
            &call["call_id"],
            &call["name"],
            &call["arguments"]
        ),
        (
            &json!("function_call"),
            &json!("call_1"),
            &json!("get_weather"),
            &json!("")
        )
    );
    assert_eq!(got[18].1["arguments"], "{\"city\":\"Oslo\"}");
    let output = &got[20].1["response"]["output"];
    assert_eq!(output.as_array().unwrap().len(), 3);
    assert_eq!(
        output[0]["content"][0],
        json!({"type": "reasoning_text", "text": "Thinking."})
    );
    assert_eq!(output[1]["content"][0]["text"], "Let me check.");
    assert_eq!(output[2]["arguments"], "{\"city\":\"Oslo\"}");
    assert!(output
        .as_array()
        .unwrap()
        .iter()
        .all(|i| i["status"] == "completed"));
}

#[test]
fn an_empty_answer_is_still_a_message_and_wild_call_indexes_are_ignored() {
    let mut framer = framer();
    let wild =
        framer.tool_calls(&json!([{"index": 1_000_000, "id": "x", "function": {"name": "f"}}]));
    assert_eq!(wild, None);
    let frames = [
        framer.preamble().unwrap(),
        framer.done(&Finish::new("stop", Usage::new(1, 0))),
    ];
    let got = events(&frames);
    let output = &got.last().unwrap().1["response"]["output"];
    assert_eq!(output[0]["type"], "message");
    assert_eq!(output[0]["content"][0]["text"], "");
}
