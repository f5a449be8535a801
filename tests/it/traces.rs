//! Section 19, traces: the real binary exporting OTLP/HTTP to a real
//! receiver (`common::otlp`, decoding the protobuf): a streamed request's
//! span with the GenAI attributes under the client's `traceparent`, its
//! attempt's child span whose context reached the upstream; a retried and
//! fallen-back request's attempts; a continued answer's continuation; and a
//! collector that is down changing nothing for clients.

use std::time::Duration;

use serde_json::json;

use crate::common::binary::Sluice;
use crate::common::fake_flaky::{self, FakeFlaky, ANSWER};
use crate::common::otlp::{self, attribute, hex};
use crate::common::*;

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const CLIENT_SPAN: &str = "b7ad6b7169203331";

fn routes(fake: &FakeFlaky) -> String {
    let route = |name: &str, upstream: &str, extra: &str| {
        format!(
            "[[models]]\nname = \"{name}\"\nprovider = \"openai\"\nbase_url = \"{}/v1\"\n\
             upstream_model = \"{upstream}\"\n{extra}\n",
            fake.addr
        )
    };
    [
        route("good", "ok", "retries = 0"),
        route("shaky", "status-500", "retries = 1\nfallbacks = [\"good\"]"),
        route("cut", "cut", "retries = 0\nmidstream = \"continue\""),
    ]
    .concat()
}

async fn stream(on: &Sluice, model: &str, traceparent: Option<&str>) -> Received {
    let mut request = client().post(on.url("/v1/chat/completions")).json(&json!({
        "model": model, "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Tell me about foxes"}],
    }));
    if let Some(traceparent) = traceparent {
        request = request.header("traceparent", traceparent);
    }
    receive(request.send().await.unwrap()).await
}

