//! The OpenAI Responses door, `POST /v1/responses` (contract section 10):
//! the event sequence byte for byte, the token cap and failures, whole
//! `response` objects, errors in OpenAI's shape, every provider behind it,
//! and hang-ups.

use std::time::Duration;

use crate::common::fake_openai::{self, TOKENS};
use crate::common::{fake_anthropic, fake_ollama, *};
use serde_json::{json, Value};

pub fn responses(model: &str, stream: bool) -> Value {
    json!({"model": model, "input": "Tell me a joke", "stream": stream})
}

async fn post(server: &Server, body: Value) -> Received {
    post_to(server, "/v1/responses", body).await
}

/// Each event's name, with its data as JSON; every frame must have both.
pub fn named_events(got: &Received) -> Vec<(String, Value)> {
    got.events
        .iter()
        .map(|e| {
            let data = serde_json::from_str(&e.data)
                .unwrap_or_else(|err| panic!("not JSON ({err}): {}", e.data));
            (e.event.clone(), data)
        })
        .collect()
}

/// The raw body with the generated ids and time replaced by placeholders.
fn normalized(got: &Received) -> String {
    let events = named_events(got);
    let response = &events[0].1["response"];
    let item = &events[2].1["item"]["id"];
    got.text
        .replace(response["id"].as_str().unwrap(), "resp_ID")
        .replace(item.as_str().unwrap(), "msg_ID")
        .replace(
            &format!("\"created_at\":{}", response["created_at"]),
            "\"created_at\":0",
        )
}

