//! The shipped nginx config (`deploy/nginx/`) in front of two sluice
//! replicas: tokens still arrive one by one, and a client that hangs up at
//! nginx still cancels the generation behind it.
//!
//! Needs nginx (Debian's `nginx` package, which `.ci/run` installs). Without
//! it these tests say so and pass, unless `SLUICE_REQUIRE_NGINX=1` (set by
//! `.ci/run`), where a missing nginx fails.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use serde_json::json;

const MODEL: &str = "behind-nginx";

fn nginx_binary() -> Option<PathBuf> {
    let found = ["/usr/sbin/nginx", "/usr/bin/nginx", "/usr/local/sbin/nginx"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        let hint = "nginx is not installed (apt-get install nginx)";
        if std::env::var_os("SLUICE_REQUIRE_NGINX").is_some_and(|v| v == "1") {
            panic!("{hint}");
        }
        eprintln!("skipped: {hint}");
    }
    found
}

struct Nginx {
    child: Child,
    dir: PathBuf,
    base: String,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, so the master takes its workers down with it (SIGKILL would
        // orphan them, holding the test's stderr open).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The shipped config with the replicas' and nginx's own ports filled in.
fn start_nginx(binary: &Path, replicas: &[&Server]) -> Nginx {
    let shipped = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/nginx");
    let site = std::fs::read_to_string(shipped.join("sluice.conf")).unwrap();
    let whole = std::fs::read_to_string(shipped.join("nginx.conf")).unwrap();
    let servers: String = replicas
        .iter()
        .map(|r| {
            format!(
                "    server {} max_fails=3 fail_timeout=10s;\n",
                r.base.trim_start_matches("http://")
            )
        })
        .collect();
    let site: String = site
        .lines()
        .filter(|line| !line.trim_start().starts_with("server 127.0.0.1:"))
        .map(|line| format!("{line}\n"))
        .collect::<String>()
        .replace("    least_conn;\n", &format!("    least_conn;\n{servers}"));
    let port = free_port();
    let site = site.replace("listen 8080;", &format!("listen 127.0.0.1:{port};"));
    assert!(site.contains("proxy_buffering off;"));
    let dir = std::env::temp_dir().join(format!("sluice-nginx-{}-{port}", std::process::id()));
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    std::fs::write(dir.join("sluice.conf"), site).unwrap();
    std::fs::write(dir.join("nginx.conf"), whole).unwrap();
    let child = Command::new(binary)
        .arg("-p")
        .arg(&dir)
        .args(["-c", "nginx.conf", "-g", "daemon off; user root;"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("nginx starts");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nginx did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    Nginx {
        child,
        dir,
        base: format!("http://127.0.0.1:{port}"),
    }
}

fn replica_config() -> sluice::config::Config {
    config(&format!(
        "default_model = \"{MODEL}\"\n[limits]\ntrust_forwarded_for = true\n[[models]]\nname = \"{MODEL}\"\nprovider = \"mock\"\n"
    ))
}

#[tokio::test]
async fn tokens_pass_through_nginx_one_by_one() {
    let Some(binary) = nginx_binary() else { return };
    let (a, b) = (spawn(replica_config()).await, spawn(replica_config()).await);
    let nginx = start_nginx(&binary, &[&a, &b]);
    let start = Instant::now();
    let response = client()
        .post(format!("{}/v1/stream", nginx.base))
        .json(&json!({"prompt": "hi", "mock": {"ttft_ms": 0, "token_delay_ms": 200, "tokens": 5}}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let chunks = timed_chunks(start, response).await;
    let first_token = chunks
        .iter()
        .find(|(_, text)| text.contains("data: {\"token\""))
        .expect("a token")
        .0;
    let done = chunks
        .iter()
        .find(|(_, text)| text.contains("event: done"))
        .expect("done")
        .0;
    // Five tokens 200 ms apart: buffered, they would all arrive together at the end.
    assert!(
        done - first_token >= Duration::from_millis(600),
        "first token at {first_token:?}, done at {done:?}: {chunks:?}"
    );
    let body: String = chunks.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(body.matches("data: {\"token\"").count(), 5);
}

#[tokio::test]
async fn a_client_hanging_up_at_nginx_cancels_the_generation() {
    let Some(binary) = nginx_binary() else { return };
    let replica = spawn(replica_config()).await;
    let nginx = start_nginx(&binary, &[&replica]);
    let cancelled = format!("sluice_upstream_cancellations_total{{model=\"{MODEL}\"}}");
    let read = |text: String| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(cancelled.as_str())?.trim().parse().ok())
            .unwrap_or(0.0)
    };
    let metrics_url = replica.url("/metrics");
    let before = read(
        client()
            .get(&metrics_url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    );
    let mut response = client()
        .post(format!("{}/v1/stream", nginx.base))
        .json(
            &json!({"prompt": "hi", "mock": {"ttft_ms": 0, "token_delay_ms": 100, "tokens": 1000}}),
        )
        .send()
        .await
        .unwrap();
    response.chunk().await.unwrap().expect("a first chunk");
    drop(response);
    let mut after = before;
    for _ in 0..100 {
        after = read(
            client()
                .get(&metrics_url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        );
        if after > before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        after - before,
        1.0,
        "the replica cancelled the generation when nginx hung up"
    );
}
