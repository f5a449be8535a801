use futures_util::StreamExt;
use tokio::time::{Duration, Instant};

use super::*;
use crate::generation::{Message, Role};

fn request(knobs: MockKnobs) -> GenRequest {
    GenRequest {
        messages: vec![Message {
            role: Role::User,
            content: "hello".into(),
        }],
        mock: knobs,
        ..GenRequest::default()
    }
}

/// Paused time: the clock moves only when every task waits, so the gaps
/// seen here are the mock's own schedule, exactly.
#[tokio::test(start_paused = true)]
async fn tokens_come_at_their_deadlines_ttft_then_one_gap_each() {
    let knobs = MockKnobs {
        ttft_ms: Some(300),
        token_delay_ms: Some(40),
        tokens: Some(5),
        ..MockKnobs::default()
    };
    let started = Instant::now();
    let mut events = Mock::new(MockKnobs::default()).generate(request(knobs));
    let mut at = Vec::new();
    while let Some(event) = events.next().await {
        if let TokenEvent::Token(_) = event {
            at.push(started.elapsed());
        }
    }
    let ms: Vec<u128> = at.iter().map(Duration::as_millis).collect();
    assert_eq!(ms, [300, 340, 380, 420, 460]);
}

#[tokio::test(start_paused = true)]
async fn jitter_spreads_the_gaps_within_its_bound_and_keeps_the_pace() {
    let knobs = MockKnobs {
        ttft_ms: Some(0),
        token_delay_ms: Some(50),
        jitter_ms: Some(20),
        tokens: Some(60),
        ..MockKnobs::default()
    };
    let mut events = Mock::new(MockKnobs::default()).generate(request(knobs));
    let mut last: Option<Instant> = None;
    let mut gaps: Vec<u128> = Vec::new();
    while let Some(event) = events.next().await {
        if let TokenEvent::Token(_) = event {
            let now = Instant::now();
            if let Some(last) = last {
                gaps.push((now - last).as_millis());
            }
            last = Some(now);
        }
    }
    assert!(gaps.len() >= 50, "{} gaps", gaps.len());
    assert!(gaps.iter().all(|g| (30..=70).contains(g)), "{gaps:?}");
    let distinct: std::collections::HashSet<_> = gaps.iter().collect();
    assert!(distinct.len() > 5, "the gaps do not spread: {gaps:?}");
}

#[tokio::test(start_paused = true)]
async fn an_error_status_fails_at_once_and_a_cut_comes_after_its_tokens() {
    let failing = MockKnobs {
        error_status: Some(429),
        ..MockKnobs::default()
    };
    let mut events = Mock::new(MockKnobs::default()).generate(request(failing));
    assert_eq!(
        events.next().await,
        Some(TokenEvent::Error(UpstreamError::MockStatus {
            status: 429,
            retry_after: Some(1)
        }))
    );
    assert_eq!(events.next().await, None);

    let dropping = MockKnobs {
        ttft_ms: Some(0),
        token_delay_ms: Some(1),
        drop_after: Some(3),
        ..MockKnobs::default()
    };
    let events: Vec<_> = Mock::new(MockKnobs::default())
        .generate(request(dropping))
        .collect()
        .await;
    assert_eq!(events.len(), 4);
    assert_eq!(events.last(), Some(&TokenEvent::Cut));
}

