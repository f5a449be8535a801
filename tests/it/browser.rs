//! A real browser's `EventSource` (headless Debian Chromium, driven by
//! playwright-core from `tests/browser/`) through a TCP relay that cuts the
//! first connection part way: the browser's own reconnect, with its
//! `Last-Event-ID`, must yield the whole answer exactly once, and an
//! `EventSource` that is never closed must stop at the `204` that follows the
//! terminal frame.
//!
//! Needs `tests/browser/install.sh` (which `.ci/run` runs). Without it this
//! test says so and passes, unless `SLUICE_REQUIRE_BROWSER=1` (set by
//! `.ci/run`), where it fails.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

/// Forwards connections to `target`; the first one is cut once it has
/// carried `cut_after` bytes of response.
pub struct Relay {
    pub addr: std::net::SocketAddr,
    pub connections: Arc<AtomicUsize>,
}

pub async fn relay(target: std::net::SocketAddr, cut_after: usize) -> Relay {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let n = counted.fetch_add(1, Ordering::SeqCst);
            let limit = (n == 0).then_some(cut_after);
            tokio::spawn(forward(client, target, limit));
        }
    });
    Relay { addr, connections }
}

async fn forward(client: TcpStream, target: std::net::SocketAddr, cut_after: Option<usize>) {
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = async {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
    };
    let down = async {
        let mut carried = 0;
        let mut buffer = vec![0u8; 4096];
        loop {
            let Ok(n) = server_read.read(&mut buffer).await else {
                return;
            };
            if n == 0 {
                return;
            }
            let n = match cut_after {
                Some(limit) if carried + n >= limit => {
                    let _ = client_write.write_all(&buffer[..limit - carried]).await;
                    // A dead network path: both sides go, no terminator.
                    return;
                }
                _ => n,
            };
            if client_write.write_all(&buffer[..n]).await.is_err() {
                return;
            }
            carried += n;
        }
    };
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

/// `tests/browser/NAME`, when the browser and playwright-core are installed;
/// otherwise a skip (or, with `SLUICE_REQUIRE_BROWSER=1`, a failure).
pub fn script(name: &str) -> Option<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let needed = [
        root.join("node_modules/playwright-core/package.json"),
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())),
    ];
    if let Some(missing) = needed.iter().find(|p| !p.exists()) {
        let hint = format!(
            "the browser test needs {} (run tests/browser/install.sh)",
            missing.display()
        );
        if std::env::var_os("SLUICE_REQUIRE_BROWSER").is_some_and(|v| v == "1") {
            panic!("{hint}");
        }
        eprintln!("skipped: {hint}");
        return None;
    }
    Some(root.join(name))
}

/// Runs a browser script with `env` and parses the JSON line it prints last.
pub async fn run(script: &std::path::Path, env: &[(&str, String)]) -> Value {
    let mut command = Command::new("node");
    command.arg(script).kill_on_drop(true);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .expect("the browser finished within 120 s")
        .expect("node started");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    serde_json::from_str(stdout.trim().lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{stderr}"))
}

#[tokio::test]
async fn a_browser_reconnects_through_a_cut_and_gets_the_whole_answer_once_then_stops() {
    let Some(script) = script("eventsource.mjs") else {
        return;
    };
    let server = spawn(config(
        "[streams]\nreconnect_grace_ms = 10000\n\
         [[models]]\nname = \"mock\"\nprovider = \"mock\"\nttft_ms = 0\ntoken_delay_ms = 40\n",
    ))
    .await;
    let query = "/v1/stream?prompt=Tell+me+about+rivers&mock_tokens=40";
    // The answer as one uninterrupted stream (the mock is deterministic).
    let whole = receive(client().get(server.url(query)).send().await.unwrap()).await;
    assert_eq!(whole.tokens().len(), 40);

    let target = server.base.trim_start_matches("http://").parse().unwrap();
    // Past the headers and a handful of token frames.
    let relay = relay(target, 900).await;
    let url = format!("http://{}{query}", relay.addr);
    let page = server.url("/healthz");
    let seen = run(
        &script,
        &[("SLUICE_STREAM_URL", url), ("SLUICE_PAGE_URL", page)],
    )
    .await;
    eprintln!(
        "browser: {} tokens, {} opens, closed {}, {} ms, relay connections {}",
        seen["tokens"].as_array().map_or(0, Vec::len),
        seen["opens"],
        seen["closed"],
        seen["ms"],
        relay.connections.load(Ordering::SeqCst)
    );
    assert_eq!(seen["foreign"], json!([]), "no request to another host");
    let tokens: Vec<String> = serde_json::from_value(seen["tokens"].clone()).unwrap();
    assert_eq!(tokens, whole.tokens(), "the whole answer, once, in order");
    assert_eq!(seen["done"]["data"]["finish_reason"], "stop");
    assert!(
        seen["opens"].as_u64().unwrap() >= 2,
        "the first connection was cut and the browser reconnected: {seen}"
    );
    assert!(
        relay.connections.load(Ordering::SeqCst) >= 2,
        "the relay carried the reconnect"
    );
    assert_eq!(
        seen["closed"], true,
        "after the terminal frame the reconnect got a 204 and the EventSource stopped: {seen}"
    );
    assert_eq!(seen["errors"], json!([]), "no error frame: {seen}");
}
