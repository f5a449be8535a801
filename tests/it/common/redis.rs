//! A real `redis-server` of a test's own on a free loopback port, and
//! sluice replicas on it (`scale_out.rs`, `store_faults.rs`).
//!
//! Needs `redis-server` (Debian's package, which `.ci/run` installs).
//! Without it the tests say so and pass, unless `SLUICE_REQUIRE_REDIS=1`
//! (set by `.ci/run`), where a missing server fails.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::binary::Sluice;
use super::*;

fn redis_binary() -> Option<PathBuf> {
    let found = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        let hint = "redis-server is not installed (apt-get install redis-server)";
        if std::env::var_os("SLUICE_REQUIRE_REDIS").is_some_and(|v| v == "1") {
            panic!("{hint}");
        }
        eprintln!("skipped: {hint}");
    }
    found
}

/// A `redis-server` of the test's own, with nothing saved to disk.
pub struct Redis {
    binary: PathBuf,
    pub port: u16,
    child: Option<Child>,
}

impl Redis {
    pub fn start() -> Option<Redis> {
        let binary = redis_binary()?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Redis {
            binary,
            port,
            child: None,
        };
        redis.resume();
        Some(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on its port.
    pub fn resume(&mut self) {
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A replica on `redis` with `extra` config (TOML sections after `[store]`).
pub fn replica(redis: &Redis, extra: &str) -> Sluice {
    Sluice::start(
        &format!("[store]\nredis_url = \"{}\"\n{extra}", redis.url()),
        &[],
    )
}

/// Two replicas with the same config, and their Redis.
pub async fn pair(extra: &str) -> Option<(Redis, Sluice, Sluice)> {
    let redis = Redis::start()?;
    let a = replica(&redis, extra);
    let b = replica(&redis, extra);
    // Ready once each has reached Redis (its lease is renewed at start).
    let deadline = Instant::now() + Duration::from_secs(10);
    for on in [&a, &b] {
        while ready(on).await != 200 {
            assert!(Instant::now() < deadline, "a replica never reached Redis");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Some((redis, a, b))
}

pub async fn post_generation(on: &Sluice, mock: Value) -> String {
    let response = client()
        .post(on.url("/v1/generations"))
        .json(&json!({"prompt": "hi", "mock": mock}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

pub async fn events(on: &Sluice, id: &str) -> Received {
    receive(
        client()
            .get(on.url(&format!("/v1/generations/{id}/events")))
            .send()
            .await
            .unwrap(),
    )
    .await
}

/// The frame indexes of a response's events, checked to be `GEN:N` ids.
pub fn indexes(got: &Received, id: &str) -> Vec<u64> {
    got.events
        .iter()
        .map(|e| {
            let frame = e.id.as_deref().expect("every frame has an id");
            let (generation, n) = frame.rsplit_once(':').unwrap();
            assert_eq!(generation, id);
            n.parse().unwrap()
        })
        .collect()
}

/// `GET /v1/generations/GEN` through `on`.
pub async fn status(on: &Sluice, id: &str) -> Value {
    client()
        .get(on.url(&format!("/v1/generations/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub async fn metric(on: &Sluice, name: &str) -> f64 {
    let text = client()
        .get(on.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

pub async fn ready(on: &Sluice) -> u16 {
    match client().get(on.url("/readyz")).send().await {
        Ok(response) => response.status().as_u16(),
        Err(_) => 0,
    }
}

pub async fn until(within: Duration, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

impl Redis {
    /// Freezes the server (SIGSTOP) for `pause`, as a stall would: commands
    /// sent meanwhile wait in its socket and run when it wakes.
    pub async fn stall(&self, pause: Duration) {
        let pid = self
            .child
            .as_ref()
            .expect("redis-server runs")
            .id()
            .to_string();
        let signal = |name: &str| {
            let status = Command::new("kill").args([name, &pid]).status().unwrap();
            assert!(status.success(), "kill {name} redis-server");
        };
        signal("-STOP");
        tokio::time::sleep(pause).await;
        signal("-CONT");
    }

    /// A connection of the test's own, to look at what sluice keeps.
    pub async fn connect(&self) -> ::redis::aio::MultiplexedConnection {
        ::redis::Client::open(self.url())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap()
    }
}
