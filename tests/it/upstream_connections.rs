//! The upstream's connections on a plain-`http://` upstream (the wire
//! client): kept and reused between streams, a connection the upstream
//! closed while idle replaced without the client noticing, each framing of a
//! body read whole however it is split, and a client that leaves closing its
//! upstream connection, never pooling it.
//!
//! The upstream here is a raw TCP server, so the test controls every byte and
//! every close, and counts connections.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::common::*;

const WORDS: &[&str] = &["Hel", "lo", ", ", "wire", "!"];

/// How the raw upstream answers and treats its connections.
#[derive(Clone, Copy, PartialEq)]
pub enum Manner {
    /// Chunked; the terminating chunk 50 ms after `[DONE]`.
    Chunked,
    /// Chunked, written a few bytes at a time, with chunk extensions and a
    /// trailer.
    Dribbled,
    /// One `Content-Length` body.
    Length,
    /// HTTP/1.0, the body ending with the close.
    Close,
    /// Chunked, and the connection closed 100 ms after each answer.
    ClosesIdle,
    /// Chunked, and a second request on a connection is read and the
    /// connection closed with no answer (a close that crosses the request).
    ClosesOnReuse,
    /// The first tokens, then nothing: the stream waits.
    Stalls,
}

pub struct Raw {
    pub base_url: String,
    pub connections: Arc<AtomicUsize>,
    /// Connections that reached their end of file from our side.
    pub closed_by_proxy: Arc<AtomicUsize>,
}

async fn raw_upstream(manner: Manner) -> Raw {
    raw_upstream_over(manner, None).await
}

/// The raw upstream, over TLS when `tls` is given (an `https://` base URL).
pub async fn raw_upstream_over(manner: Manner, tls: Option<TlsAcceptor>) -> Raw {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let closed_by_proxy = Arc::new(AtomicUsize::new(0));
    let (count, closed) = (connections.clone(), closed_by_proxy.clone());
    let scheme = if tls.is_some() { "https" } else { "http" };
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let (tls, closed) = (tls.clone(), closed.clone());
            tokio::spawn(async move {
                match tls {
                    Some(tls) => {
                        if let Ok(tls) = tls.accept(tcp).await {
                            serve(tls, manner, closed).await;
                        }
                    }
                    None => serve(tcp, manner, closed).await,
                }
            });
        }
    });
    Raw {
        base_url: format!("{scheme}://{addr}/v1"),
        connections,
        closed_by_proxy,
    }
}

/// Reads one request (head and `Content-Length` body); `false` at a close.
async fn read_request<S: AsyncRead + Unpin>(tcp: &mut S) -> bool {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        match tcp.read(&mut byte).await {
            Ok(1) => buf.push(byte[0]),
            _ => return false,
        }
    }
    let head = String::from_utf8_lossy(&buf).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    tcp.read_exact(&mut body).await.is_ok()
}

pub fn events() -> String {
    let mut text = String::new();
    for word in WORDS {
        let chunk =
            json!({"choices": [{"index": 0, "delta": {"content": word}, "finish_reason": null}]});
        text.push_str(&format!("data: {chunk}\n\n"));
    }
    let last = json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": WORDS.len()}});
    text.push_str(&format!("data: {last}\n\ndata: [DONE]\n\n"));
    text
}

const CHUNKED_HEAD: &str =
    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";

/// Writes `bytes` and flushes them (TLS holds its records until then).
async fn put<S: AsyncWrite + Unpin>(tcp: &mut S, bytes: &[u8]) -> std::io::Result<()> {
    tcp.write_all(bytes).await?;
    tcp.flush().await
}

