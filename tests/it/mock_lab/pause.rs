//! Section 14, pause and step: a running generation's frames stop at
//! `pause`, `step?n=N` lets exactly N more through, `resume` lets the rest
//! go; paused time does not count toward `idle_ms`. Counted frame by frame
//! on a watcher of the generation.

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::*;

/// A watcher's frames so far, read as they come.
struct Watch {
    response: reqwest::Response,
    text: String,
}

impl Watch {
    async fn open(server: &Server, id: &str) -> Watch {
        let response = client()
            .get(server.url(&format!("/v1/generations/{id}/events")))
            .send()
            .await
            .unwrap();
        Watch {
            response,
            text: String::new(),
        }
    }

    fn tokens(&self) -> usize {
        self.text.matches("data: {\"token\"").count()
    }

    /// Reads for `window`; what came is added to the text.
    async fn read_for(&mut self, window: Duration) {
        let _ = tokio::time::timeout(window, async {
            while let Ok(Some(chunk)) = self.response.chunk().await {
                self.text.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await;
    }

    async fn until_tokens(&mut self, n: usize) {
        while self.tokens() < n {
            match self.response.chunk().await.unwrap() {
                Some(chunk) => self.text.push_str(&String::from_utf8_lossy(&chunk)),
                None => panic!("ended before {n} tokens: {}", self.text),
            }
        }
    }
}

async fn control(server: &Server, id: &str, what: &str) -> Value {
    let response = client()
        .post(server.url(&format!("/v1/generations/{id}/{what}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{what}");
    response.json().await.unwrap()
}

#[tokio::test]
async fn pause_holds_the_frames_step_lets_n_through_resume_lets_the_rest_go() {
    // `idle_ms` shorter than the pause: paused time must not count.
    let server = spawn(config(&format!("[timeouts]\nidle_ms = 800\n{FAST_MOCK}"))).await;
    let created = answer_of(
        server.url("/v1/generations"),
        &json!({"prompt": "Tell me about rivers", "mock": {"tokens": 30, "token_delay_ms": 50}}),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let mut watch = Watch::open(&server, &id).await;
    watch.until_tokens(3).await;

    let paused = control(&server, &id, "pause").await;
    assert_eq!(paused["paused"], true);
    // At most one frame was already on its way when the gate shut.
    watch.read_for(Duration::from_millis(300)).await;
    let held = watch.tokens();
    watch.read_for(Duration::from_millis(1200)).await;
    assert_eq!(
        watch.tokens(),
        held,
        "no frame while paused (longer than idle_ms)"
    );

    control(&server, &id, "step?n=2").await;
    watch.read_for(Duration::from_millis(800)).await;
    assert_eq!(watch.tokens(), held + 2, "exactly two frames for step?n=2");

    let resumed = control(&server, &id, "resume").await;
    assert_eq!(resumed["paused"], false);
    watch.read_for(Duration::from_secs(10)).await;
    assert_eq!(watch.tokens(), 30, "{}", watch.text);
    assert!(
        watch.text.contains("event: done"),
        "not idle-timed-out: {}",
        watch.text
    );
}

#[tokio::test]
async fn step_wants_a_paused_generation_and_a_count() {
    let server = spawn(fast_mock_config()).await;
    let created = answer_of(
        server.url("/v1/generations"),
        &json!({"prompt": "hi", "mock": {"tokens": 50, "token_delay_ms": 50}}),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let step = |q: &str| {
        client()
            .post(server.url(&format!("/v1/generations/{id}/step{q}")))
            .send()
    };
    let not_paused = step("").await.unwrap();
    assert_eq!(not_paused.status(), 400);
    control(&server, id, "pause").await;
    let bad = step("?n=0").await.unwrap();
    assert_eq!(bad.status(), 400);
    assert_eq!(bad.json::<Value>().await.unwrap()["error"]["param"], "n");
    let unknown = client()
        .post(server.url("/v1/generations/gen_nope/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    assert_eq!(
        client()
            .get(server.url(&format!("/v1/generations/{id}")))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()["paused"],
        true
    );
}
