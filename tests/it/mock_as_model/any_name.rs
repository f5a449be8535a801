//! Any model name: the embedded default answers every name under the name
//! asked for, a `:` starts knobs only before `knob=value` pairs, and a
//! config's `[[models]] name` may be a glob.

use serde_json::{json, Value};

use crate::common::binary::Sluice;
use crate::common::*;

async fn chat(on: &Sluice, model: &str) -> reqwest::Response {
    client()
        .post(on.url("/v1/chat/completions"))
        .json(&json!({
            "model": model, "stream": true,
            "messages": [{"role": "user", "content": "hi"}],
            "mock": {"tokens": 3, "ttft_ms": 0, "token_delay_ms": 0}
        }))
        .send()
        .await
        .unwrap()
}

/// The `model` of every chunk of a Chat Completions stream.
async fn chunk_models(response: reqwest::Response) -> Vec<String> {
    let got = receive(response).await;
    got.events
        .iter()
        .filter(|e| e.data != "[DONE]")
        .map(|e| {
            let chunk: Value = serde_json::from_str(&e.data).unwrap();
            chunk["model"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn with_no_config_the_mock_answers_any_model_name_under_that_name() {
    let sluice = Sluice::embedded();
    for name in ["gpt-4o", "qwen2.5:7b", "o3-mini"] {
        let response = chat(&sluice, name).await;
        assert_eq!(response.status(), 200, "{name}");
        let models = chunk_models(response).await;
        assert!(!models.is_empty());
        assert!(models.iter().all(|m| m == name), "{name}: {models:?}");
    }
    // The Messages door, with a name an Anthropic app hard-codes.
    let message: Value = answer_of(
        sluice.url("/v1/messages"),
        &json!({
            "model": "claude-sonnet-4-5", "max_tokens": 50,
            "messages": [{"role": "user", "content": "hi"}]
        }),
    )
    .await;
    assert_eq!(message["model"], "claude-sonnet-4-5", "{message}");
    assert_eq!(message["type"], "message");
    // Knobs in the name still work, on the mock and on any name.
    for name in ["mock:tokens=2", "gpt-4o:tokens=2"] {
        let got = receive(
            client()
                .post(sluice.url("/v1/stream"))
                .json(&json!({"model": name, "prompt": "hi"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(got.status, 200, "{name}: {}", got.text);
        assert_eq!(got.tokens().len(), 2, "{name}: {}", got.text);
    }
    // The list still names the mock alone; a made-up name is no metric label.
    let models: Value = client()
        .get(sluice.url("/v1/models"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["mock"]);
    let metrics = client()
        .get(sluice.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains("model=\"o3-mini\""), "{metrics}");
    assert!(metrics.contains("model=\"*\""));
}

#[tokio::test]
async fn config_names_may_be_globs_tried_after_the_exact_names_in_file_order() {
    let sluice = Sluice::start(
        "[[models]]\nname = \"claude-*\"\nprovider = \"mock\"\ntext = \"from claude star\"\n\
         [[models]]\nname = \"claude-3-haiku\"\nprovider = \"mock\"\ntext = \"exact haiku\"\n\
         [[models]]\nname = \"*\"\nprovider = \"mock\"\ntext = \"from star\"\n",
        &[],
    );
    let answer = async |model: &str| {
        let got = receive(
            client()
                .post(sluice.url("/v1/stream"))
                .json(&json!({"model": model, "prompt": "hi"}))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(got.status, 200, "{model}: {}", got.text);
        let done: Value = serde_json::from_str(&got.terminal().data).unwrap();
        (got.token_text(), done["model"].as_str().unwrap().to_owned())
    };
    assert_eq!(
        answer("claude-opus-4").await,
        ("from claude star".into(), "claude-opus-4".into())
    );
    assert_eq!(
        answer("claude-3-haiku").await,
        ("exact haiku".into(), "claude-3-haiku".into())
    );
    assert_eq!(
        answer("gpt-4o").await,
        ("from star".into(), "gpt-4o".into())
    );
}

#[tokio::test]
async fn without_a_pattern_an_unknown_name_is_still_a_404() {
    let server = spawn(config_with_env(
        "[[models]]\nname = \"claude-*\"\nprovider = \"mock\"\n",
        &[],
    ))
    .await;
    let response = client()
        .post(server.url("/v1/chat/completions"))
        .json(&json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "model_not_found", "{body}");
    assert_eq!(body["error"]["param"], "model");
}

#[test]
fn a_bad_glob_is_a_config_error_naming_the_model() {
    let err = sluice::config::Config::parse(
        "[[models]]\nname = \"gpt-[\"\nprovider = \"mock\"\n",
        |_| None,
    )
    .unwrap_err();
    assert_eq!(err.key, "models[0].name", "{err}");
    assert!(err.to_string().contains("glob"), "{err}");
}
