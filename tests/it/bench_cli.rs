//! `sluice bench` against a real server: it counts what it received, reads
//! every door's frames, and hangs up when asked (which the server notices).

use std::process::Command;

use crate::common::*;
use serde_json::Value;

fn bench(args: &[&str]) -> Value {
    let output = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("bench")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[tokio::test]
async fn bench_reads_native_frames_and_openai_chunks() {
    let server = spawn(fast_mock_config()).await;
    let native = server.url("/v1/stream");
    let body = r#"{"prompt":"hi","mock":{"tokens":12,"token_delay_ms":2}}"#;
    let report = tokio::task::spawn_blocking(move || {
        bench(&["--url", &native, "-c", "4", "-n", "8", "--body", body])
    })
    .await
    .unwrap();
    assert_eq!(report["streams"], 8);
    assert_eq!(report["ends"]["done"], 8);
    assert_eq!(report["errors"], 0);
    let tokens = report["tokens"].as_u64().unwrap();
    assert!((8 * 10..=8 * 12).contains(&tokens), "{report}");
    assert_eq!(report["ttft"]["count"], 8);
    assert!(report["itl"]["p50_ms"].as_f64().unwrap() >= 1.0);

    let chat = server.url("/v1/chat/completions");
    let body =
        r#"{"model":"mock:tokens=6","stream":true,"messages":[{"role":"user","content":"hi"}]}"#;
    let report = tokio::task::spawn_blocking(move || {
        bench(&["--url", &chat, "-c", "2", "-n", "2", "--body", body])
    })
    .await
    .unwrap();
    assert_eq!(report["ends"]["done"], 2, "{report}");
    assert!(report["tokens"].as_u64().unwrap() >= 10);
}

#[tokio::test]
async fn bench_reads_the_responses_and_messages_events() {
    let server = spawn(fast_mock_config()).await;
    let doors = [
        (
            "/v1/responses",
            r#"{"model":"mock:tokens=6","stream":true,"input":"hi"}"#,
            r#"{"model":"mock:fail_after=2","stream":true,"input":"hi"}"#,
        ),
        (
            "/v1/messages",
            r#"{"model":"mock:tokens=6","stream":true,"max_tokens":99,"messages":[{"role":"user","content":"hi"}]}"#,
            r#"{"model":"mock:fail_after=2","stream":true,"max_tokens":99,"messages":[{"role":"user","content":"hi"}]}"#,
        ),
    ];
    for (path, ok, failing) in doors {
        let url = server.url(path);
        let (report, failed) = tokio::task::spawn_blocking(move || {
            let report = bench(&["--url", &url, "-c", "2", "-n", "2", "--body", ok]);
            (
                report,
                bench(&["--url", &url, "-c", "1", "-n", "1", "--body", failing]),
            )
        })
        .await
        .unwrap();
        assert_eq!(report["ends"]["done"], 2, "{path}: {report}");
        assert_eq!(report["tokens"], 12, "{path}: {report}");
        assert_eq!(failed["errors"], 1, "{path}: {failed}");
        assert_eq!(failed["tokens"], 2, "{path}: {failed}");
    }
}

#[tokio::test]
async fn bench_hangs_up_after_k_tokens_and_reports_errors_by_kind() {
    let server = spawn(fast_mock_config()).await;
    let url = server.url("/v1/stream");
    let body = r#"{"prompt":"hi","mock":{"tokens":500,"token_delay_ms":5}}"#;
    let report = tokio::task::spawn_blocking({
        let url = url.clone();
        move || {
            bench(&[
                "--url",
                &url,
                "-c",
                "3",
                "-n",
                "3",
                "--hangup-after",
                "4",
                "--body",
                body,
            ])
        }
    })
    .await
    .unwrap();
    assert_eq!(report["ends"]["hung_up"], 3, "{report}");
    assert_eq!(report["tokens"], 12);
    let failing = r#"{"prompt":"hi","mock":{"error_status":503}}"#;
    let report = tokio::task::spawn_blocking(move || {
        bench(&["--url", &url, "-c", "2", "-n", "2", "--body", failing])
    })
    .await
    .unwrap();
    assert_eq!(report["ends"]["status:503"], 2, "{report}");
    assert_eq!(report["errors"], 2);
}