#[tokio::test]
async fn spans_of_a_streamed_a_retried_and_a_continued_request_reach_the_collector() {
    let receiver = otlp::start().await;
    let fake = fake_flaky::start().await;
    let config = format!(
        "[telemetry]\notlp_endpoint = \"{}\"\nservice_name = \"sluice-test\"\n{}",
        receiver.base_url,
        routes(&fake)
    );
    let sluice = Sluice::start(&config, &[]);

    let traceparent = format!("00-{TRACE_ID}-{CLIENT_SPAN}-01");
    let got = stream(&sluice, "good", Some(&traceparent)).await;
    assert_eq!(got.status, 200, "{}", got.text);
    let shaky = stream(&sluice, "shaky", None).await;
    assert!(shaky.text.contains("[DONE]"), "{}", shaky.text);
    let cut = stream(&sluice, "cut", None).await;
    assert!(cut.text.contains(": continued after"), "{}", cut.text);

    // Three request spans and their attempts: 1, then 2 failed + 1, then 2.
    let arrived = eventually(Duration::from_secs(15), || {
        receiver
            .spans()
            .iter()
            .filter(|s| s.name.starts_with("chat "))
            .count()
            >= 3
            && receiver.spans().len() >= 9
    })
    .await;
    let spans = receiver.spans();
    let names: Vec<&str> = spans.iter().map(|s| s.name.as_str()).collect();
    assert!(arrived, "{names:?}");

    // The resource names the service as configured, and its version.
    let resources = receiver.resources.lock().unwrap().clone();
    assert!(
        resources.contains(&"service.name=sluice-test".to_owned()),
        "{resources:?}"
    );
    assert!(
        resources.iter().any(|r| r.starts_with("service.version=")),
        "{resources:?}"
    );

    // The streamed request: under the client's trace, with the GenAI
    // attributes and a first-token event.
    let request = spans.iter().find(|s| s.name == "chat good").unwrap();
    assert_eq!(hex(&request.trace_id), TRACE_ID);
    assert_eq!(hex(&request.parent_span_id), CLIENT_SPAN);
    for (key, value) in [
        ("gen_ai.operation.name", "chat"),
        ("gen_ai.provider.name", "openai"),
        ("gen_ai.request.model", "good"),
        ("gen_ai.response.model", "good"),
        ("gen_ai.response.finish_reasons", "stop"),
        ("http.response.status_code", "200"),
    ] {
        assert_eq!(attribute(request, key).as_deref(), Some(value), "{key}");
    }
    let output: u64 = attribute(request, "gen_ai.usage.output_tokens")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(output, fake_flaky::tokens_of(ANSWER).len() as u64);
    assert_eq!(
        attribute(request, "gen_ai.usage.input_tokens").as_deref(),
        Some("100")
    );
    assert!(request
        .events
        .iter()
        .any(|e| e.name == "gen_ai.first_token"));
    // No prompt or answer text in any span.
    for span in &spans {
        for kv in &span.attributes {
            let text = format!("{:?}", kv.value);
            assert!(
                !text.contains("foxes") && !text.contains("quick brown"),
                "{kv:?}"
            );
        }
    }
    // Its attempt: a child, whose context the upstream received.
    let attempt = spans
        .iter()
        .find(|s| s.name == "attempt good" && s.parent_span_id == request.span_id)
        .expect("the attempt's span");
    assert_eq!(
        attribute(attempt, "sluice.attempt.outcome").as_deref(),
        Some("served")
    );
    let sent = fake.seen.traceparents.lock().unwrap().clone();
    let upstream = format!("00-{TRACE_ID}-{}-01", hex(&attempt.span_id));
    assert!(
        sent.contains(&Some(upstream.clone())),
        "{upstream} in {sent:?}"
    );

    // The retried request: two failed attempts on shaky, then the fallback.
    let retried = spans.iter().find(|s| s.name == "chat shaky").unwrap();
    assert_eq!(
        attribute(retried, "gen_ai.response.model").as_deref(),
        Some("good")
    );
    let children: Vec<(&str, String)> = spans
        .iter()
        .filter(|s| s.parent_span_id == retried.span_id)
        .map(|s| {
            (
                s.name.as_str(),
                attribute(s, "sluice.attempt.outcome").unwrap(),
            )
        })
        .collect();
    assert_eq!(children.len(), 3, "{children:?}");
    assert_eq!(
        children
            .iter()
            .filter(|(n, o)| *n == "attempt shaky" && o == "failed")
            .count(),
        2,
        "{children:?}"
    );
    assert!(
        children.contains(&("attempt good", "served".to_owned())),
        "{children:?}"
    );

    // The continued answer: its first attempt and the continuation's, and
    // an event where they were joined.
    let continued = spans.iter().find(|s| s.name == "chat cut").unwrap();
    let attempts = spans
        .iter()
        .filter(|s| s.name == "attempt cut" && s.parent_span_id == continued.span_id)
        .count();
    assert_eq!(attempts, 2);
    assert!(continued.events.iter().any(|e| e.name == "continued"));
    assert_eq!(
        attribute(continued, "sluice.continuations").as_deref(),
        Some("1")
    );
}

#[tokio::test]
async fn a_collector_that_is_down_changes_nothing_for_clients() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let fake = fake_flaky::start().await;
    let config = format!(
        "[telemetry]\notlp_endpoint = \"http://127.0.0.1:{port}\"\n{}",
        routes(&fake)
    );
    let sluice = Sluice::start(&config, &[]);
    for _ in 0..3 {
        let got = stream(&sluice, "good", None).await;
        assert_eq!(got.status, 200);
        assert!(got.text.contains("[DONE]"), "{}", got.text);
    }
    let dropped = eventually_async(Duration::from_secs(15), || async {
        crate::common::redis::metric(&sluice, "sluice_trace_spans_dropped_total").await >= 3.0
    })
    .await;
    assert!(dropped, "the spans that could not go are counted");
}

async fn eventually_async<F: std::future::Future<Output = bool>>(
    within: Duration,
    mut check: impl FnMut() -> F,
) -> bool {
    let deadline = std::time::Instant::now() + within;
    while std::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}
