//! `POST /v1/embeddings`: the mock's vectors and an upstream's.

use serde_json::{json, Value};

use crate::common::*;

async fn embed(server: &Server, body: Value) -> (u16, Value) {
    let response = client()
        .post(server.url("/v1/embeddings"))
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

fn floats(item: &Value) -> Vec<f64> {
    item["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

#[tokio::test]
async fn the_mock_embeds_texts_as_deterministic_unit_vectors() {
    let server = spawn(config(FAST_MOCK)).await;
    let texts = [
        "The cat sat on the mat",
        "A cat sat on a mat",
        "Quarterly revenue grew",
    ];
    let (status, body) = embed(&server, json!({"model": "mock", "input": texts})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["object"], "list");
    let vectors: Vec<Vec<f64>> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(floats)
        .collect();
    assert_eq!(vectors.len(), 3);
    assert!(vectors.iter().all(|v| v.len() == 1536));
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    assert!((dot(&vectors[0], &vectors[0]) - 1.0).abs() < 1e-4);
    assert!(dot(&vectors[0], &vectors[1]) > dot(&vectors[0], &vectors[2]) + 0.3);
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    // The same input, the same vector; `dimensions` honoured; base64 as
    // OpenAI encodes it (little-endian f32).
    let (_, again) = embed(&server, json!({"model": "mock", "input": texts[0]})).await;
    assert_eq!(floats(&again["data"][0]), vectors[0]);
    let (_, short) = embed(
        &server,
        json!({"model": "mock", "input": "hi", "dimensions": 64}),
    )
    .await;
    assert_eq!(floats(&short["data"][0]).len(), 64);
    let (_, packed) = embed(
        &server,
        json!({"model": "mock", "input": texts[0], "encoding_format": "base64"}),
    )
    .await;
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(packed["data"][0]["embedding"].as_str().unwrap())
        .unwrap();
    let unpacked: Vec<f64> = bytes
        .chunks(4)
        .map(|b| f64::from(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
        .collect();
    assert_eq!(unpacked, vectors[0]);
    // Bad input: OpenAI-shaped 400s naming the field.
    for (body, param) in [
        (json!({"model": "mock"}), "input"),
        (json!({"model": "mock", "input": []}), "input"),
        (
            json!({"model": "mock", "input": "x", "dimensions": 0}),
            "dimensions",
        ),
        (
            json!({"model": "mock", "input": "x", "encoding_format": "hex"}),
            "encoding_format",
        ),
    ] {
        let (status, answer) = embed(&server, body).await;
        assert_eq!(
            (status, answer["error"]["param"].as_str()),
            (400, Some(param)),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn an_openai_upstream_gets_the_embeddings_request_as_it_came() {
    let upstream = crate::common::fake_openai::start().await;
    let server = spawn(config_with_env(
        &format!(
            "[[models]]\nname = \"emb\"\nprovider = \"openai\"\nbase_url = \"{}\"\n\
             api_key_env = \"FAKE_KEY\"\nupstream_model = \"text-embedding-3-small\"\n",
            upstream.base_url
        ),
        &[("FAKE_KEY", "sk-up")],
    ))
    .await;
    let (status, body) = embed(
        &server,
        json!({"model": "emb", "input": ["a", "b"], "user": "u1", "encoding_format": "base64"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "emb");
    assert!(body["data"][1]["embedding"].is_string(), "encoded as asked");
    let sent = upstream.seen.last_body.lock().unwrap().clone().unwrap();
    assert_eq!(sent["model"], "text-embedding-3-small");
    assert_eq!(sent["user"], "u1");
    assert_eq!(sent["encoding_format"], "float");
    assert_eq!(
        upstream.seen.last_auth.lock().unwrap().as_deref(),
        Some("Bearer sk-up")
    );
}
