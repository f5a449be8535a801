//! Shared test helpers: the real sluice server on an ephemeral port, and a
//! client side that reads its frames.

pub mod binary;
pub mod doors;
pub mod fake_anthropic;
pub mod fake_flaky;
pub mod fake_ollama;
pub mod fake_openai;
pub mod otlp;
pub mod redis;

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice::config::Config;
use sluice::sse;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A running sluice; shut down when dropped.
pub struct Server {
    pub base: String,
    _shutdown: oneshot::Sender<()>,
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

/// Parses config TOML, with `env` standing in for the environment.
pub fn config_with_env(toml: &str, env: &[(&str, &str)]) -> Config {
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::parse(toml, move |var| {
        env.iter().find(|(k, _)| k == var).map(|(_, v)| v.clone())
    })
    .expect("test config is valid")
}

pub fn config(toml: &str) -> Config {
    config_with_env(toml, &[])
}

/// A config whose mock is instant, so tests that do not test timing are fast.
pub fn fast_mock_config() -> Config {
    config(FAST_MOCK)
}

pub async fn spawn(config: Config) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(sluice::serve(listener, config, async {
        let _ = rx.await;
    }));
    Server {
        base: format!("http://{addr}"),
        _shutdown: tx,
    }
}

/// A loopback port free just now, for a server the test starts as its own
/// process (nginx, redis-server), which must be told its port.
pub fn free_port() -> u16 {
    free_ports(1)[0]
}

/// `n` loopback ports free just now, all different: each is held until all
/// are found, since the kernel may hand a port just let go out again.
pub fn free_ports(n: usize) -> Vec<u16> {
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter()
        .map(|listener| listener.local_addr().unwrap().port())
        .collect()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// What a client received from a stream.
#[derive(Debug)]
pub struct Received {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    /// The raw body text.
    pub text: String,
    pub events: Vec<sse::Event>,
    /// The body ended with a transport error (the server cut the connection).
    pub cut: bool,
}

impl Received {
    pub fn tokens(&self) -> Vec<String> {
        self.events
            .iter()
            .filter(|e| e.event == "message")
            .map(token_of)
            .collect()
    }

    pub fn token_text(&self) -> String {
        self.tokens().concat()
    }

    pub fn terminal(&self) -> &sse::Event {
        self.events.last().expect("at least one event")
    }

    pub fn terminal_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.terminal().data).unwrap()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text))
    }
}

pub fn token_of(event: &sse::Event) -> String {
    let data: serde_json::Value = serde_json::from_str(&event.data).unwrap();
    data["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no string token in {}", event.data))
        .to_owned()
}

/// Reads a whole response, noting whether it was cut.
pub async fn receive(response: reqwest::Response) -> Received {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let mut body = Vec::new();
    let mut cut = false;
    let mut response = response;
    loop {
        match response.chunk().await {
            Ok(Some(bytes)) => body.extend_from_slice(&bytes),
            Ok(None) => break,
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    Received::of(status, headers, body, cut)
}

impl Received {
    /// A whole body, decoded as SSE.
    pub fn of(
        status: u16,
        headers: reqwest::header::HeaderMap,
        body: Vec<u8>,
        cut: bool,
    ) -> Received {
        let text = String::from_utf8(body).expect("UTF-8 body");
        let mut decoder = sse::Decoder::new();
        decoder.push(text.as_bytes());
        decoder.finish();
        let mut events = Vec::new();
        while let Some(event) = decoder.next_event() {
            events.push(event);
        }
        Received {
            status,
            headers,
            text,
            events,
            cut,
        }
    }
}

pub async fn post_json(server: &Server, body: serde_json::Value) -> Received {
    post_to(server, "/v1/stream", body).await
}

pub async fn post_to(server: &Server, path: &str, body: serde_json::Value) -> Received {
    let response = client()
        .post(server.url(path))
        .json(&body)
        .send()
        .await
        .unwrap();
    receive(response).await
}

/// POSTs `body` to `url` and reads the answer's JSON body (a whole answer,
/// not a stream), whatever its status.
pub async fn answer_of(url: String, body: &serde_json::Value) -> serde_json::Value {
    client()
        .post(url)
        .json(body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Reads `response` until `n` native token frames have come (the test then
/// usually hangs up by dropping it); returns what it read.
pub async fn read_tokens(response: &mut reqwest::Response, n: usize) -> String {
    let mut seen = String::new();
    while seen.matches("\"token\"").count() < n {
        let chunk = response
            .chunk()
            .await
            .unwrap()
            .expect("the stream ended early");
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    seen
}

/// Body chunks with the time each arrived since `start` (taken before sending).
pub async fn timed_chunks(start: Instant, response: reqwest::Response) -> Vec<(Duration, String)> {
    let mut response = response;
    let mut chunks = Vec::new();
    while let Ok(Some(bytes)) = response.chunk().await {
        chunks.push((
            start.elapsed(),
            String::from_utf8_lossy(&bytes).into_owned(),
        ));
    }
    chunks
}

/// Polls `check` until it is true or `within` passes.
pub async fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    check()
}

/// A mock that answers at once.
pub const FAST_MOCK: &str =
    "[[models]]\nname = \"mock\"\nprovider = \"mock\"\nttft_ms = 0\ntoken_delay_ms = 0\n";

pub fn quick() -> Value {
    json!({"prompt": "hi", "mock": {"tokens": 2}})
}

pub fn quick_chat() -> Value {
    json!({"model": "mock", "messages": [{"role": "user", "content": "hi"}], "mock": {"tokens": 2}})
}

pub async fn send(request: reqwest::RequestBuilder) -> Received {
    receive(request.send().await.unwrap()).await
}

pub fn error_of(got: &Received) -> Value {
    got.json()["error"].clone()
}