async fn finish_of(request: GenRequest) -> (String, Finish) {
    let events: Vec<_> = Mock::new(MockKnobs::default())
        .generate(request)
        .collect()
        .await;
    let text = events
        .iter()
        .filter_map(|e| match e {
            TokenEvent::Token(t) => Some(t.as_str()),
            _ => None,
        })
        .collect();
    match events.last() {
        Some(TokenEvent::Done(finish)) => (text, finish.clone()),
        other => panic!("no done: {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_stop_sequence_ends_the_text_before_it_and_is_reported() {
    let knobs = MockKnobs {
        text: Some("one two three. four five".into()),
        ..MockKnobs::default()
    };
    let stopped = GenRequest {
        stop: vec!["zzz".into(), "ree.".into(), "four".into()],
        ..request(knobs.clone())
    };
    let (text, finish) = finish_of(stopped.clone()).await;
    // "ree." begins inside the token " three": that piece is cut again.
    assert_eq!(text, "one two th");
    assert_eq!(finish.finish_reason, "stop");
    assert_eq!(finish.stop_sequence.as_deref(), Some("ree."));
    assert_eq!(finish.usage.completion_tokens, 3);

    // A stop sequence the cap comes before is a `length` finish.
    let capped = GenRequest {
        max_tokens: Some(2),
        ..stopped
    };
    let (text, finish) = finish_of(capped).await;
    assert_eq!(text, "one two");
    assert_eq!(
        (finish.finish_reason.as_str(), finish.stop_sequence),
        ("length", None)
    );

    let (text, finish) = finish_of(request(knobs)).await;
    assert_eq!(text, "one two three. four five");
    assert_eq!(finish.stop_sequence, None);
}

async fn events_of(request: GenRequest) -> Vec<TokenEvent> {
    Mock::new(MockKnobs::default())
        .generate(request)
        .collect()
        .await
}

#[tokio::test(start_paused = true)]
async fn reasoning_tokens_come_first_apart_from_the_answer_and_count_in_usage() {
    let knobs = MockKnobs {
        reasoning_tokens: Some(12),
        tokens: Some(5),
        ..MockKnobs::default()
    };
    let events = events_of(request(knobs)).await;
    let reasoning: Vec<&str> = events
        .iter()
        .map_while(|e| match e {
            TokenEvent::Reasoning(text) => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(tokenizer::count(&reasoning.concat()), 12, "{reasoning:?}");
    let answer = events
        .iter()
        .filter(|e| matches!(e, TokenEvent::Token(_)))
        .count();
    assert_eq!(answer, 5);
    assert_eq!(
        events.len(),
        reasoning.len() + 5 + 1,
        "reasoning, then answer, then done"
    );
    let Some(TokenEvent::Done(finish)) = events.last() else {
        panic!("no done")
    };
    assert_eq!(finish.usage.completion_tokens, 17);
    assert_eq!(finish.usage.reasoning_tokens, Some(12));

    // The cap counts reasoning: a cap inside it leaves no answer.
    let capped = GenRequest {
        max_tokens: Some(4),
        ..request(MockKnobs {
            reasoning_tokens: Some(12),
            ..MockKnobs::default()
        })
    };
    let events = events_of(capped).await;
    assert!(!events.iter().any(|e| matches!(e, TokenEvent::Token(_))));
    let Some(TokenEvent::Done(finish)) = events.last() else {
        panic!("no done")
    };
    assert_eq!(
        (
            finish.finish_reason.as_str(),
            finish.usage.completion_tokens
        ),
        ("length", 4)
    );
}

fn weather_tool() -> crate::generation::Tool {
    crate::generation::Tool {
        name: "get_weather".into(),
        description: None,
        parameters: serde_json::json!({
            "type": "object",
            "properties": {
                "city": {"type": "string", "minLength": 2},
                "unit": {"enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
                "when": {"type": "string", "format": "date"},
                "hourly": {"type": "boolean"},
                "where": {"$ref": "#/$defs/place"},
                "tags": {"type": "array", "items": {"type": "string", "maxLength": 4}, "minItems": 2, "maxItems": 3},
            },
            "required": ["city", "unit", "days"],
            "$defs": {"place": {"type": "object", "properties": {"lat": {"type": "number", "exclusiveMinimum": -90, "exclusiveMaximum": 90}}, "required": ["lat"]}},
            "additionalProperties": false,
        }),
    }
}

/// The tool call's deltas: the first (id and name), then the arguments.
fn tool_call_of(events: &[TokenEvent]) -> (serde_json::Value, String) {
    let mut calls = events.iter().filter_map(|e| match e {
        TokenEvent::ToolCalls(calls) => Some(calls.clone()),
        _ => None,
    });
    let first = calls.next().expect("a tool call");
    let arguments = calls
        .map(|c| c[0]["function"]["arguments"].as_str().unwrap().to_owned())
        .collect();
    (first, arguments)
}

#[tokio::test(start_paused = true)]
async fn a_forced_tool_is_called_with_arguments_valid_against_its_schema() {
    let tool = weather_tool();
    let forced = GenRequest {
        tools: vec![tool.clone()],
        tool_choice: crate::generation::ToolChoice::Required,
        ..request(MockKnobs::default())
    };
    let events = events_of(forced.clone()).await;
    assert!(!events.iter().any(|e| matches!(e, TokenEvent::Token(_))));
    let (first, arguments) = tool_call_of(&events);
    assert_eq!(first[0]["function"]["name"], "get_weather");
    assert_eq!(first[0]["type"], "function");
    assert!(first[0]["id"].as_str().unwrap().starts_with("call_"));
    let value: serde_json::Value = serde_json::from_str(&arguments).unwrap();
    let validator = jsonschema::validator_for(&tool.parameters).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{value}: {errors:?}");
    let Some(TokenEvent::Done(finish)) = events.last() else {
        panic!("no done")
    };
    assert_eq!(finish.finish_reason, "tool_calls");
    // Deterministic: the same request, the same call.
    assert_eq!(events_of(forced).await, events);

    // The knob names the tool without a forcing choice; `auto` alone calls none.
    let by_knob = GenRequest {
        tools: vec![tool.clone()],
        ..request(MockKnobs {
            tool_call: Some("get_weather".into()),
            ..MockKnobs::default()
        })
    };
    assert_eq!(
        tool_call_of(&events_of(by_knob).await).0[0]["function"]["name"],
        "get_weather"
    );
    let auto = GenRequest {
        tools: vec![tool],
        ..request(MockKnobs::default())
    };
    assert!(events_of(auto)
        .await
        .iter()
        .all(|e| !matches!(e, TokenEvent::ToolCalls(_))));
}

#[tokio::test(start_paused = true)]
async fn a_heavy_plan_made_on_the_blocking_pool_is_the_same_answer() {
    let knobs = MockKnobs {
        tokens: Some(5_000),
        token_delay_ms: Some(0),
        ..MockKnobs::default()
    };
    let heavy = request(knobs.clone());
    assert!(is_heavy(&knobs, &heavy));
    let events = events_of(heavy).await;
    let tokens = events
        .iter()
        .filter(|e| matches!(e, TokenEvent::Token(_)))
        .count();
    assert!(tokens >= 4_000, "{tokens}");
    let Some(TokenEvent::Done(finish)) = events.last() else {
        panic!("no done")
    };
    assert_eq!(finish.usage.completion_tokens, 5_000);
    assert_eq!(
        finish.usage.prompt_tokens,
        tokenizer::prompt_tokens(&request(knobs).messages)
    );
}
