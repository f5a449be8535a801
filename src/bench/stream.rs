//! One benchmark stream: send the request, read its events as they arrive,
//! note when each content token came, and how the stream ended.

use std::time::Duration;

use tokio::time::Instant;

use serde::Deserialize;

use super::args::BenchArgs;
use crate::sse;

/// How a stream ended.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum End {
    /// A terminal `done` event or `data: [DONE]`.
    Done,
    /// A terminal error frame, with its type.
    Error(String),
    /// An HTTP error status before the stream.
    Status(u16),
    /// The connection failed or was cut without a terminal frame.
    Cut,
    /// We hung up, as asked (`--hangup-after`, or the end of `--hold`).
    HungUp,
    /// No end within `--timeout`.
    Timeout,
}

impl End {
    pub fn label(&self) -> String {
        match self {
            End::Done => "done".into(),
            End::Error(kind) => format!("error:{kind}"),
            End::Status(status) => format!("status:{status}"),
            End::Cut => "cut".into(),
            End::HungUp => "hung_up".into(),
            End::Timeout => "timeout".into(),
        }
    }
}

/// What one stream measured.
#[derive(Debug, Clone)]
pub struct StreamResult {
    pub ttft: Option<Duration>,
    /// Gaps between consecutive tokens.
    pub gaps: Vec<Duration>,
    pub tokens: u64,
    pub latency: Duration,
    pub end: End,
}

/// The endpoint and request every stream sends.
pub struct Target {
    client: reqwest::Client,
    url: String,
    body: String,
    headers: reqwest::header::HeaderMap,
    hangup_after: Option<u64>,
    timeout: Duration,
}

impl Target {
    pub fn new(args: &BenchArgs) -> Result<Target, String> {
        let body = match &args.body {
            Some(body) => {
                serde_json::from_str::<serde_json::Value>(body).map_err(|e| format!("--body is not JSON: {e}"))?;
                body.clone()
            }
            None if args.url.contains("/chat/completions") => {
                r#"{"model":"mock","stream":true,"messages":[{"role":"user","content":"Tell me about streaming."}]}"#.into()
            }
            None if args.url.ends_with("/completions") => {
                r#"{"model":"mock","stream":true,"prompt":"Tell me about streaming."}"#.into()
            }
            None => r#"{"prompt":"Tell me about streaming."}"#.into(),
        };
        let mut headers = reqwest::header::HeaderMap::new();
        for header in &args.headers {
            let (name, value) = header
                .split_once(':')
                .ok_or_else(|| format!("--header `{header}` is not `Name: value`"))?;
            let name = reqwest::header::HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|e| format!("--header `{header}`: {e}"))?;
            let value = value
                .trim()
                .parse()
                .map_err(|e| format!("--header `{header}`: {e}"))?;
            headers.insert(name, value);
        }
        let mut client = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(args.concurrency);
        if args.http2 {
            client = client.http2_prior_knowledge();
        }
        let client = client
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Target {
            client,
            url: args.url.clone(),
            body,
            headers,
            hangup_after: args.hangup_after,
            timeout: Duration::from_secs_f64(args.timeout),
        })
    }

    /// Runs one stream; with `hold_until`, hangs up at that moment.
    pub async fn run_one(&self, hold_until: Option<Instant>) -> StreamResult {
        let sent = Instant::now();
        let deadline = hold_until.unwrap_or(sent + self.timeout);
        let mut meter = Meter::new(sent);
        let end = match tokio::time::timeout_at(deadline, self.read(&mut meter)).await {
            Ok(end) => end,
            Err(_) if hold_until.is_some() => End::HungUp,
            Err(_) => End::Timeout,
        };
        meter.finish(end)
    }

    async fn read(&self, meter: &mut Meter) -> End {
        let request = self
            .client
            .post(&self.url)
            .headers(self.headers.clone())
            .header("content-type", "application/json")
            .header("accept", "text/event-stream")
            .body(self.body.clone());
        let mut response = match request.send().await {
            Ok(response) => response,
            Err(_) => return End::Cut,
        };
        if !response.status().is_success() {
            return End::Status(response.status().as_u16());
        }
        let mut decoder = sse::Decoder::new();
        loop {
            let eof = match response.chunk().await {
                Ok(Some(bytes)) => {
                    decoder.push(&bytes);
                    false
                }
                Ok(None) => {
                    decoder.finish();
                    true
                }
                Err(_) => return End::Cut,
            };
            while let Some(event) = decoder.next_event() {
                match classify(&event) {
                    Seen::Token => {
                        meter.token();
                        if self.hangup_after.is_some_and(|k| meter.tokens >= k) {
                            return End::HungUp;
                        }
                    }
                    Seen::End(end) => return end,
                    Seen::Other => {}
                }
            }
            if eof {
                return End::Cut;
            }
        }
    }
}