/// The text of every `response.output_text.delta`.
fn deltas(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter(|(kind, _)| kind == "response.output_text.delta")
        .map(|(_, data)| data["delta"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_stream_is_openais_event_sequence_byte_for_byte() {
    let server = spawn(fast_mock_config()).await;
    let got = post(
        &server,
        json!({"model": "mock", "input": [{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
               "instructions": "Be brief.", "stream": true, "mock": {"text": "Hi there"}}),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.headers["content-type"], "text/event-stream");
    let response = |status: &str, output: &str, usage: &str| {
        format!(
            r#"{{"id":"resp_ID","object":"response","created_at":0,"status":"{status}","error":null,"incomplete_details":null,"instructions":"Be brief.","max_output_tokens":null,"model":"mock","output":[{output}],"parallel_tool_calls":true,"previous_response_id":null,"reasoning":{{"effort":null,"summary":null}},"store":false,"temperature":1.0,"text":{{"format":{{"type":"text"}}}},"tool_choice":"auto","tools":[],"top_p":1.0,"truncation":"disabled","usage":{usage},"user":null,"metadata":{{}}}}"#
        )
    };
    let part = |text: &str| {
        format!(r#"{{"type":"output_text","annotations":[],"logprobs":[],"text":"{text}"}}"#)
    };
    let item = |status: &str, content: &str| {
        format!(
            r#"{{"id":"msg_ID","type":"message","status":"{status}","role":"assistant","content":[{content}]}}"#
        )
    };
    let at = r#""item_id":"msg_ID","output_index":0,"content_index":0"#;
    let usage = r#"{"input_tokens":13,"input_tokens_details":{"cached_tokens":0},"output_tokens":2,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":15}"#;
    let expected = [
        (
            "response.created",
            format!(r#""response":{}"#, response("in_progress", "", "null")),
        ),
        (
            "response.in_progress",
            format!(r#""response":{}"#, response("in_progress", "", "null")),
        ),
        (
            "response.output_item.added",
            format!(r#""output_index":0,"item":{}"#, item("in_progress", "")),
        ),
        (
            "response.content_part.added",
            format!(r#"{at},"part":{}"#, part("")),
        ),
        (
            "response.output_text.delta",
            format!(r#"{at},"delta":"Hi","logprobs":[]"#),
        ),
        (
            "response.output_text.delta",
            format!(r#"{at},"delta":" there","logprobs":[]"#),
        ),
        (
            "response.output_text.done",
            format!(r#"{at},"text":"Hi there","logprobs":[]"#),
        ),
        (
            "response.content_part.done",
            format!(r#"{at},"part":{}"#, part("Hi there")),
        ),
        (
            "response.output_item.done",
            format!(
                r#""output_index":0,"item":{}"#,
                item("completed", &part("Hi there"))
            ),
        ),
        (
            "response.completed",
            format!(
                r#""response":{}"#,
                response("completed", &item("completed", &part("Hi there")), usage)
            ),
        ),
    ];
    let expected: String = expected
        .iter()
        .enumerate()
        .map(|(n, (kind, fields))| {
            format!(
                "event: {kind}\ndata: {{\"type\":\"{kind}\",\"sequence_number\":{n},{fields}}}\n\n"
            )
        })
        .collect();
    assert_eq!(normalized(&got), expected);
    assert!(!got.text.contains("[DONE]"));
}

#[tokio::test]
async fn the_token_cap_ends_with_response_incomplete() {
    let server = spawn(fast_mock_config()).await;
    let mut body = responses("mock", true);
    body["max_output_tokens"] = json!(3);
    let got = post(&server, body).await;
    let events = named_events(&got);
    let (kind, last) = events.last().unwrap();
    assert_eq!(kind, "response.incomplete");
    let response = &last["response"];
    assert_eq!(response["status"], "incomplete");
    assert_eq!(
        response["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(response["max_output_tokens"], 3);
    assert_eq!(response["usage"]["output_tokens"], 3);
    assert_eq!(
        response["output"][0]["content"][0]["text"],
        json!(deltas(&events))
    );
    assert_eq!(
        events
            .iter()
            .filter(|(k, _)| k.starts_with("response.output_text.delta"))
            .count(),
        3
    );
}

#[tokio::test]
async fn a_failure_after_the_start_ends_with_response_failed() {
    let server = spawn(fast_mock_config()).await;
    let got = post(
        &server,
        json!({"model": "mock:fail_after=2", "input": "hi", "stream": true}),
    )
    .await;
    assert_eq!(got.status, 200);
    assert!(!got.cut);
    let events = named_events(&got);
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        kinds
            .iter()
            .filter(|k| k.starts_with("response.output_text.delta"))
            .count(),
        2
    );
    assert_eq!(kinds.last(), Some(&"response.failed"));
    assert!(!kinds.contains(&"response.completed"));
    let (_, failed) = events.last().unwrap();
    assert_eq!(failed["sequence_number"], json!(events.len() - 1));
    assert_eq!(failed["response"]["status"], "failed");
    assert_eq!(failed["response"]["error"]["code"], "upstream_error");
    assert!(failed["response"]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("fail_after"));
}

#[tokio::test]
async fn without_stream_the_answer_is_one_response_object() {
    let server = spawn(fast_mock_config()).await;
    let streamed = named_events(&post(&server, responses("mock", true)).await);
    let got = post(&server, responses("mock", false)).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.headers["content-type"], "application/json");
    let response = got.json();
    assert!(response["id"].as_str().unwrap().starts_with("resp_"));
    assert_eq!(response["object"], "response");
    assert_eq!(response["status"], "completed");
    let output = &response["output"][0];
    assert_eq!(output["type"], "message");
    assert_eq!(output["role"], "assistant");
    // The same answer the stream gives, with the same usage.
    assert_eq!(output["content"][0]["text"], json!(deltas(&streamed)));
    let completed = &streamed.last().unwrap().1["response"];
    assert_eq!(response["usage"], completed["usage"]);
}

#[tokio::test]
async fn errors_before_the_start_are_in_openais_shape() {
    let server = spawn(config(&format!(
        "[auth]\napi_keys = [\"sk-one\"]\n{FAST_MOCK}"
    )))
    .await;
    let authed = |body: Value| {
        client()
            .post(server.url("/v1/responses"))
            .bearer_auth("sk-one")
            .json(&body)
    };
    let got = send(
        client()
            .post(server.url("/v1/responses"))
            .json(&responses("mock", true)),
    )
    .await;
    assert_eq!(got.status, 401);
    assert_eq!(error_of(&got)["code"], "invalid_api_key");

    let got = send(authed(responses("nope", true))).await;
    assert_eq!(got.status, 404);
    assert_eq!(error_of(&got)["code"], "model_not_found");

    let got = send(authed(
        json!({"model": "mock", "input": "hi", "max_output_tokens": -1}),
    ))
    .await;
    assert_eq!(got.status, 400);
    assert_eq!(error_of(&got)["param"], "max_output_tokens");

    let got = send(authed(
        json!({"model": "mock", "input": "hi", "previous_response_id": "resp_1"}),
    ))
    .await;
    assert_eq!(got.status, 400);
    assert_eq!(error_of(&got)["param"], "previous_response_id");

    let got = send(authed(
        json!({"model": "mock:error_status=503", "input": "hi", "stream": true}),
    ))
    .await;
    assert_eq!(got.status, 503);
    assert_eq!(error_of(&got)["type"], "overloaded");
    let got = send(authed(
        json!({"model": "mock", "input": "hi", "mock": {"error_status": 429}}),
    ))
    .await;
    assert_eq!(got.status, 429);
    assert!(got.headers.contains_key("retry-after"));
}

/// One sluice with a model on every provider, each behind a fake upstream.
pub struct EveryProvider {
    pub server: Server,
    pub openai: fake_openai::FakeOpenAi,
    pub anthropic: fake_anthropic::Fake,
    pub expected: Vec<(&'static str, String)>,
}

pub async fn every_provider() -> EveryProvider {
    let openai = fake_openai::start().await;
    let anthropic = fake_anthropic::start().await;
    let ollama = fake_ollama::start().await;
    let toml = format!(
        "{FAST_MOCK}
[[models]]
name = \"gpt\"
provider = \"openai\"
base_url = \"{}\"
upstream_model = \"ok\"
api_key_env = \"OPENAI_KEY\"
retries = 0

[[models]]
name = \"gpt-drip\"
provider = \"openai\"
base_url = \"{}\"
upstream_model = \"drip\"
retries = 0

[[models]]
name = \"claude\"
provider = \"anthropic\"
base_url = \"{}\"
upstream_model = \"ok\"
api_key_env = \"ANTHROPIC_KEY\"
retries = 0

[[models]]
name = \"claude-short\"
provider = \"anthropic\"
base_url = \"{}\"
upstream_model = \"max-tokens\"
api_key_env = \"ANTHROPIC_KEY\"
retries = 0

[[models]]
name = \"llama\"
provider = \"ollama\"
base_url = \"{}\"
upstream_model = \"ok\"
retries = 0
",
        openai.base_url, openai.base_url, anthropic.base_url, anthropic.base_url, ollama.base_url
    );
    let server = spawn(config_with_env(
        &toml,
        &[
            ("OPENAI_KEY", fake_openai::UPSTREAM_KEY),
            ("ANTHROPIC_KEY", fake_anthropic::KEY),
        ],
    ))
    .await;
    let expected = vec![
        ("mock:text=Just this", "Just this".to_owned()),
        ("gpt", TOKENS.concat()),
        ("claude", fake_anthropic::TEXT.concat()),
        ("llama", fake_ollama::TEXT.concat()),
    ];
    EveryProvider {
        server,
        openai,
        anthropic,
        expected,
    }
}

#[tokio::test]
async fn every_provider_streams_through_the_door_and_no_key_leaks() {
    let up = every_provider().await;
    for (model, text) in &up.expected {
        let mut body = responses(model, true);
        body["instructions"] = json!("Be brief.");
        let got = post(&up.server, body).await;
        assert_eq!(got.status, 200, "{model}: {}", got.text);
        let events = named_events(&got);
        assert_eq!(deltas(&events), *text, "{model}");
        let (kind, last) = events.last().unwrap();
        assert_eq!(kind, "response.completed", "{model}");
        assert_eq!(
            last["response"]["output"][0]["content"][0]["text"],
            json!(text)
        );
        assert!(
            last["response"]["usage"]["output_tokens"].as_u64().unwrap() > 0,
            "{model}"
        );
        assert!(!got.text.contains("SECRET"), "{model}: a key leaked");
    }
    // Anthropic's stop reason for the cap comes through as incomplete.
    let got = post(&up.server, responses("claude-short", true)).await;
    assert_eq!(named_events(&got).last().unwrap().0, "response.incomplete");
}

#[tokio::test]
async fn instructions_and_history_reach_an_openai_upstream_as_chat_messages() {
    let up = every_provider().await;
    let got = post(
        &up.server,
        json!({"model": "gpt", "stream": true, "instructions": "Be brief.", "max_output_tokens": 50,
               "temperature": 0.5,
               "input": [{"role": "user", "content": "Hi"},
                         {"role": "assistant", "content": [{"type": "output_text", "text": "Hello!"}]},
                         {"role": "user", "content": [{"type": "input_text", "text": "A joke?"}]}],
               "store": true, "text": {"format": {"type": "text"}}}),
    )
    .await;
    assert_eq!(got.status, 200, "{}", got.text);
    let sent = up.openai.seen.last_body.lock().unwrap().clone().unwrap();
    assert_eq!(
        sent["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
               {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "A joke?"}])
    );
    assert_eq!(sent["max_tokens"], 50);
    assert_eq!(sent["temperature"], 0.5);
    assert_eq!(sent["stream"], true);
    // Responses-only fields are not sent to a Chat Completions upstream.
    assert!(
        sent.get("store").is_none() && sent.get("text").is_none(),
        "{sent}"
    );
}

#[tokio::test]
async fn a_client_hanging_up_cancels_the_upstream() {
    let up = every_provider().await;
    let mut response = client()
        .post(up.server.url("/v1/responses"))
        .json(&responses("gpt-drip", true))
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    while seen.matches("response.output_text.delta\n").count() < 2 {
        let chunk = response.chunk().await.unwrap().expect("the stream goes on");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(response);
    assert!(up.openai.seen.saw_cancels(1, Duration::from_secs(2)).await);
}