async fn serve<S>(mut tcp: S, manner: Manner, closed: Arc<AtomicUsize>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut answered = 0;
    while read_request(&mut tcp).await {
        if manner == Manner::ClosesOnReuse && answered == 1 {
            return;
        }
        let body = events();
        let written = match manner {
            Manner::Chunked | Manner::ClosesIdle | Manner::ClosesOnReuse => {
                let head_and_data = format!("{CHUNKED_HEAD}{:x}\r\n{body}\r\n", body.len());
                let sent = put(&mut tcp, head_and_data.as_bytes()).await;
                tokio::time::sleep(Duration::from_millis(50)).await;
                sent.and(put(&mut tcp, b"0\r\n\r\n").await)
            }
            Manner::Dribbled => {
                let mut wire = CHUNKED_HEAD.to_owned();
                for piece in body.as_bytes().chunks(7) {
                    wire.push_str(&format!("{:X};ext=1\r\n", piece.len()));
                    wire.push_str(std::str::from_utf8(piece).unwrap());
                    wire.push_str("\r\n");
                }
                wire.push_str("0\r\nx-trailer: yes\r\n\r\n");
                let mut sent = Ok(());
                for piece in wire.as_bytes().chunks(5) {
                    sent = sent.and(put(&mut tcp, piece).await);
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                sent
            }
            Manner::Length => {
                let wire = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                put(&mut tcp, wire.as_bytes()).await
            }
            Manner::Close => {
                let wire =
                    format!("HTTP/1.0 200 OK\r\ncontent-type: text/event-stream\r\n\r\n{body}");
                let _ = put(&mut tcp, wire.as_bytes()).await;
                return;
            }
            Manner::Stalls => {
                let first = body.split("\n\n").next().unwrap();
                let wire = format!("{CHUNKED_HEAD}{:x}\r\n{first}\n\n\r\n", first.len() + 2);
                let _ = put(&mut tcp, wire.as_bytes()).await;
                let mut rest = [0u8; 64];
                // Waits for the proxy to close the connection (under TLS,
                // with no close_notify: an unexpected end of file).
                if let Ok(0) | Err(_) = tcp.read(&mut rest).await {
                    closed.fetch_add(1, Ordering::SeqCst);
                }
                return;
            }
        };
        if written.is_err() {
            return;
        }
        answered += 1;
        if manner == Manner::ClosesIdle {
            tokio::time::sleep(Duration::from_millis(100)).await;
            return;
        }
    }
}

async fn proxy_to(raw: &Raw) -> Server {
    let toml = format!(
        "[timeouts]\nfirst_token_ms = 2000\nidle_ms = 2000\n\
         [[models]]\nname = \"raw\"\nprovider = \"openai\"\nbase_url = \"{}\"\nretries = 0\n",
        raw.base_url
    );
    spawn(config(&toml)).await
}

/// One stream from the proxy at `base` (the model `raw`).
pub async fn ask(base: &str) -> Received {
    let response = client()
        .post(format!("{base}/v1/stream"))
        .json(&json!({"model": "raw", "prompt": "hi"}))
        .send()
        .await
        .unwrap();
    receive(response).await
}

pub fn assert_whole(got: &Received, context: &str) {
    assert_eq!(got.status, 200, "{context}: {}", got.text);
    assert_eq!(got.tokens(), WORDS, "{context}: {}", got.text);
    let done = got.terminal_json();
    assert_eq!(done["finish_reason"], "stop", "{context}: {}", got.text);
    assert_eq!(done["usage"]["completion_tokens"], WORDS.len(), "{context}");
}

// The checks below run here on plain TCP and in `upstream_tls` over TLS:
// each takes the proxy's base URL and the raw upstream it relays.

/// Four streams one after another share one upstream connection.
pub async fn streams_share_one_connection(proxy: &str, raw: &Raw) {
    for round in 0..4 {
        assert_whole(&ask(proxy).await, &format!("stream {round}"));
        // The terminating chunk, 50 ms after `[DONE]`, has come by now.
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    assert_eq!(raw.connections.load(Ordering::SeqCst), 1);
}

/// Three streams on an upstream that closes each connection after one
/// answer (`ClosesIdle`, `ClosesOnReuse`): each whole, on a new connection.
pub async fn closed_connections_are_replaced_unseen(proxy: &str, raw: &Raw) {
    for round in 0..3 {
        assert_whole(&ask(proxy).await, &format!("stream {round}"));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(raw.connections.load(Ordering::SeqCst), 3);
}

/// A client that leaves after the first token (`Stalls`) closes its
/// upstream connection.
pub async fn a_leaving_client_closes_its_connection(proxy: &str, raw: &Raw) {
    let mut response = client()
        .post(format!("{proxy}/v1/stream"))
        .json(&json!({"model": "raw", "prompt": "hi"}))
        .send()
        .await
        .unwrap();
    let first = response.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains(WORDS[0]));
    drop(response);
    for _ in 0..100 {
        if raw.closed_by_proxy.load(Ordering::SeqCst) == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the upstream connection stayed open after its client left");
}

#[tokio::test]
async fn streams_one_after_another_share_one_upstream_connection() {
    let raw = raw_upstream(Manner::Chunked).await;
    let server = proxy_to(&raw).await;
    streams_share_one_connection(&server.base, &raw).await;
}

#[tokio::test]
async fn a_connection_the_upstream_closed_is_replaced_unseen() {
    for manner in [Manner::ClosesIdle, Manner::ClosesOnReuse] {
        let raw = raw_upstream(manner).await;
        let server = proxy_to(&raw).await;
        closed_connections_are_replaced_unseen(&server.base, &raw).await;
    }
}

#[tokio::test]
async fn every_framing_is_read_whole_however_it_is_split() {
    for (manner, name) in [
        (Manner::Dribbled, "chunked, five bytes a write"),
        (Manner::Length, "Content-Length"),
        (Manner::Close, "HTTP/1.0, ended by the close"),
    ] {
        let raw = raw_upstream(manner).await;
        let server = proxy_to(&raw).await;
        assert_whole(&ask(&server.base).await, name);
        assert_whole(&ask(&server.base).await, &format!("{name}, again"));
    }
}

#[tokio::test]
async fn a_client_that_leaves_closes_its_upstream_connection() {
    let raw = raw_upstream(Manner::Stalls).await;
    let server = proxy_to(&raw).await;
    a_leaving_client_closes_its_connection(&server.base, &raw).await;
}