enum Seen {
    Token,
    End(End),
    Other,
}

#[derive(Deserialize)]
struct Frame<'a> {
    #[serde(borrow)]
    token: Option<std::borrow::Cow<'a, str>>,
    #[serde(default)]
    choices: Vec<Choice<'a>>,
    error: Option<ErrorObject>,
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(borrow)]
    delta: Option<Delta<'a>>,
    #[serde(borrow)]
    text: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(borrow)]
    content: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Deserialize)]
struct ErrorObject {
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// A Responses `response.output_text.delta` or a Messages
/// `content_block_delta`: the text is `delta`, or `delta.text`.
#[derive(Deserialize)]
#[serde(untagged)]
enum NamedDelta<'a> {
    Text {
        #[serde(borrow)]
        delta: std::borrow::Cow<'a, str>,
    },
    Block {
        #[serde(borrow)]
        delta: BlockDelta<'a>,
    },
}

#[derive(Deserialize)]
struct BlockDelta<'a> {
    #[serde(borrow, default)]
    text: Option<std::borrow::Cow<'a, str>>,
}

/// A Responses `response.failed`: the error's code is in the response.
#[derive(Deserialize)]
struct Failed {
    response: FailedResponse,
}

#[derive(Deserialize)]
struct FailedResponse {
    error: Option<FailedError>,
}

#[derive(Deserialize)]
struct FailedError {
    code: Option<String>,
}

/// Native frames (`{"token":..}`, `event: done|error`), OpenAI chunks
/// (`choices[0].delta.content` or `.text`, `[DONE]`, `{"error":..}`), or
/// the named events of the Responses and Messages APIs.
fn classify(event: &sse::Event) -> Seen {
    match event.event.as_str() {
        "done" | "message_stop" | "response.completed" | "response.incomplete" => {
            return Seen::End(End::Done)
        }
        "response.output_text.delta" | "content_block_delta" => {
            let text = match serde_json::from_str::<NamedDelta>(&event.data) {
                Ok(NamedDelta::Text { delta }) => Some(delta),
                Ok(NamedDelta::Block { delta }) => delta.text,
                Err(_) => None,
            };
            return match text {
                Some(text) if !text.is_empty() => Seen::Token,
                _ => Seen::Other,
            };
        }
        "response.failed" => {
            let code = serde_json::from_str::<Failed>(&event.data)
                .ok()
                .and_then(|f| f.response.error)
                .and_then(|e| e.code)
                .unwrap_or_else(|| "unknown".into());
            return Seen::End(End::Error(code));
        }
        "error" => {
            let kind = serde_json::from_str::<Frame>(&event.data)
                .ok()
                .and_then(|f| f.error)
                .and_then(|e| e.kind)
                .unwrap_or_else(|| "unknown".into());
            return Seen::End(End::Error(kind));
        }
        _ => {}
    }
    if event.data == "[DONE]" {
        return Seen::End(End::Done);
    }
    let Ok(frame) = serde_json::from_str::<Frame>(&event.data) else {
        return Seen::Other;
    };
    if let Some(error) = frame.error {
        return Seen::End(End::Error(error.kind.unwrap_or_else(|| "unknown".into())));
    }
    let content = frame.token.or_else(|| {
        let choice = frame.choices.into_iter().next()?;
        choice.delta.and_then(|d| d.content).or(choice.text)
    });
    match content {
        Some(text) if !text.is_empty() => Seen::Token,
        _ => Seen::Other,
    }
}

/// Per-stream timing.
struct Meter {
    sent: Instant,
    first: Option<Instant>,
    last: Option<Instant>,
    gaps: Vec<Duration>,
    tokens: u64,
}

impl Meter {
    fn new(sent: Instant) -> Meter {
        Meter {
            sent,
            first: None,
            last: None,
            gaps: Vec::new(),
            tokens: 0,
        }
    }

    fn token(&mut self) {
        let now = Instant::now();
        if let Some(last) = self.last {
            self.gaps.push(now - last);
        } else {
            self.first = Some(now);
        }
        self.last = Some(now);
        self.tokens += 1;
    }

    fn finish(self, end: End) -> StreamResult {
        StreamResult {
            ttft: self.first.map(|f| f - self.sent),
            gaps: self.gaps,
            tokens: self.tokens,
            latency: self.last.unwrap_or_else(Instant::now) - self.sent,
            end,
        }
    }
}
